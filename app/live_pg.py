"""Thread-change events across processes through PostgreSQL LISTEN/NOTIFY,
for deployments on PostgreSQL without ``RETOUCH_REDIS_URL``.

The sender thread runs ``SELECT pg_notify(channel, '<origin> <thread_id>')``
on a connection of its own (autocommit, so each is delivered at once; closed
after ``SENDER_IDLE_SECONDS`` idle); each started process ``LISTEN``s on
another (psycopg's ``AsyncConnection.notifies`` on the event loop). Only the
thread id travels: a NOTIFY payload must be shorter than 8000 bytes
(PostgreSQL docs, "NOTIFY"), and longer messages are dropped, logged.
Delivery, coalescing and outages: ``app/live_events.py``.

Partial images do not go through PostgreSQL: without Redis, a page sees the
frames of turns that run in its own process only (the final image shows for
all).
"""
from __future__ import annotations

import logging

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from app.live_events import LISTEN_PING_SECONDS, CrossProcessEvents

log = logging.getLogger("retouch.live")

#: The NOTIFY channel (an identifier; channels are per database, not per schema).
CHANNEL = "retouch_thread_changed"
#: NOTIFY payloads must be shorter than this many bytes (PostgreSQL's default build).
MAX_PAYLOAD_BYTES = 8000
#: Seconds to wait for a connection.
CONNECT_TIMEOUT_SECONDS = 2


def libpq_url(database_url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://...``) as a libpq connection
    URI for psycopg (the driver suffix dropped, the password kept)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresThreadEvents(CrossProcessEvents):
    """Thread-change events through LISTEN/NOTIFY on the app's PostgreSQL
    database at ``database_url`` (a SQLAlchemy URL)."""

    server = "PostgreSQL (LISTEN/NOTIFY)"

    def __init__(self, database_url: str, channel: str = CHANNEL) -> None:
        super().__init__()
        self.conninfo = libpq_url(database_url)
        self.channel = channel
        self._conn: psycopg.Connection | None = None  # the sender thread's

    def _send(self, message: str) -> None:
        if len(message.encode()) >= MAX_PAYLOAD_BYTES:
            log.error("not sent: a thread-change message of %d bytes is too long for NOTIFY", len(message.encode()))
            return
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
            self._conn.execute("SELECT pg_notify(%s, %s)", (self.channel, message))
        except Exception:
            self._close_sender()
            raise

    def _close_sender(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken: nothing to release
                pass

    async def _listen_once(self, subscribed) -> None:
        conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True,
                                                     connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                                     application_name=f"retouch-events-{self.origin}")
        async with conn:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            subscribed()
            while True:
                async for notify in conn.notifies(timeout=LISTEN_PING_SECONDS):
                    self._receive(notify.payload)
                await conn.execute("SELECT 1")  # idle: raises when the link died silently
