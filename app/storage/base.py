"""The storage interface every caller uses (:class:`Store`), independent of
where the bytes live (:mod:`app.storage.file`, :mod:`app.storage.s3`).

Two areas, each addressed by names relative to it:

- **blobs**: ``<sha[:2]>/<sha><suffix>``, content-addressed and written once:
  ``.png`` (an image), ``.thumb.webp`` (its thumbnail), ``.w512.webp`` and
  ``.w1024.webp`` (previews), ``.source`` (a vendor's original result file);
- **cache**: derived files that may be deleted at any time and are made
  again on demand (C2PA signed copies ``<key[:2]>/<key>.png``, timelines
  ``timelines/<key>.webp``).
"""
from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

SHA_RE = re.compile(r"^[0-9a-f]{64}$")
SHARD_RE = re.compile(r"^[0-9a-f]{2}$")
#: Suffix of a vendor's original result file (:meth:`Store.put_source`).
SOURCE_SUFFIX = ".source"
#: Suffix of a blob's WebP thumbnail (256 px on the long side).
THUMB_SUFFIX = ".thumb.webp"
_SUFFIX = re.compile(r"^\.(png|thumb\.webp|w\d{1,5}\.webp|source)$")
_NAME = re.compile(r"^[0-9a-f]{2}/(?P<sha>[0-9a-f]{64})(?P<suffix>\..+)$")


def blob_name(sha256: str, suffix: str = ".png") -> str:
    """The name of blob ``sha256`` with ``suffix`` in the blob area,
    ``<sha[:2]>/<sha><suffix>``. Raises ValueError for a string that is not
    a lowercase sha256 hex digest, or an unknown suffix."""
    if not SHA_RE.match(sha256):
        raise ValueError(f"not a sha256 digest: {sha256!r}")
    if not _SUFFIX.match(suffix):
        raise ValueError(f"not a blob suffix: {suffix!r}")
    return f"{sha256[:2]}/{sha256}{suffix}"


@dataclass(frozen=True)
class Entry:
    """One stored object: ``name`` relative to its area, ``mtime`` (Unix
    seconds: a file's modification time, an S3 object's ``LastModified``)
    and ``size`` in bytes."""

    name: str
    mtime: float
    size: int


class StorageError(RuntimeError):
    """The store cannot be reached or used; the message says why."""


class Store(ABC):
    """Where images live. Subclasses implement the primitives (names
    relative to the blob area); the blob methods below are shared."""

    # ------------------------------------------------------------ primitives

    @abstractmethod
    def _put_once(self, name: str, data: bytes) -> None:
        """Write ``data`` under ``name`` unless an object is there already;
        then refresh its age instead (``retouch gc`` spares young objects,
        so a blob reused by a row that has not committed yet survives)."""

    @abstractmethod
    def _get(self, name: str) -> bytes:
        """All bytes of ``name``; FileNotFoundError when missing."""

    @abstractmethod
    def _open(self, name: str) -> tuple[BinaryIO, int]:
        """A readable binary stream of ``name`` (the caller closes it) and
        its size in bytes; FileNotFoundError when missing."""

    @abstractmethod
    def _stat(self, name: str) -> Entry | None:
        """``name``'s age and size now, or None when missing."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Delete blob-area object ``name``; nothing happens when missing."""

    @abstractmethod
    def entries(self) -> Iterator[Entry]:
        """Every object in the blob area with its age and size (for gc):
        names ``<xx>/<file>`` under two-hex-digit shards, in name order."""

    @abstractmethod
    def location(self, name: str):
        """Where ``name`` is, for people: a Path (folder) or ``s3://`` URL."""

    @abstractmethod
    def cache_get(self, name: str) -> bytes | None:
        """The cached file ``name``, or None when not cached."""

    @abstractmethod
    def cache_exists(self, name: str) -> bool:
        """Whether the cached file ``name`` is there."""

    @abstractmethod
    def cache_put(self, name: str, data: bytes) -> None:
        """Cache ``data`` as ``name`` (overwrites: caches are derived)."""

    @abstractmethod
    def cache_entries(self) -> Iterator[Entry]:
        """Every cached file (``retouch migrate-data`` copies them)."""

    @abstractmethod
    def describe(self) -> str:
        """Where this store is, in words, for logs."""

    def presigned_url(self, sha256: str, suffix: str, *, media_type: str, cache_control: str,
                      expires_s: int, content_disposition: str | None = None) -> str | None:
        """A URL a browser can GET the blob from without the app, or None
        when the store has none (a folder). See :class:`app.storage.s3.S3Store`."""
        return None

    def put_object(self, name: str, data: bytes) -> None:
        """Write blob-area object ``name`` once (as :meth:`_put_once`); for
        copying a store (``retouch migrate-data``). Raises ValueError for a
        name that is not ``<sha[:2]>/<sha><suffix>``."""
        m = _NAME.match(name)
        if m is None or blob_name(m["sha"], m["suffix"]) != name:
            raise ValueError(f"not a blob name: {name!r}")
        self._put_once(name, data)

    def get_object(self, name: str) -> bytes:
        """All bytes of blob-area object ``name``; FileNotFoundError when missing."""
        return self._get(name)

    def stat(self, name: str) -> Entry | None:
        """Blob-area object ``name``'s age and size now, or None when missing."""
        return self._stat(name)

    # ------------------------------------------------------------ blobs

    def put(self, data: bytes) -> str:
        """Store ``data`` (PNG bytes); returns its sha256 hex digest. A blob
        that already exists is not written again (its age is refreshed)."""
        sha = hashlib.sha256(data).hexdigest()
        self._put_once(blob_name(sha), data)
        return sha

    def put_thumbnail(self, sha256: str, data: bytes) -> None:
        """Store the thumbnail bytes (WebP) of the blob ``sha256``."""
        self._put_once(blob_name(sha256, THUMB_SUFFIX), data)

    def put_variant(self, sha256: str, suffix: str, data: bytes) -> None:
        """Store ``data``, a file derived from blob ``sha256`` (a preview,
        ``suffix`` ``.w512.webp``), written once. Raises ValueError for a
        bad digest or suffix."""
        self._put_once(blob_name(sha256, suffix), data)

    def put_source(self, data: bytes) -> str:
        """Store a vendor's original result file (PNG, JPEG or WebP, exactly
        as the vendor sent it, with its C2PA manifest) under the suffix
        :data:`SOURCE_SUFFIX`, which is not ``.png``, so nothing takes it
        for a version PNG. Returns its sha256 hex digest (of ``data``)."""
        sha = hashlib.sha256(data).hexdigest()
        self._put_once(blob_name(sha, SOURCE_SUFFIX), data)
        return sha

    def read(self, sha256: str, suffix: str = ".png") -> bytes:
        """The bytes of blob ``sha256`` (or its ``suffix`` variant). Raises
        FileNotFoundError if it is missing, ValueError for a bad digest."""
        return self._get(blob_name(sha256, suffix))

    def read_source(self, sha256: str) -> bytes:
        """The bytes of a file :meth:`put_source` stored. Raises
        FileNotFoundError if it is missing."""
        return self.read(sha256, SOURCE_SUFFIX)

    def open(self, sha256: str, suffix: str = ".png") -> tuple[BinaryIO, int]:
        """(a binary stream the caller closes, the size in bytes) of blob
        ``sha256``'s ``suffix`` file. Raises FileNotFoundError if missing."""
        return self._open(blob_name(sha256, suffix))

    def size(self, sha256: str, suffix: str = ".png") -> int:
        """Size in bytes of blob ``sha256``'s ``suffix`` file. Raises
        FileNotFoundError if it is missing."""
        entry = self._stat(blob_name(sha256, suffix))
        if entry is None:
            raise FileNotFoundError(blob_name(sha256, suffix))
        return entry.size

    def exists(self, sha256: str, suffix: str = ".png") -> bool:
        """Whether blob ``sha256``'s ``suffix`` file is stored."""
        return self._stat(blob_name(sha256, suffix)) is not None
