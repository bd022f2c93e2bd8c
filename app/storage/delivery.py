"""HTTP responses for stored images, from any store: small files from
memory, large ones streamed in chunks (never read whole), or a redirect to
a presigned S3 URL (``RETOUCH_S3_REDIRECT=true``)."""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import BinaryIO

from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from app.storage.base import THUMB_SUFFIX, Store
from app.storage.file import FileStore

log = logging.getLogger("retouch.delivery")

#: Image files up to this many bytes are sent from memory; larger ones are streamed.
INLINE_FILE_BYTES = 512 * 1024
#: Bytes per chunk of a streamed image.
CHUNK_BYTES = 256 * 1024
#: Thumbnails and previews known to be stored, remembered per process so a
#: redirect needs no HeadObject for them (stored files never change; gc only
#: removes those of images no row uses).
KNOWN_VARIANTS = 8192
_known: OrderedDict[tuple[str, str, str], None] = OrderedDict()
_known_lock = threading.Lock()


def _stored(store: Store, sha256: str, suffix: str) -> bool:
    key = (store.describe(), sha256, suffix)
    with _known_lock:
        if key in _known:
            _known.move_to_end(key)
            return True
    if not store.exists(sha256, suffix):
        return False
    with _known_lock:
        _known[key] = None
        while len(_known) > KNOWN_VARIANTS:
            _known.popitem(last=False)
    return True


def _chunks(fh: BinaryIO) -> Iterator[bytes]:
    try:
        while chunk := fh.read(CHUNK_BYTES):
            yield chunk
    finally:
        fh.close()


def variant_suffix(store: Store, sha256: str, variant: str, *, check_thumb: bool) -> tuple[str, str]:
    """(store suffix, media type) of ``variant``: ``""`` the PNG, ``"thumb"``
    the WebP thumbnail (made now when the blob has none and ``check_thumb``;
    the PNG if it cannot be made),
    ``"512"``/``"1024"`` a preview, made now if needed
    (:func:`app.previews.ensure_preview`). Raises FileNotFoundError when
    the blob is missing."""
    if variant == "thumb":
        if not check_thumb or _stored(store, sha256, THUMB_SUFFIX):
            return THUMB_SUFFIX, "image/webp"
        from app.previews import make_thumbnail

        try:
            make_thumbnail(store, sha256)  # a result whose thumbnail is still being written, or an old blob
        except FileNotFoundError:
            raise
        except Exception:  # a PNG that cannot be decoded here: serve it whole rather than fail
            log.exception("could not make the thumbnail of blob %s", sha256)
            return ".png", "image/png"
        return THUMB_SUFFIX, "image/webp"
    if variant:
        from app.previews import ensure_preview, preview_suffix

        if _stored(store, sha256, preview_suffix(int(variant))):
            return preview_suffix(int(variant)), "image/webp"
        return ensure_preview(store, sha256, int(variant)), "image/webp"
    return ".png", "image/png"


def stored_response(store: Store, sha256: str, variant: str, headers: dict[str, str], *,
                    redirect: bool = False, presign_seconds: int = 3600) -> Response:
    """The response for blob ``sha256``'s ``variant`` (see
    :func:`variant_suffix`) with ``headers`` (ETag, Cache-Control...).

    With ``redirect`` and a store that presigns (S3): **307 Temporary
    Redirect** to a presigned GET URL valid ``presign_seconds`` seconds,
    whose response carries the same Content-Type and Cache-Control
    (RFC 9110 §15.4.8: 307 keeps the method and says the target is
    temporary, as a presigned URL is; 301/308 would let a client keep an
    URL that expires, and 302 allows a client to change the method). The
    redirect itself may be reused privately for half the URL's lifetime.

    Otherwise the bytes: up to :data:`INLINE_FILE_BYTES` from memory, larger
    ones streamed (a folder's file by ``FileResponse``, which also answers
    Range requests; an S3 object in :data:`CHUNK_BYTES` chunks with a
    Content-Length, without Range).
    Raises FileNotFoundError when the file is missing."""
    if redirect:
        suffix, media_type = variant_suffix(store, sha256, variant, check_thumb=True)
        url = store.presigned_url(sha256, suffix, media_type=media_type,
                                  cache_control=headers.get("Cache-Control", "no-cache"), expires_s=presign_seconds,
                                  content_disposition=headers.get("Content-Disposition"))
        if url is not None:
            extra = {k: v for k, v in headers.items() if k.lower() not in ("cache-control", "content-disposition")}
            return RedirectResponse(url, status_code=307,
                                    headers={**extra, "Cache-Control": f"private, max-age={presign_seconds // 2}"})
    suffix, media_type = (".png", "image/png") if not variant else \
        (THUMB_SUFFIX, "image/webp") if variant == "thumb" else (f".w{int(variant)}.webp", "image/webp")
    try:
        fh, size = store.open(sha256, suffix)  # one request: no existence check first
    except FileNotFoundError:
        if suffix == ".png":
            raise
        # No thumbnail (an image stored without one is served whole), or no preview yet (made now).
        suffix, media_type = variant_suffix(store, sha256, variant, check_thumb=True)
        fh, size = store.open(sha256, suffix)
    if size <= INLINE_FILE_BYTES:
        # Small files (thumbnails, previews) are read here, in the endpoint's worker thread:
        # streaming them costs more thread hops than the read itself.
        try:
            return Response(fh.read(), media_type=media_type, headers=headers)
        finally:
            fh.close()
    if isinstance(store, FileStore):
        # A file: Starlette's FileResponse also answers Range requests (RFC 9110 §14.2).
        fh.close()
        return FileResponse(store.path(sha256, suffix), media_type=media_type, headers=headers)
    return StreamingResponse(_chunks(fh), media_type=media_type, headers={**headers, "Content-Length": str(size)})
