"""The folder store: blobs under ``<data dir>/blobs/``, caches under
``<data dir>/c2pa-cache/`` (the layout Retouch always had).

Writes go to a temporary file in the same folder, are fsynced, then renamed
with ``os.replace`` (atomic on POSIX), so a reader never sees a half-written
file.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from app.storage.base import SHA_RE, SHARD_RE, Entry, Store, blob_name


class FileStore(Store):
    """Blobs under ``root``: ``<root>/<sha[:2]>/<sha>.png``, its thumbnail
    ``<sha>.thumb.webp``, previews ``<sha>.w512.webp`` and a vendor's
    original result ``<sha>.source``. Cached derived files (signed copies,
    timelines) live under ``cache_root`` (default ``<root>/../c2pa-cache``)."""

    def __init__(self, root: Path, cache_root: Path | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.cache_root = Path(cache_root) if cache_root is not None else self.root.parent / "c2pa-cache"

    # -- file-only helpers (tests and benchmarks look at the files) --

    def path(self, sha256: str, suffix: str = ".png") -> Path:
        """Where the blob with this hex digest lives. Raises ValueError for a
        string that is not a sha256 hex digest."""
        return self.root / blob_name(sha256, suffix)

    def thumbnail_path(self, sha256: str) -> Path:
        """Where the blob's WebP thumbnail lives."""
        return self.path(sha256, ".thumb.webp")

    def cache_path(self, name: str) -> Path:
        """Where the cached file ``name`` (see :meth:`Store.cache_put`) lives."""
        return self.cache_root / name

    # -- Store primitives --

    def _put_once(self, name: str, data: bytes) -> None:
        target = self.root / name
        if target.is_file():
            # Reused: refresh its age so ``retouch gc`` (which spares blobs newer
            # than its grace period) cannot delete it before the new row commits.
            os.utime(target)
            return
        write_atomically(target, data)

    def _get(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def _open(self, name: str) -> tuple[BinaryIO, int]:
        fh = open(self.root / name, "rb")
        return fh, os.fstat(fh.fileno()).st_size

    def _stat(self, name: str) -> Entry | None:
        try:
            st = (self.root / name).stat()
        except FileNotFoundError:
            return None
        return Entry(name, st.st_mtime, st.st_size)

    def delete(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)

    def entries(self) -> Iterator[Entry]:
        for shard in sorted(self.root.iterdir()) if self.root.is_dir() else ():
            if not (shard.is_dir() and SHARD_RE.match(shard.name)):
                continue
            for path in sorted(shard.iterdir()):
                try:
                    st = path.lstat()
                except FileNotFoundError:  # gone meanwhile (a temp file renamed into place)
                    continue
                if path.is_symlink() or not path.is_file():
                    continue
                yield Entry(f"{shard.name}/{path.name}", st.st_mtime, st.st_size)

    def location(self, name: str) -> Path:
        return self.root / name

    def cache_get(self, name: str) -> bytes | None:
        try:
            return (self.cache_root / name).read_bytes()
        except FileNotFoundError:
            return None

    def cache_exists(self, name: str) -> bool:
        return (self.cache_root / name).is_file()

    def cache_put(self, name: str, data: bytes) -> None:
        write_atomically(self.cache_root / name, data)

    def cache_entries(self) -> Iterator[Entry]:
        if not self.cache_root.is_dir():
            return
        for path in sorted(self.cache_root.rglob("*")):
            if path.is_file() and not path.is_symlink() and not path.name.startswith(".tmp-"):
                st = path.stat()
                yield Entry(path.relative_to(self.cache_root).as_posix(), st.st_mtime, st.st_size)

    def describe(self) -> str:
        return str(self.root)


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target``: a temporary file in the same folder,
    fsynced, renamed over ``target`` with ``os.replace`` (atomic on POSIX),
    then the folder fsynced, so a reader never sees a half-written file and
    a crash never leaves one. Makes the folder if needed. Raises OSError."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def create_once(path: Path, data: bytes) -> None:
    """Create ``path`` holding ``data``, readable by its owner only (mode
    0600, ``mkstemp``'s), unless it exists already: the file is written
    under a temporary name and hard-linked into place, which fails when
    another process got there first (then its file is kept). For secrets
    made at first start (the cookie key, the C2PA instance key)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


__all__ = ["FileStore", "write_atomically", "create_once", "SHA_RE"]
