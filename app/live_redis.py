"""Live updates across processes through Redis (``RETOUCH_REDIS_URL``).

* :class:`RedisThreadEvents`: thread-change events on the pub/sub channel
  :data:`CHANNEL` (delivery, coalescing and outages: ``app/live_events.py``);
  ``redis.asyncio`` listens on the event loop, a blocking client publishes.
* :class:`RedisPartialFrames` (``app/partials.py``): a running turn's newest
  frame (WebP) and streamed words go into the keys ``retouch:partial:<turn>``
  and ``retouch:partial-text:<turn>`` with a TTL of :data:`PARTIAL_TTL_SECONDS`
  (renewed by each put; deleted when the turn ends), never into a pub/sub
  message. A copy stays in this process's memory as well, and is what this
  process serves while Redis is unreachable (Redis is then not tried again
  for ``BACKOFF_SECONDS``; the outage is logged once).

Nothing private travels: events carry thread ids only; frames are keyed by
turn id (random) and served only through the routes that check ownership.
"""
from __future__ import annotations

import redis
import redis.asyncio as aioredis
from PIL import Image
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.live_events import LISTEN_PING_SECONDS, CrossProcessEvents, Outage
from app.partials import PartialFrame, PartialFrames

#: The pub/sub channel of thread-change notices.
CHANNEL = "retouch:thread-changed"
#: Key prefixes of partial frames and streamed words.
FRAME_KEY, TEXT_KEY = "retouch:partial:", "retouch:partial-text:"
#: How long a stored frame or text outlives its last update, in seconds:
#: longer than the gap between two frames of any backend, and a bound on
#: what a crashed worker (which never drops its frames) leaves behind.
PARTIAL_TTL_SECONDS = 600
#: Seconds to wait for Redis on one command (routes wait on reads of frames).
COMMAND_TIMEOUT_SECONDS = 1.0


def sync_client(url: str) -> redis.Redis:
    """A blocking client for ``url`` that fails fast: no retries, at most
    :data:`COMMAND_TIMEOUT_SECONDS` per connect and per command."""
    return redis.Redis.from_url(url, socket_timeout=COMMAND_TIMEOUT_SECONDS,
                                socket_connect_timeout=COMMAND_TIMEOUT_SECONDS, retry=Retry(NoBackoff(), 0))


class RedisThreadEvents(CrossProcessEvents):
    """Thread-change events through Redis pub/sub at ``url`` (see
    ``app/live_events.py`` for delivery, coalescing and outages)."""

    server = "Redis"

    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        super().__init__()
        self.url = url
        self.channel = channel
        self._client = sync_client(url)

    def ping(self) -> None:
        """Raise ``redis.RedisError`` unless Redis answers a PING (``/readyz``)."""
        self._client.ping()

    def _send(self, message: str) -> None:
        self._client.publish(self.channel, message)

    async def _listen_once(self, subscribed) -> None:
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=COMMAND_TIMEOUT_SECONDS,
                                         client_name=f"retouch-events-{self.origin}")
        try:
            async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(self.channel)
                subscribed()
                while True:
                    message = await pubsub.get_message(timeout=LISTEN_PING_SECONDS)
                    if message is None:
                        await pubsub.ping()  # raises when the link died silently
                    elif message["type"] == "message":
                        self._receive(message["data"].decode("utf-8", "replace"))
        finally:
            await client.aclose()


class RedisPartialFrames(PartialFrames):
    """:class:`PartialFrames` shared between processes through Redis keys
    with a TTL; this process's own frames are kept in memory too, and
    served from there while Redis is unreachable."""

    def __init__(self, url: str, ttl: int = PARTIAL_TTL_SECONDS) -> None:
        super().__init__()
        self.ttl = ttl
        self._client = sync_client(url)
        self._outage = Outage("Redis", "partial images of turns on other processes are not shown")

    def _call(self, fn, *args):
        """``fn(*args)`` on Redis; None when Redis is down (logged once)."""
        if self._outage.skip():
            return None
        try:
            result = fn(*args)
        except redis.RedisError as exc:
            self._outage.failed(exc)
            return None
        self._outage.ok()
        return result

    def put_text(self, turn_id: str, text: str) -> None:
        """Keep the turn's words so far, here and in Redis."""
        super().put_text(turn_id, text)
        self._call(self._client.set, TEXT_KEY + turn_id, text.encode(), self.ttl)

    def text(self, turn_id: str) -> str | None:
        """The turn's streamed words so far (from any process), or None."""
        local = super().text(turn_id)
        if local is not None:
            return local
        data = self._call(self._client.get, TEXT_KEY + turn_id)
        return data.decode("utf-8", "replace") if data is not None else None

    def put(self, turn_id: str, index: int, image: Image.Image) -> PartialFrame:
        """Keep ``image`` as the turn's newest frame (WebP), here and in Redis."""
        frame = super().put(turn_id, index, image)
        header = f"{frame.index} {frame.width} {frame.height}\n".encode()
        self._call(self._client.set, FRAME_KEY + turn_id, header + frame.data, self.ttl)
        return frame

    def get(self, turn_id: str) -> PartialFrame | None:
        """The turn's newest frame, from this process or any other; None
        when there is none (or Redis is down and the turn runs elsewhere)."""
        local = super().get(turn_id)
        if local is not None:
            return local
        stored = self._call(self._client.get, FRAME_KEY + turn_id)
        if not stored:
            return None
        header, _, data = stored.partition(b"\n")
        index, width, height = (int(x) for x in header.split())
        return PartialFrame(index, data, width, height)

    def drop(self, turn_id: str) -> None:
        """Forget the turn's frame and words, here and in Redis."""
        super().drop(turn_id)
        self._call(self._client.delete, FRAME_KEY + turn_id, TEXT_KEY + turn_id)
