"""Where images live: the storage interface every caller uses.

``open_store(settings)`` picks the store by ``RETOUCH_STORAGE_URL``:

- unset: the data folder, ``<RETOUCH_DATA_DIR>/blobs/`` (:class:`FileStore`);
- ``file:///srv/retouch``: another folder (blobs in ``/srv/retouch/blobs/``);
- ``s3://bucket/prefix``: an S3 bucket (:class:`app.storage.s3.S3Store`),
  at ``RETOUCH_S3_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL``) for an
  S3-compatible server.

Callers use :class:`Store`'s methods (bytes and streams, never paths): see
:mod:`app.storage.base` for the layout and the written-once rule.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from app.storage.base import SHA_RE, SOURCE_SUFFIX, THUMB_SUFFIX, Entry, StorageError, Store, blob_name
from app.storage.file import FileStore, create_once, write_atomically

#: The folder store under its old name (tests and benchmarks use it).
BlobStore = FileStore


class StorageURLError(StorageError, ValueError):
    """``RETOUCH_STORAGE_URL`` is not a ``file://`` or ``s3://`` URL."""


def store_for_url(url: str | None, *, data_dir: Path, endpoint_url: str | None = None,
                  check: bool = True) -> Store:
    """The store ``url`` names (see the module docstring); None or ``""``
    means ``<data_dir>/blobs``. With ``check``, an S3 bucket is HEADed
    first. Raises :class:`StorageURLError` for another scheme or an S3 URL
    without a bucket, :class:`StorageError` when the bucket
    cannot be used (both are :class:`StorageError`)."""
    if not url:
        return FileStore(Path(data_dir) / "blobs")
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StorageURLError(f"a file:// storage URL names a local folder (file:///path), not {url!r}")
        root = Path(unquote(parts.path))
        return FileStore(root / "blobs", root / "c2pa-cache")
    if parts.scheme == "s3":
        if not parts.netloc:
            raise StorageURLError(f"an s3:// storage URL needs a bucket: s3://bucket/prefix, not {url!r}")
        from app.storage.s3 import S3Store

        store = S3Store(parts.netloc, unquote(parts.path), endpoint_url=endpoint_url)
        if check:
            store.check()
        return store
    raise StorageURLError(f"RETOUCH_STORAGE_URL must be file:///path or s3://bucket/prefix, not {url!r}")


def open_store(settings, *, check: bool = True) -> Store:
    """The store the settings name (``storage_url``, ``s3_endpoint_url``,
    ``data_dir``). Raises as :func:`store_for_url`."""
    return store_for_url(getattr(settings, "storage_url", None), data_dir=settings.data_dir,
                         endpoint_url=getattr(settings, "s3_endpoint_url", None), check=check)


__all__ = ["BlobStore", "Entry", "FileStore", "SHA_RE", "SOURCE_SUFFIX", "THUMB_SUFFIX", "StorageError", "Store",
           "StorageURLError", "blob_name", "create_once", "open_store", "store_for_url", "write_atomically"]
