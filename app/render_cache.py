"""Renderings of a thread cached under its revision (``app/revisions.py``).

A thread page spends most of its time rendering the version tree and the
conversation, and the Thread JSON most of its time loading and serialising
every turn and version (py-spy, ``make bench``). Neither changes between
two writes, so both are kept here, keyed by (what, thread id, revision,
viewer), and served again until a write raises the revision.

Rules that keep a cached rendering equal to a fresh one:

- the key's revision is read in the same snapshot as the rows rendered
  (``app.db.read_snapshot``);
- nothing is cached while the thread has a queued or running turn: those
  change through Core updates that do not raise the revision, and show
  partial images and progress that are not in the database;
- the viewer (owner, or which share link) and anything else the rendering
  depends on is part of the key.

Per process, bounded by :data:`MAX_BYTES` (least recently used first out,
``cachetools.LRUCache``); a miss renders as before, so the cache never
decides what a page shows. Old revisions are never read again and age out.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

from cachetools import LRUCache
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from app.models import PENDING_STATUSES, Thread, Turn, Version

#: Bytes of rendered text kept in all (a 100-turn thread's JSON is about 150 KB; a page's live block 60 KB).
MAX_BYTES = 32 * 1024 * 1024


#: Built once, run on the session's connection: constructing it and going through the ORM's
#: execution cost more than the query (a call with its session: 0.24 ms before, 0.09 ms so, on SQLite).
_TURNS = Turn.__table__
_PENDING_TURN = (select(_TURNS.c.pk)
                 .where(_TURNS.c.status.in_(PENDING_STATUSES), _TURNS.c.thread_id == bindparam("thread_id"))
                 .limit(1))


def has_pending_turn(session: Session, thread_id: str) -> bool:
    """Whether thread ``thread_id`` has a queued or running turn: one query
    on the ``(status, pk)`` index, whatever the thread's length. Reads in
    the session's transaction (its snapshot, when it has one)."""
    return session.connection().execute(_PENDING_TURN, {"thread_id": thread_id}).first() is not None


def _size(entry: tuple[Any, int]) -> int:
    return entry[1]


class RenderCache:
    """Rendered text by key, thread-safe. An entry is ``(value, bytes)``;
    ``bytes`` is what it counts against :data:`MAX_BYTES`."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._entries: LRUCache = LRUCache(maxsize=max_bytes, getsizeof=_size)
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get_or_make(self, key: Hashable, make: Callable[[], tuple[Any, int]]) -> Any:
        """The value cached under ``key``, else ``make()``'s ``(value,
        bytes)``, kept and returned. ``make`` runs outside the lock (two
        requests may both make a missing value; both are equal). A value
        larger than the whole cache is returned and not kept."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self.hits += 1
                return entry[0]
            self.misses += 1
        value, size = make()
        self.put(key, value, size)
        return value

    def get(self, key: Hashable) -> Any:
        """The value cached under ``key``, or None (not counted in ``hits``
        and ``misses``, which count renderings)."""
        with self._lock:
            entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        """Keep ``value`` under ``key``, counted as ``size`` bytes."""
        with self._lock:
            try:
                self._entries[key] = (value, size)
            except ValueError:  # larger than the whole cache
                pass

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


#: What one cached (count, newest) pair is counted as, in bytes.
FACTS_BYTES = 64


def version_facts(session: Session, cache: RenderCache | None, threads: list[Thread]) -> dict[str, tuple[int, int]]:
    """Thread id -> (number of versions, newest version number; 0 for
    none) for ``threads``. A version is only ever added by a flush, which
    raises its thread's revision, so the pair is fixed for a given
    revision, pending turns or not: pairs are cached under (thread id,
    revision) and only the threads missing from ``cache`` are counted, in
    one grouped query. The sidebar and the version tree's key use it, so
    their cost does not grow with the versions."""
    facts: dict[str, tuple[int, int]] = {}
    missing = []
    for t in threads:
        hit = cache.get(("versions", t.id, t.revision)) if cache is not None else None
        if hit is None:
            missing.append(t)
        else:
            facts[t.id] = hit
    if missing:
        rows = session.execute(select(Version.thread_id, func.count(Version.pk), func.max(Version.number))
                               .where(Version.thread_id.in_([t.id for t in missing])).group_by(Version.thread_id))
        counted = {tid: (count, newest or 0) for tid, count, newest in rows}
        for t in missing:
            facts[t.id] = counted.get(t.id, (0, 0))
            if cache is not None:
                cache.put(("versions", t.id, t.revision), facts[t.id], FACTS_BYTES)
    return facts
