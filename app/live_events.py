"""Thread-change events across processes: what Redis pub/sub
(``app/live_redis.py``) and PostgreSQL LISTEN/NOTIFY (``app/live_pg.py``)
have in common.

``publish(thread_id)`` delivers to this process's pages at once, as the
in-process :class:`~app.events.ThreadEvents` does, and queues the message
``"<origin> <thread_id>"`` for a daemon thread that sends it to the shared
channel (coalescing a burst to one message per thread). Every process that
called ``start()`` listens on the channel from its event loop and delivers
messages of other origins to its own pages. A process that only publishes
(a ``retouch worker``) never calls ``start()``.

When the channel's server goes away, Retouch keeps serving: sending logs one
warning per outage and drops messages for :data:`BACKOFF_SECONDS` at a time
(pages with a pending turn poll every few seconds, so they catch up); the
listener retries after 0.5 s, doubling to at most :data:`MAX_RECONNECT_SECONDS`,
and once back tells every open page to refetch.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable

from app.events import ThreadEvents

log = logging.getLogger("retouch.live")

#: After a failed send, seconds during which nothing is sent (messages are dropped).
BACKOFF_SECONDS = 5.0
#: Longest pause between two attempts of the listener to reconnect, in seconds.
MAX_RECONNECT_SECONDS = 5.0
#: An idle listener checks its connection this often, in seconds.
LISTEN_PING_SECONDS = 10.0


class Outage:
    """Logs an outage of ``server`` once when it starts and once when it
    ends (``what`` says what it costs meanwhile), and says whether to skip
    the server for now (:data:`BACKOFF_SECONDS` after a failure)."""

    def __init__(self, server: str, what: str) -> None:
        self.server, self.what = server, what
        self.down_since: float | None = None
        self._retry_at = 0.0
        self._lock = threading.Lock()

    def skip(self) -> bool:
        """True while the last failure is less than BACKOFF_SECONDS old."""
        return time.monotonic() < self._retry_at

    def failed(self, exc: BaseException) -> None:
        """Note a failure (logged if it starts an outage)."""
        with self._lock:
            self._retry_at = time.monotonic() + BACKOFF_SECONDS
            if self.down_since is None:
                self.down_since = time.monotonic()
                log.warning("%s is unreachable (%s): %s; %s", self.server, exc.__class__.__name__, exc, self.what)

    def ok(self) -> None:
        """Note a success (logged if it ends an outage)."""
        if self.down_since is None:
            return
        with self._lock:
            if self.down_since is not None:
                log.info("%s is reachable again after %.1f s", self.server, time.monotonic() - self.down_since)
                self.down_since = None


class CrossProcessEvents(ThreadEvents):
    """:class:`ThreadEvents` that also reaches pages on other processes.
    Subclasses name their ``server`` and implement :meth:`_send` and
    :meth:`_listen_once`."""

    server = "the event channel"

    def __init__(self) -> None:
        super().__init__()
        #: Marks this process's own messages, which it has delivered already.
        self.origin = secrets.token_hex(8)
        #: Set while the listener is subscribed (tests wait on it).
        self.listening = threading.Event()
        self._outbox: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._sender_lock = threading.Lock()
        self._listener: asyncio.Task | None = None
        self._send_outage = Outage(self.server, "pages on other processes fall back to polling")
        self._listen_outage = Outage(self.server, "pages hear only of this process's turns and poll for the others")

    # -- for subclasses

    def _send(self, message: str) -> None:
        """Send ``message`` to every listening process (from the sender
        thread); raise on failure."""
        raise NotImplementedError

    def _close_sender(self) -> None:
        """Release the sender's connection (the sender thread is idle or ending)."""

    async def _listen_once(self, subscribed: Callable[[], None]) -> None:
        """Connect, subscribe, call ``subscribed()``, then pass each message
        to :meth:`_receive` until the connection fails (raise then)."""
        raise NotImplementedError

    # -- the hub

    def start(self) -> None:
        """Bind to the running loop and start listening (in the lifespan)."""
        super().start()
        self._listener = asyncio.create_task(self._listen(), name=f"{type(self).__name__}-listener")

    async def stop(self) -> None:
        """Stop listening and let the sender finish what is queued (at most 1 s)."""
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self._sender is not None:
            self._outbox.put(None)
            await asyncio.to_thread(self._sender.join, 1.0)
            self._sender = None

    def publish(self, thread_id: str) -> None:
        """Say that ``thread_id`` changed, here (at once) and to every other
        process (from a background thread). Never blocks; any thread."""
        super().publish(thread_id)
        if self._sender is None:
            with self._sender_lock:
                if self._sender is None:
                    self._sender = threading.Thread(target=self._send_loop, daemon=True,
                                                    name=f"{type(self).__name__}-sender")
                    self._sender.start()
        self._outbox.put(thread_id)

    #: An idle sender closes its connection after this many seconds.
    SENDER_IDLE_SECONDS = 30.0

    def _send_loop(self) -> None:
        try:
            while True:
                try:
                    batch = [self._outbox.get(timeout=self.SENDER_IDLE_SECONDS)]
                except queue.Empty:
                    self._close_sender()
                    continue
                while True:  # coalesce: one message per thread per burst is enough
                    try:
                        batch.append(self._outbox.get_nowait())
                    except queue.Empty:
                        break
                for thread_id in dict.fromkeys(batch):
                    if thread_id is None:
                        return
                    if self._send_outage.skip():
                        continue  # dropped: pages poll while the server is down
                    try:
                        self._send(f"{self.origin} {thread_id}")
                        self._send_outage.ok()
                    except Exception as exc:  # the server's errors, OSError: log once per outage
                        self._send_outage.failed(exc)
        finally:
            self._close_sender()

    async def _listen(self) -> None:
        delay = [0.5]

        def subscribed() -> None:
            self.listening.set()
            delay[0] = 0.5
            if self._listen_outage.down_since is not None:
                self._listen_outage.ok()
                self._deliver_all()  # they may have missed messages meanwhile

        while True:
            try:
                await self._listen_once(subscribed)
            except Exception as exc:  # connection lost or refused, a bad reply: log once, retry
                self._listen_outage.failed(exc)
            finally:
                self.listening.clear()
            await asyncio.sleep(delay[0])
            delay[0] = min(delay[0] * 2, MAX_RECONNECT_SECONDS)

    def _receive(self, message: str) -> None:
        """Deliver a message from the channel unless this process sent it."""
        origin, _, thread_id = message.partition(" ")
        if origin != self.origin and thread_id:
            self._deliver(thread_id)

    def _deliver_all(self) -> None:
        for thread_id in list(self._subscribers):
            self._deliver(thread_id)
