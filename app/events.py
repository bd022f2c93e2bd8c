"""Tell open thread pages when their thread changed, as server-sent events.

The turn worker publishes a thread's id when one of its turns starts or
ends; each open page holds an ``EventSource`` on ``/t/{id}/events`` (or
``/s/{token}/events``) and, on a ``changed`` event, fetches its live block
again (htmx's SSE extension, ``hx-trigger="sse:changed"``). Events carry no
data, so nothing private travels on them, and a missed one only delays the
page until the next (pages with a pending turn also poll every few seconds).

Publishing works from any thread; delivery happens on the event loop.
:class:`ThreadEvents` is in-process (one server process). With several
processes, events also reach pages open on the others through Redis pub/sub
(``RETOUCH_REDIS_URL``, ``app/live_redis.py``) or, on PostgreSQL without
Redis, LISTEN/NOTIFY (``app/live_pg.py``); :func:`make_events` chooses.
"""
from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio

# How often an idle stream sends a comment, so proxies keep it open (seconds).
PING_SECONDS = 15


def call_on_loop(loop: asyncio.AbstractEventLoop | None, fn: Callable[..., None], *args) -> None:
    """Run ``fn(*args)`` on ``loop``: at once when called on that loop,
    else scheduled with ``call_soon_threadsafe`` (asyncio objects are not
    thread-safe, and the sync routes and turns run in worker threads).
    Does nothing when ``loop`` is None or closed."""
    if loop is None or loop.is_closed():
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        fn(*args)
    else:
        loop.call_soon_threadsafe(fn, *args)


class ThreadEvents:
    """A publish/subscribe hub keyed by thread id. ``start()`` binds it to
    the running event loop (in the app's lifespan)."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Bind to the running event loop; call it on that loop (the lifespan)."""
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        """Release what ``start()`` took: nothing here; the cross-process hubs
        (``app/live_events.py``) stop listening and flush their sender."""

    def publish(self, thread_id: str) -> None:
        """Say that ``thread_id`` changed. Safe to call from any thread;
        does nothing before ``start()`` or after the loop closed."""
        call_on_loop(self._loop, self._deliver, thread_id)

    def _deliver(self, thread_id: str) -> None:
        for queue in self._subscribers.get(thread_id, ()):
            if queue.empty():  # one pending "changed" is enough: the page refetches everything
                queue.put_nowait(None)

    @asynccontextmanager
    async def subscribe(self, thread_id: str) -> AsyncIterator[asyncio.Queue]:
        """A queue that receives ``None`` whenever ``thread_id`` changes,
        for the duration of the ``async with`` block."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        self._subscribers[thread_id].add(queue)
        try:
            yield queue
        finally:
            subscribers = self._subscribers.get(thread_id)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[thread_id]

    def subscriber_count(self, thread_id: str) -> int:
        """How many pages listen to ``thread_id`` now (for tests and metrics)."""
        return len(self._subscribers.get(thread_id, ()))


def make_events(settings) -> ThreadEvents:
    """The hub for ``settings`` (an ``app.config.Settings``): Redis pub/sub
    when ``redis_url`` is set (``app/live_redis.py``), else PostgreSQL
    LISTEN/NOTIFY when the database is PostgreSQL (``app/live_pg.py``), else
    in-process. Both cross-process hubs connect lazily, so an unreachable
    server does not stop the start (outages: ``app/live_events.py``)."""
    if settings.redis_url:
        from app.live_redis import RedisThreadEvents

        return RedisThreadEvents(settings.redis_url)
    if settings.sqlalchemy_url.startswith("postgresql"):
        from app.live_pg import PostgresThreadEvents

        return PostgresThreadEvents(settings.sqlalchemy_url)
    return ThreadEvents()


async def changes(events: ThreadEvents, thread_id: str, shutdown: anyio.Event) -> AsyncIterator[dict]:
    """The event stream for one page: ``ready`` once subscribed (the page
    then refetches, in case it missed a change while connecting), then a
    ``changed`` event (empty data) each time the thread changes. Runs until
    the client goes away or ``shutdown`` is set (the server is stopping);
    ending by itself lets the response finish cleanly."""
    async with events.subscribe(thread_id) as queue:
        yield {"event": "ready", "data": ""}
        while not shutdown.is_set():
            got = asyncio.ensure_future(queue.get())
            stop = asyncio.ensure_future(shutdown.wait())
            try:
                await asyncio.wait({got, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (got, stop):
                    task.cancel()
            if not got.cancelled() and got.done():
                yield {"event": "changed", "data": ""}
