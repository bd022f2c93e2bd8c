"""Thread revisions: ``threads.revision`` goes up by one in every ORM flush
that adds, changes or deletes a thread's row, one of its turns, versions or
share links, in the same transaction as the change.

A reader that reads the revision in the same snapshot as the thread's rows
(``app.db.read_snapshot``) can therefore key what it renders from them by
(thread id, revision): two snapshots with the same revision and no pending
turn hold the same rows. The worker changes *pending* turns with Core
``UPDATE`` statements (``app/turns.py``: claim, lease, finish, cancel),
which do not pass through a flush; that is why renderings of a thread with
a queued or running turn are never cached (``app/render_cache.py``). Every
other write (a new turn, a version, a rename, a share link, a revert, a
delete) goes through the ORM.

The listener is installed on :class:`sqlalchemy.orm.Session` itself, so it
holds for every session (the app's, the worker's, the CLI's, tests').
"""
from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session

from app.models import ShareLink, Thread, Turn, Version

_CHILDREN = (Turn, Version, ShareLink)


def changed_threads(session: Session) -> set[str]:
    """The ids of the threads whose rows ``session``'s pending flush adds,
    changes or deletes (threads being deleted excluded). Read in
    ``after_flush``, where ``new``/``dirty``/``deleted`` still hold the
    flush's objects (SQLAlchemy docs, "SessionEvents.after_flush")."""
    ids: set[str] = set()
    gone: set[str] = set()
    for obj in session.deleted:
        if isinstance(obj, Thread):
            gone.add(obj.id)
        elif isinstance(obj, _CHILDREN):
            ids.add(obj.thread_id)
    for obj in session.new:
        if isinstance(obj, Thread):
            ids.add(obj.id)
        elif isinstance(obj, _CHILDREN):
            ids.add(obj.thread_id)
    for obj in session.dirty:
        if isinstance(obj, (Thread, *_CHILDREN)) and session.is_modified(obj, include_collections=False):
            ids.add(obj.id if isinstance(obj, Thread) else obj.thread_id)
    return {i for i in ids - gone if i is not None}


@event.listens_for(Session, "after_flush")
def _raise_revisions(session: Session, _context) -> None:
    ids = changed_threads(session)
    if ids:
        table = Thread.__table__
        session.connection().execute(
            table.update().where(table.c.id.in_(sorted(ids))).values(revision=table.c.revision + 1))
