"""Garbage collection of image blobs nothing refers to.

Blobs are written before the transaction that refers to them commits (see
``app/worker.py`` and ``app/services.py``), so a crash, a failed transaction
or a request rejected after its uploads were stored can leave files under
``<data dir>/blobs/`` that no row names:

- ``<xx>/<sha256>.png`` images, ``<xx>/<sha256>.thumb.webp`` thumbnails and
  ``<xx>/<sha256>.w512.webp`` previews (counted as thumbnails) whose sha256 is not a version's ``sha256``, a turn's ``mask_sha256`` or
  ``markup_sha256``, or one of a turn's ``reference_sha256s``;
- ``<xx>/<sha256>.source`` files (a vendor's original result with its C2PA
  manifest, see ``BlobStore.put_source``) whose sha256 no turn's
  ``output["source_sha256"]`` names;
- ``<xx>/.tmp-*`` files a write left behind when the process died between
  creating the temporary file and renaming it into place.

:func:`collect_garbage` deletes them, but only when their modification time
is older than ``grace_seconds`` (default :data:`DEFAULT_GRACE_SECONDS`), so a
blob written by a turn or upload whose transaction has not committed yet, or
a temporary file still being written, is never touched. Anything else in the
blob folder (unknown names, folders) is left alone. ``retouch gc`` runs it.
"""
from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, inspect, select

from app.models import Turn, Version
from app.storage import SOURCE_SUFFIX, BlobStore

#: Files younger than this many seconds (by mtime) are never deleted.
DEFAULT_GRACE_SECONDS = 3600.0

_BLOB = re.compile(r"^(?P<sha>[0-9a-f]{64})(?P<suffix>\.png|\.thumb\.webp|\.w\d{1,5}\.webp|\.source)$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_SHARD = re.compile(r"^[0-9a-f]{2}$")


class NotARetouchDatabase(RuntimeError):
    """The database has no Retouch tables, so every blob would look unused."""


@dataclass
class GcResult:
    """What one collection did (or, with ``dry_run``, would do).

    ``removed`` lists the deleted paths; the counts split them by kind
    (``sources_removed``: vendors' original ``.source`` files) and
    ``bytes_freed`` is their total size in bytes. ``referenced`` counts the
    distinct sha256 digests rows refer to, ``kept_young`` the unreferenced
    files spared because they are younger than the grace period, and
    ``missing`` the referenced digests whose ``.png`` is not on disk (a
    problem gc cannot fix; it only reports it).
    """

    dry_run: bool = False
    blobs_removed: int = 0
    thumbnails_removed: int = 0
    temp_files_removed: int = 0
    sources_removed: int = 0
    bytes_freed: int = 0
    referenced: int = 0
    kept_young: int = 0
    missing: list[str] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)

    @property
    def files_removed(self) -> int:
        return self.blobs_removed + self.thumbnails_removed + self.temp_files_removed + self.sources_removed


def referenced_digests(engine: Engine) -> set[str]:
    """Every sha256 a row refers to: versions' images, turns' masks and
    turns' reference images.

    Raises :class:`NotARetouchDatabase` when the ``versions`` or ``turns``
    table is missing (a wrong ``RETOUCH_DATABASE_URL`` would otherwise make
    every blob look unused).
    """
    tables = set(inspect(engine).get_table_names())
    if not {"versions", "turns"} <= tables:
        raise NotARetouchDatabase(
            f"the database at {engine.url.render_as_string(hide_password=True)} has no Retouch "
            "tables (run `retouch migrate`, or check RETOUCH_DATABASE_URL); nothing was removed"
        )
    refs: set[str] = set()
    with engine.connect() as conn:
        refs.update(conn.scalars(select(Version.sha256).distinct()))
        for column in (Turn.mask_sha256, Turn.markup_sha256):
            refs.update(conn.scalars(select(column).where(column.is_not(None)).distinct()))
        for shas in conn.scalars(select(Turn.reference_sha256s)):
            refs.update(s for s in (shas or []) if isinstance(s, str))
    return refs


def referenced_sources(engine: Engine) -> set[str]:
    """The sha256 of every vendor's original file a turn keeps
    (``turns.output["source_sha256"]``, stored as ``<sha>.source``)."""
    with engine.connect() as conn:
        return {o["source_sha256"] for o in conn.scalars(select(Turn.output))
                if isinstance(o, dict) and isinstance(o.get("source_sha256"), str)}


def collect_garbage(
    engine: Engine,
    store: BlobStore,
    *,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    dry_run: bool = False,
    now: float | None = None,
) -> GcResult:
    """Delete unreferenced blobs, their thumbnails and leftover ``.tmp-*``
    files older than ``grace_seconds`` (seconds, by mtime, compared with
    ``now``, a Unix time in seconds defaulting to the current time).

    The references are read before the folder is scanned, and each file's
    age is checked just before it is deleted. With ``dry_run`` nothing is
    deleted and the result lists what would be. Returns a :class:`GcResult`.
    Raises :class:`NotARetouchDatabase` (before touching any file) when the
    database is not a migrated Retouch database.
    """
    if grace_seconds < 0:
        raise ValueError("grace_seconds must be 0 or more")
    refs = referenced_digests(engine)
    sources = referenced_sources(engine)
    now = time.time() if now is None else now
    result = GcResult(dry_run=dry_run, referenced=len(refs | sources))
    root = Path(store.root)
    if not root.is_dir():
        return result
    for shard in sorted(root.iterdir()):
        if not (shard.is_dir() and _SHARD.match(shard.name)):
            continue
        for path in sorted(shard.iterdir()):
            name = path.name
            if name.startswith(".tmp-"):
                kind = "temp"
            else:
                m = _BLOB.match(name)
                if m is None or m["sha"][:2] != shard.name:
                    continue
                if m["suffix"] == SOURCE_SUFFIX:
                    if m["sha"] in sources:
                        continue
                    kind = "source"
                elif m["sha"] in refs:
                    continue
                else:
                    kind = "blob" if m["suffix"] == ".png" else "thumbnail"
            try:
                st = path.lstat()
            except FileNotFoundError:  # gone meanwhile (a temp file renamed into place)
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if now - st.st_mtime < grace_seconds:
                result.kept_young += 1
                continue
            if not dry_run:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
            result.removed.append(path)
            result.bytes_freed += st.st_size
            if kind == "blob":
                result.blobs_removed += 1
            elif kind == "thumbnail":
                result.thumbnails_removed += 1
            elif kind == "source":
                result.sources_removed += 1
            else:
                result.temp_files_removed += 1
    result.missing = sorted(sha for sha in refs if _SHA.match(sha) and not store.exists(sha))
    return result
