"""Partial images (and streamed words) of running turns, kept in memory only.

While the ``openai`` backend streams, each partial image it receives is put
here (the newest one per turn), the turn's thread is announced as changed
(``app/events.py``), and open pages show it in the pending bubble through
``GET .../turns/{id}/partial``. A partial image is never a version: the
worker drops a turn's frame when the turn ends, whatever the outcome, and
nothing of it reaches the database or the blob store. :class:`PartialFrames`
is per process; with ``RETOUCH_REDIS_URL``, :func:`make_partials` returns
``app.live_redis.RedisPartialFrames``, which shares the frames between
processes through Redis keys with a TTL.
"""
from __future__ import annotations

import io
import threading
from dataclasses import dataclass

from PIL import Image

from app.imaging import normalise_mode

#: WebP quality of the stored frames (they are previews; the final image replaces them).
FRAME_QUALITY = 80


@dataclass(frozen=True)
class PartialFrame:
    """One partial image: its 0-based ``index`` in the stream, ``data`` as
    WebP bytes and its ``width`` and ``height`` in pixels."""

    index: int
    data: bytes
    width: int
    height: int


class PartialFrames:
    """The newest partial image of each running turn, by turn id; thread-safe."""

    def __init__(self) -> None:
        self._frames: dict[str, PartialFrame] = {}
        self._texts: dict[str, str] = {}
        self._lock = threading.Lock()

    def put_text(self, turn_id: str, text: str) -> None:
        """Keep the assistant's words so far (conversational backends stream them)."""
        with self._lock:
            self._texts[turn_id] = text

    def text(self, turn_id: str) -> str | None:
        """The turn's streamed words so far, or None."""
        with self._lock:
            return self._texts.get(turn_id)

    def put(self, turn_id: str, index: int, image: Image.Image) -> PartialFrame:
        """Keep ``image`` (RGB or RGBA) as the turn's newest frame, encoded
        as WebP. Returns the stored :class:`PartialFrame`."""
        buf = io.BytesIO()
        normalise_mode(image).save(buf, format="WEBP", quality=FRAME_QUALITY, method=2)
        frame = PartialFrame(index, buf.getvalue(), image.width, image.height)
        with self._lock:
            self._frames[turn_id] = frame
        return frame

    def get(self, turn_id: str) -> PartialFrame | None:
        """The turn's newest frame, or None."""
        with self._lock:
            return self._frames.get(turn_id)

    def drop(self, turn_id: str) -> None:
        """Forget the turn's frame and words (when the turn ends)."""
        with self._lock:
            self._frames.pop(turn_id, None)
            self._texts.pop(turn_id, None)

    def __len__(self) -> int:
        """How many turns have a frame in this process's memory."""
        with self._lock:
            return len(self._frames)


def make_partials(settings) -> PartialFrames:
    """The frame store for ``settings`` (an ``app.config.Settings``):
    shared through Redis when ``redis_url`` is set, else in memory."""
    if settings.redis_url:
        from app.live_redis import RedisPartialFrames

        return RedisPartialFrames(settings.redis_url)
    return PartialFrames()
