"""The turn lifecycle, in one place: every change of a turn's status goes
through these functions.

A turn is ``queued`` (:func:`queue`), then ``running`` once a worker claims it
(:func:`claim`), then ends ``succeeded``, ``answered``, ``declined`` or
``failed`` (:func:`succeed`, :func:`answer`, :func:`decline`, :func:`fail`).
A running turn whose worker went away is ``queued`` again (:func:`requeue`,
:func:`recover_expired`), or failed "interrupted" after :data:`MAX_ATTEMPTS`
starts.

Claims are correct across processes, on SQLite and PostgreSQL alike: a claim
is one conditional ``UPDATE`` that changes the row only while the turn is
still queued and is its thread's oldest pending turn (:func:`runnable`), so
of several claimers exactly one sees ``rowcount == 1``. On PostgreSQL the
candidate row is first locked with ``SELECT ... FOR UPDATE SKIP LOCKED``, so
claimers skip each other's rows instead of queueing on them.

The claimer holds a lease: ``claimed_by`` names it (:func:`new_holder`) and
``lease_expires_at`` says until when; :func:`heartbeat` renews it every third
of ``RETOUCH_LEASE_SECONDS``. A turn is taken over only when its lease has
expired (or its holder's process is known dead, :func:`holder_is_dead`), and
each finishing function changes the row only while ``claimed_by`` is still
the caller: a worker whose turn was taken over cannot also end it or add a
version. Lease times are the workers' clocks (keep them in sync, NTP).
"""
from __future__ import annotations

import hashlib
import itertools
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import and_, event, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from app.models import Turn, utcnow

log = logging.getLogger("retouch.turns")


class TurnStatus(StrEnum):
    """Where a turn stands (the ``turns.status`` column)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    #: The backend answered in words and made no image (a question back, or a refusal).
    ANSWERED = "answered"
    DECLINED = "declined"
    FAILED = "failed"


#: Statuses of a turn that has not ended.
PENDING = (TurnStatus.QUEUED, TurnStatus.RUNNING)


class TurnKind(StrEnum):
    """What a turn does (the ``turns.kind`` column)."""

    GENERATE = "generate"
    EDIT = "edit"
    UPLOAD = "upload"
    REVERT = "revert"


#: Kinds a worker runs with a backend.
IMAGE_KINDS = (TurnKind.GENERATE, TurnKind.EDIT)

#: A turn started this many times and interrupted each time is failed.
MAX_ATTEMPTS = 2
#: The error of a turn failed after :data:`MAX_ATTEMPTS` interrupted starts.
INTERRUPTED = "interrupted"


def kind_for(base_version: int | None) -> TurnKind:
    """The kind of an image turn that starts from ``base_version`` (the
    thread's head when it starts): an edit of that version, or a generation
    when the thread has no image. The one rule for a turn's kind: queueing
    records it for the head at that moment, and :func:`claim` settles it
    for the base the turn really starts from (an earlier queued generation
    may have made an image meanwhile)."""
    return TurnKind.EDIT if base_version is not None else TurnKind.GENERATE


# ---------------------------------------------------------------- holders


def _node() -> str:
    """This machine and PID namespace, as ``<hostname>-<8 hex>``: the hex
    hashes the kernel's boot id and the PID namespace's inode, so two
    containers (or machines) never share a node even with one hostname."""
    try:
        boot = open("/proc/sys/kernel/random/boot_id").read().strip()
        pidns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # not Linux: the hostname alone (no dead-process shortcut across hosts)
        boot, pidns = "", 0
    digest = hashlib.sha1(f"{boot}:{pidns}".encode()).hexdigest()[:8]
    return f"{socket.gethostname()[:24]}-{digest}"


NODE = _node()
_claims = itertools.count(1)


def new_holder() -> str:
    """A fresh holder name for one claim, ``<node>:<pid>:<n>`` (at most 64
    characters, the ``claimed_by`` column): unique per claim, so even a
    takeover inside one process is told apart from the original run."""
    return f"{NODE}:{os.getpid()}:{next(_claims)}"


def holder_is_dead(holder: str | None) -> bool:
    """True when ``holder`` names a process on this node (same machine and
    PID namespace) that no longer runs (or is a zombie). False when it runs,
    when it is on another node, or when the name cannot be read: then only
    the lease's expiry frees the turn."""
    if not holder:
        return False
    parts = holder.split(":")
    if len(parts) != 3 or parts[0] != NODE or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


# ---------------------------------------------------------------- queueing

_wakers: list[Callable[[], None]] = []
_wakers_lock = threading.Lock()


def add_waker(wake: Callable[[], None]) -> None:
    """Call ``wake()`` (from any thread) after each commit that queued a
    turn: how an in-process worker hears of new turns at once. PostgreSQL
    workers are woken by the job queue's ``NOTIFY`` instead."""
    with _wakers_lock:
        _wakers.append(wake)


def remove_waker(wake: Callable[[], None]) -> None:
    """Undo :func:`add_waker`; does nothing for an unknown ``wake``."""
    with _wakers_lock:
        if wake in _wakers:
            _wakers.remove(wake)


def _wake_all(_session=None) -> None:
    with _wakers_lock:
        wakers = list(_wakers)
    for wake in wakers:
        try:
            wake()
        except Exception:  # a stopped loop: nothing to wake
            log.debug("a worker could not be woken", exc_info=True)


def queue(session: Session, turn: Turn) -> Turn:
    """Add ``turn`` (an image turn, not yet added) to ``session`` as
    ``queued``, its kind from its thread's head (:func:`kind_for`). On
    PostgreSQL a job that runs it is deferred in the same transaction
    (``app/jobs.py``), so a committed turn always has its job; on every
    database, in-process workers are woken once the caller commits. The
    caller commits. Returns ``turn``."""
    with session.no_autoflush:
        turn.status = TurnStatus.QUEUED
        turn.kind = kind_for(turn.thread.head_version)
        turn.claimed_by = turn.lease_expires_at = None
        session.add(turn)
    if session.get_bind().dialect.name == "postgresql":
        from app import jobs

        session.flush()
        jobs.defer_turn(session, turn)
    event.listen(session, "after_commit", _wake_all, once=True)
    return turn


# ---------------------------------------------------------------- claiming


@dataclass(frozen=True)
class Claim:
    """A turn this worker now runs: its id, its thread's id, the holder name
    the finishing functions check, and how many times it has been started."""

    turn_id: str
    thread_id: str
    holder: str
    attempts: int


def runnable():
    """The SQL condition "this turn may start now": it is queued and no
    other turn of its thread is running or queued before it. A thread's
    turns therefore run one at a time, oldest first, whichever process
    claims them."""
    other = aliased(Turn)
    return and_(
        Turn.status == TurnStatus.QUEUED,
        ~exists().where(other.thread_id == Turn.thread_id, other.pk != Turn.pk,
                        or_(other.status == TurnStatus.RUNNING,
                            and_(other.status == TurnStatus.QUEUED, other.pk < Turn.pk))),
    )


def claim(session: Session, turn_id: str, lease_seconds: float) -> Claim | None:
    """Claim queued turn ``turn_id`` if it is :func:`runnable`: one
    conditional ``UPDATE`` sets it ``running``, counts the attempt, fixes its
    base (the thread's head now) and kind (:func:`kind_for`), and gives it a
    fresh holder and a lease of ``lease_seconds`` seconds. Commits. Returns
    the :class:`Claim`, or None when another claimer was first or the turn
    may not start (not queued, or an older turn of its thread is pending).
    On PostgreSQL the row is locked first with ``FOR UPDATE SKIP LOCKED``."""
    from app.models import Thread

    if session.get_bind().dialect.name == "postgresql":
        locked = session.scalar(select(Turn.pk).where(Turn.id == turn_id, Turn.status == TurnStatus.QUEUED)
                                .with_for_update(skip_locked=True))
        if locked is None:
            session.rollback()
            return None
    holder, now = new_holder(), utcnow()
    head = select(Thread.head_version).where(Thread.id == Turn.thread_id).scalar_subquery()
    result = session.execute(
        update(Turn).where(Turn.id == turn_id, runnable())
        .values(status=TurnStatus.RUNNING, attempts=Turn.attempts + 1, started_at=now, base_version=head,
                claimed_by=holder, lease_expires_at=now + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.rollback()
        return None
    row = session.execute(select(Turn.thread_id, Turn.attempts, Turn.base_version, Turn.kind)
                          .where(Turn.id == turn_id)).one()
    if row.kind in IMAGE_KINDS and row.kind != kind_for(row.base_version):  # settled now, by the one rule
        session.execute(update(Turn).where(Turn.id == turn_id).values(kind=kind_for(row.base_version))
                        .execution_options(synchronize_session=False))
    session.commit()
    return Claim(turn_id, row.thread_id, holder, row.attempts)


def claim_next(session: Session, lease_seconds: float, pick: Callable[[Session], int | None],
               tries: int = 3) -> Claim | None:
    """Claim the turn ``pick(session)`` names (its primary key; the
    fairness rule, :func:`app.worker.pick_fairly`), trying again up to
    ``tries`` times when another claimer took it first. Returns the
    :class:`Claim` or None when nothing can start."""
    for _ in range(tries):
        pk = pick(session)
        if pk is None:
            session.rollback()
            return None
        turn_id = session.scalar(select(Turn.id).where(Turn.pk == pk))
        session.rollback()  # end the read: the claim is its own transaction
        if turn_id is not None and (got := claim(session, turn_id, lease_seconds)) is not None:
            return got
    return None


def heartbeat(session: Session, holders: list[str], lease_seconds: float) -> set[str]:
    """Renew the leases of the running turns these ``holders`` hold, to
    ``lease_seconds`` from now. Commits. Returns the holders still holding
    their turn (a missing one was taken over and must not finish it)."""
    if not holders:
        return set()
    session.execute(update(Turn).where(Turn.claimed_by.in_(holders), Turn.status == TurnStatus.RUNNING)
                    .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
                    .execution_options(synchronize_session=False))
    kept = set(session.scalars(select(Turn.claimed_by).where(Turn.claimed_by.in_(holders),
                                                              Turn.status == TurnStatus.RUNNING)))
    session.commit()
    return kept


# ---------------------------------------------------------------- finishing


def _end(session: Session, claim_: Claim, status: TurnStatus, **values) -> Turn | None:
    """Set the claimed turn's ``status`` (and ``values``) in one conditional
    ``UPDATE`` that matches only while it is running under ``claim_.holder``
    (on PostgreSQL the row stays locked until the caller commits, so a
    takeover waits for this transaction). Returns the turn, freshly loaded,
    or None (after a rollback) when the lease was lost."""
    now = utcnow()
    result = session.execute(
        update(Turn).where(Turn.id == claim_.turn_id, Turn.status == TurnStatus.RUNNING,
                           Turn.claimed_by == claim_.holder)
        .values(status=status, lease_expires_at=None, finished_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.rollback()
        log.warning("turn %s was taken over by another worker; this run's outcome (%s) is dropped",
                    claim_.turn_id, status.value)
        return None
    turn = session.scalar(select(Turn).where(Turn.id == claim_.turn_id).execution_options(populate_existing=True))
    turn.thread.updated_at = now
    return turn


def succeed(session: Session, claim_: Claim) -> Turn | None:
    """Mark the claimed turn ``succeeded`` if ``claim_`` still holds it.
    The caller adds its version (``app.services.add_version``) and commits
    in the same transaction. Returns the turn, or None when it was taken
    over (nothing written; the caller must not add a version)."""
    return _end(session, claim_, TurnStatus.SUCCEEDED)


def answer(session: Session, claim_: Claim) -> Turn | None:
    """Mark the claimed turn ``answered`` (words, no image) if ``claim_``
    still holds it; the caller records the reply and commits. Returns the
    turn, or None when it was taken over."""
    return _end(session, claim_, TurnStatus.ANSWERED)


def decline(session: Session, claim_: Claim, message: str | None) -> bool:
    """End the claimed turn ``declined`` with the backend's ``message``.
    Commits. Returns False (nothing written) when it was taken over."""
    return _commit(session, _end(session, claim_, TurnStatus.DECLINED, message=message, error=None))


def fail(session: Session, claim_: Claim, error: str) -> bool:
    """End the claimed turn ``failed`` with ``error`` (a sentence for the
    person, free of internals). Commits. Returns False (nothing written)
    when it was taken over."""
    return _commit(session, _end(session, claim_, TurnStatus.FAILED, error=error, message=None))


def _commit(session: Session, turn: Turn | None) -> bool:
    if turn is None:
        return False
    session.commit()
    return True


# ---------------------------------------------------------------- recovery


def requeue(session: Session, turn_id: str, holder: str | None) -> TurnStatus | None:
    """Give back running turn ``turn_id`` held by ``holder`` (None: held by
    nobody, a turn from before leases): ``queued`` again, or ``failed``
    "interrupted" once it has been started :data:`MAX_ATTEMPTS` times.
    Conditional on the holder, so two recoverers never both act. Commits.
    Returns the new status, or None when the turn had moved on."""
    row = session.execute(select(Turn.attempts, Turn.thread_id).where(Turn.id == turn_id)).first()
    if row is None:
        session.rollback()
        return None
    attempts = row[0]
    held = Turn.claimed_by.is_(None) if holder is None else Turn.claimed_by == holder
    if attempts >= MAX_ATTEMPTS:
        status, values = TurnStatus.FAILED, {"error": INTERRUPTED, "finished_at": utcnow()}
    else:
        status, values = TurnStatus.QUEUED, {"started_at": None}
    result = session.execute(
        update(Turn).where(Turn.id == turn_id, Turn.status == TurnStatus.RUNNING, held)
        .values(status=status, claimed_by=None, lease_expires_at=None, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.rollback()
        return None
    if status == TurnStatus.QUEUED and session.get_bind().dialect.name == "postgresql":
        from app import jobs

        jobs.ensure_job(session, turn_id, row[1])
    session.commit()
    if status == TurnStatus.QUEUED:
        _wake_all()
    return status


def expired(session: Session, now: datetime | None = None) -> list[tuple[str, str | None]]:
    """Running turns whose holder is gone: the lease expired, there is none
    (from before leases), or the holder's process on this node is dead
    (:func:`holder_is_dead`). Returns (turn id, holder) pairs."""
    now = now or utcnow()
    rows = session.execute(select(Turn.id, Turn.claimed_by, Turn.lease_expires_at)
                           .where(Turn.status == TurnStatus.RUNNING)).all()
    session.rollback()
    from app.schemas import utc

    return [(tid, holder) for tid, holder, until in rows
            if until is None or utc(until) <= now or holder_is_dead(holder)]


def recover_expired(session: Session) -> tuple[int, int]:
    """Requeue (or fail "interrupted", see :func:`requeue`) every running
    turn whose holder is gone (:func:`expired`); live leases are left
    alone, so this is safe while other processes run turns. Logs what it
    did. Returns (requeued, failed)."""
    requeued = failed = 0
    for turn_id, holder in expired(session):
        status = requeue(session, turn_id, holder)
        requeued += status == TurnStatus.QUEUED
        failed += status == TurnStatus.FAILED
    if requeued or failed:
        log.warning("recovered interrupted turns: %d requeued, %d failed", requeued, failed)
    return requeued, failed
