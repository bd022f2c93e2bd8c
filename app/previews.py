"""WebP previews of stored images at display size, for the conversation.

A 1024x1024 version is a 1-3 MB PNG; the conversation shows it about 512
pixels wide. Pages therefore ask for ``?size=512`` (and ``?size=1024`` for
2x screens, through ``srcset``): a lossy WebP at most that wide or high,
made from the stored PNG on first request and kept in the store beside it
(``<sha>.w512.webp``, :meth:`app.storage.Store.put_variant`), so the work is
done once per image and width. The full PNG is fetched only to zoom,
download or compare.
"""
from __future__ import annotations

import io

from PIL import Image

from app.imaging import THUMBNAIL_SIZE, encode_thumbnail, open_png
from app.storage import Store
from app.storage.base import THUMB_SUFFIX

#: The preview widths pages may ask for, as the ``size`` query value. 128: the version tree's
#: nodes, shown 56 CSS pixels wide (2x screens included), made from the 256-pixel thumbnail.
PREVIEW_WIDTHS = ("128", "512", "1024")
#: WebP quality of previews (0-100): they stand in for the image on screen only.
PREVIEW_QUALITY = 82


def preview_suffix(width: int) -> str:
    """The store suffix of a preview ``width`` pixels wide: ``.w512.webp``."""
    return f".w{int(width)}.webp"


def ensure_preview(store: Store, sha256: str, width: int) -> str:
    """Make blob ``sha256``'s WebP preview, at most ``width`` pixels on its
    long side (never enlarged), unless it is stored already; returns its
    store suffix (read it with ``store.open(sha256, suffix)``). Raises
    FileNotFoundError when the blob itself is missing."""
    suffix = preview_suffix(width)
    if store.exists(sha256, suffix):
        return suffix
    image = None
    if width <= min(THUMBNAIL_SIZE):
        try:  # the thumbnail has every pixel such a preview needs, and decodes in a fraction of the PNG's time
            image = _decoded_thumbnail(store.read(sha256, THUMB_SUFFIX))
        except FileNotFoundError:
            pass
    if image is None:
        image = open_png(store.read(sha256))
    if max(image.size) > width:
        scale = width / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.LANCZOS, reducing_gap=2.0)
    buf = io.BytesIO()
    image.save(buf, format="WEBP", quality=PREVIEW_QUALITY, method=4)
    store.put_variant(sha256, suffix, buf.getvalue())
    return suffix


def _decoded_thumbnail(data: bytes) -> Image.Image | None:
    """A stored WebP thumbnail (written by this app, at most 256x256
    pixels) decoded, or None when it cannot be read."""
    try:
        with Image.open(io.BytesIO(data), formats=["WEBP"]) as im:
            im.load()
            return im.copy()
    except (OSError, ValueError):
        return None


def make_thumbnail(store: Store, sha256: str) -> None:
    """Make blob ``sha256``'s WebP thumbnail (``app.imaging.encode_thumbnail``,
    at most 256x256 pixels) from its PNG and store it, for a caller that
    found it missing: a turn's result gets its thumbnail just after its
    version is committed, so a page that asks in between gets it made here.
    The store writes it once, so one written meanwhile is kept. Raises
    FileNotFoundError when the blob itself is missing."""
    store.put_thumbnail(sha256, encode_thumbnail(open_png(store.read(sha256))))
