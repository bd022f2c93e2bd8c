"""Garbage collection of image blobs nothing refers to, in any store (the
data folder or an S3 bucket, :mod:`app.storage`).

Blobs are written before the transaction that refers to them commits (see
``app/worker.py`` and ``app/services.py``), so a crash, a failed transaction
or a request rejected after its uploads were stored can leave objects in
the blob area that no row names:

- ``<xx>/<sha256>.png`` images, ``<xx>/<sha256>.thumb.webp`` thumbnails and
  ``<xx>/<sha256>.w512.webp`` previews (counted as thumbnails) whose sha256
  is not a version's ``sha256``, a turn's ``mask_sha256`` or
  ``markup_sha256``, or one of a turn's ``reference_sha256s``;
- ``<xx>/<sha256>.source`` files (a vendor's original result with its C2PA
  manifest, see ``Store.put_source``) whose sha256 no turn's
  ``output["source_sha256"]`` names;
- ``<xx>/.tmp-*`` files a write to the folder store left behind when the
  process died between creating the temporary file and renaming it.

:func:`collect_garbage` deletes them, but only when their age (a file's
modification time, an S3 object's ``LastModified``) is older than
``grace_seconds`` (default :data:`DEFAULT_GRACE_SECONDS`), so a blob written
by a turn or upload whose transaction has not committed yet, or a temporary
file still being written, is never touched. A blob stored again refreshes
its age (``Store.put``). Anything else (unknown names) is left alone.
``retouch gc`` runs it, after purging the threads deleted longer ago than
their undo window (``purge_deleted_after``, :func:`app.services.purge_deleted_threads`),
so the images only those threads used become unreferenced and, once older
than the grace period, are removed in the same run.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine, inspect, select

from app.models import Turn, Version
from app.storage import SOURCE_SUFFIX, Store

#: Objects younger than this many seconds are never deleted.
DEFAULT_GRACE_SECONDS = 3600.0

_BLOB = re.compile(r"^(?P<sha>[0-9a-f]{64})(?P<suffix>\.png|\.thumb\.webp|\.w\d{1,5}\.webp|\.source)$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


class NotARetouchDatabase(RuntimeError):
    """The database has no Retouch tables, so every blob would look unused."""


@dataclass
class GcResult:
    """What one collection did (or, with ``dry_run``, would do).

    ``removed`` lists the deleted objects as the store names them
    (``Store.location``: a Path in a folder, an ``s3://`` URL in a bucket);
    the counts split them by kind (``sources_removed``: vendors' original
    ``.source`` files) and ``bytes_freed`` is their total size in bytes.
    ``referenced`` counts the distinct sha256 digests rows refer to,
    ``kept_young`` the unreferenced objects spared because they are younger
    than the grace period, and ``missing`` the referenced digests whose
    ``.png`` is not stored (a problem gc cannot fix; it only reports it).
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
    removed: list = field(default_factory=list)
    #: Deleted threads purged first (with ``dry_run``: that would be).
    threads_purged: int = 0

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


def _kind(name: str, refs: set[str], sources: set[str]) -> str | None:
    """``blob``, ``thumbnail``, ``source`` or ``temp`` for an unreferenced
    object ``<xx>/<file>``; None for one to keep (referenced or unknown)."""
    shard, _, file = name.partition("/")
    if file.startswith(".tmp-"):
        return "temp"
    m = _BLOB.match(file)
    if m is None or m["sha"][:2] != shard:
        return None
    if m["suffix"] == SOURCE_SUFFIX:
        return None if m["sha"] in sources else "source"
    if m["sha"] in refs:
        return None
    return "blob" if m["suffix"] == ".png" else "thumbnail"


def collect_garbage(
    engine: Engine,
    store: Store,
    *,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    dry_run: bool = False,
    now: float | None = None,
    purge_deleted_after: float | None = None,
) -> GcResult:
    """Delete unreferenced blobs, their thumbnails and previews, unnamed
    ``.source`` files and leftover ``.tmp-*`` files older than
    ``grace_seconds`` (seconds, by age, compared with ``now``, a Unix time
    in seconds defaulting to the current time) from ``store``.

    The references are read before the store is listed, and each object's
    age is read again just before it is deleted (a stat, or an S3
    HeadObject), so one stored again meanwhile is kept. With ``dry_run``
    nothing is deleted and the result lists what would be. Returns a
    :class:`GcResult`. Raises :class:`NotARetouchDatabase` (before touching
    anything) when the database is not a migrated Retouch database, and
    ValueError for a negative grace period.

    With ``purge_deleted_after`` (seconds, ``RETOUCH_DELETE_UNDO_SECONDS``),
    threads deleted longer ago than that are purged first
    (:func:`app.services.purge_deleted_threads`); with ``dry_run`` they are
    only counted, and their images, still referenced, are not listed.
    """
    if grace_seconds < 0:
        raise ValueError("grace_seconds must be 0 or more")
    purged = 0
    if purge_deleted_after is not None:
        referenced_digests(engine)  # NotARetouchDatabase before anything is touched
        purged = _purge(engine, purge_deleted_after, dry_run)
    refs = referenced_digests(engine)
    sources = referenced_sources(engine)
    now = time.time() if now is None else now
    result = GcResult(dry_run=dry_run, referenced=len(refs | sources), threads_purged=purged)
    stored_pngs: set[str] = set()
    for entry in store.entries():
        if entry.name.endswith(".png"):
            stored_pngs.add(entry.name.rpartition("/")[2][:-4])
        kind = _kind(entry.name, refs, sources)
        if kind is None:
            continue
        if now - entry.mtime < grace_seconds:
            result.kept_young += 1
            continue
        fresh = store.stat(entry.name)  # stored again since the listing?
        if fresh is None:
            continue
        if now - fresh.mtime < grace_seconds:
            result.kept_young += 1
            continue
        if not dry_run:
            store.delete(entry.name)
        result.removed.append(store.location(entry.name))
        result.bytes_freed += fresh.size
        if kind == "blob":
            result.blobs_removed += 1
        elif kind == "thumbnail":
            result.thumbnails_removed += 1
        elif kind == "source":
            result.sources_removed += 1
        else:
            result.temp_files_removed += 1
    # A blob written after the listing began may be missing from it: ask the store before reporting.
    result.missing = sorted(sha for sha in refs - stored_pngs if _SHA.match(sha) and not store.exists(sha))
    return result


def _purge(engine: Engine, older_than_seconds: float, dry_run: bool) -> int:
    """Purge (or, with ``dry_run``, count) the threads deleted more than
    ``older_than_seconds`` seconds ago; returns how many."""
    from datetime import timedelta

    from sqlalchemy import func

    from app.db import make_sessionmaker
    from app.models import Thread, utcnow
    from app.services import purge_deleted_threads

    with make_sessionmaker(engine)() as session:
        if dry_run:
            cutoff = utcnow() - timedelta(seconds=max(0.0, older_than_seconds))
            return session.scalar(select(func.count()).select_from(Thread).where(
                Thread.deleted_at.is_not(None), Thread.deleted_at < cutoff)) or 0
        return len(purge_deleted_threads(session, older_than_seconds).thread_ids)
