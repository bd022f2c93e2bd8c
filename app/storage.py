"""Content-addressed blob storage for images.

Each blob is named by the sha256 of its bytes under ``<data dir>/blobs/`` and
is written once, however many versions, turns or forks use it. Writes go to a
temporary file in the same folder, are fsynced, then renamed with
``os.replace`` (atomic on POSIX), so a reader never sees a half-written file.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

_SHA = re.compile(r"^[0-9a-f]{64}$")
#: Suffix of a vendor's original result file (:meth:`BlobStore.put_source`).
SOURCE_SUFFIX = ".source"


class BlobStore:
    """Blobs under ``root``: ``<root>/<sha[:2]>/<sha>.png`` and its thumbnail
    ``<sha>.thumb.webp``; a vendor's original result file carrying a C2PA
    manifest is ``<sha>.source`` (see :meth:`put_source`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str, suffix: str = ".png") -> Path:
        """Where the blob with this hex digest lives. Raises ValueError for a
        string that is not a sha256 hex digest."""
        if not _SHA.match(sha256):
            raise ValueError(f"not a sha256 digest: {sha256!r}")
        return self.root / sha256[:2] / f"{sha256}{suffix}"

    def thumbnail_path(self, sha256: str) -> Path:
        return self.path(sha256, ".thumb.webp")

    def put(self, data: bytes) -> str:
        """Store ``data`` (PNG bytes); returns its sha256 hex digest. A blob
        that already exists is not written again."""
        sha = hashlib.sha256(data).hexdigest()
        self._write(self.path(sha), data)
        return sha

    def put_thumbnail(self, sha256: str, data: bytes) -> None:
        """Store the thumbnail bytes (WebP) of the blob ``sha256``."""
        self._write(self.thumbnail_path(sha256), data)

    def put_variant(self, path: Path, data: bytes) -> None:
        """Store ``data`` at ``path``, a derived file of a blob (a preview)
        from :meth:`path` with another suffix; written atomically."""
        self._write(path, data)

    def put_source(self, data: bytes) -> str:
        """Store a vendor's original result file (PNG, JPEG or WebP, exactly
        as the vendor sent it, with its C2PA manifest) under the suffix
        :data:`SOURCE_SUFFIX`, which is not ``.png``, so nothing takes it
        for a version PNG. Returns its sha256 hex digest (of ``data``)."""
        sha = hashlib.sha256(data).hexdigest()
        self._write(self.path(sha, SOURCE_SUFFIX), data)
        return sha

    def read_source(self, sha256: str) -> bytes:
        """The bytes of a file :meth:`put_source` stored. Raises
        FileNotFoundError if it is missing."""
        return self.path(sha256, SOURCE_SUFFIX).read_bytes()

    def read(self, sha256: str) -> bytes:
        """The blob's bytes. Raises FileNotFoundError if it is missing."""
        return self.path(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    @staticmethod
    def _write(target: Path, data: bytes) -> None:
        if target.is_file():
            # Reused: refresh its age so ``retouch gc`` (which spares blobs newer
            # than its grace period) cannot delete it before the new row commits.
            os.utime(target)
            return
        write_atomically(target, data)


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target``: a temporary file in the same folder,
    fsynced, renamed over ``target`` with ``os.replace`` (atomic on POSIX),
    then the folder fsynced, so a reader never sees a half-written file and
    a crash never leaves one. Makes the folder if needed."""
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
