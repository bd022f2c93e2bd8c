"""The last results of turns, kept decoded in memory, so that the next turn
of the same thread starts from pixels instead of decoding its base PNG
again (42 ms for a 1024x1024 photo, the performance issue measured).

Bounded by pixels, least recently used first out. Per process; a miss just
decodes the stored PNG, so the cache never decides what a turn sees.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

from PIL import Image

#: Pixels kept in all (width x height summed): 16 images of 1024x1024,
#: about 50 MB as RGB.
MAX_PIXELS = 16 * 1024 * 1024


class DecodedImages:
    """Decoded images by the sha256 of their stored PNG; thread-safe.

    :meth:`get` returns a copy, so a backend that changes its input cannot
    change what the next turn gets."""

    def __init__(self, max_pixels: int = MAX_PIXELS) -> None:
        self.max_pixels = max_pixels
        self._images: OrderedDict[str, Image.Image] = OrderedDict()
        self._pixels = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def put(self, sha256: str, image: Image.Image) -> None:
        """Keep ``image`` (RGB or RGBA, exactly the stored PNG's pixels) under
        ``sha256``; images larger than the whole budget are not kept."""
        pixels = image.width * image.height
        if pixels > self.max_pixels:
            return
        with self._lock:
            old = self._images.pop(sha256, None)
            if old is not None:
                self._pixels -= old.width * old.height
            self._images[sha256] = image
            self._pixels += pixels
            while self._pixels > self.max_pixels:
                _, dropped = self._images.popitem(last=False)
                self._pixels -= dropped.width * dropped.height

    def get(self, sha256: str) -> Image.Image | None:
        """A copy of the image stored under ``sha256``, or None."""
        with self._lock:
            image = self._images.get(sha256)
            if image is None:
                self.misses += 1
                return None
            self._images.move_to_end(sha256)
            self.hits += 1
        return image.copy()
