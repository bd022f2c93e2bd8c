"""The turn lifecycle, in one place: every change of a turn's status goes
through these functions.

A turn is ``queued`` (:func:`queue`), then ``running`` once a worker claims it
(:func:`claim`), then ends ``succeeded``, ``answered``, ``declined`` or
``failed`` (:func:`succeed`, :func:`answer`, :func:`decline`, :func:`fail`),
or ``cancelled`` when the person stops it (:func:`cancel`, from queued or
running: the lease is cleared, so the worker's own finishing update then
matches nothing and its result is discarded).
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

from sqlalchemy import and_, case, event, exists, or_, select, update
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
    #: Stopped by the person (:func:`cancel`): before it started, or while it ran (result discarded).
    CANCELLED = "cancelled"


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
    ``queued``, its kind from its thread's head (:func:`kind_for`), or from
    its ``base_version`` when ``turn.pinned_base`` is set (a turn that must
    start from that version, e.g. a regeneration; :func:`claim` keeps it). On
    PostgreSQL a job that runs it is deferred in the same transaction
    (``app/jobs.py``), so a committed turn always has its job; on every
    database, in-process workers are woken once the caller commits. The
    caller commits. Returns ``turn``."""
    with session.no_autoflush:
        turn.status = TurnStatus.QUEUED
        turn.kind = kind_for(turn.base_version if turn.pinned_base else turn.thread.head_version)
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
    base (the thread's head now, unless ``pinned_base`` keeps the base it was
    queued with) and kind (:func:`kind_for`), and gives it a
    fresh holder and a lease of ``lease_seconds`` seconds. Commits. Returns
    the :class:`Claim`, or None when another claimer was first or the turn
    may not start (not queued, or an older turn of its thread is pending),
    and when its thread was deleted (the turn is then stopped instead).
    On PostgreSQL the row is locked first with ``FOR UPDATE SKIP LOCKED``."""
    from app.models import Thread

    if session.get_bind().dialect.name == "postgresql":
        locked = session.scalar(select(Turn.pk).where(Turn.id == turn_id, Turn.status == TurnStatus.QUEUED)
                                .with_for_update(skip_locked=True))
        if locked is None:
            session.rollback()
            return None
    # A turn queued in the instant its thread was deleted (after delete_thread stopped the pending
    # ones) never runs: it is stopped here, so it neither starts nor blocks the queue.
    if session.scalar(select(Thread.deleted_at).join(Turn, Turn.thread_id == Thread.id)
                      .where(Turn.id == turn_id)) is not None:
        session.execute(update(Turn).where(Turn.id == turn_id, Turn.status == TurnStatus.QUEUED)
                        .values(status=TurnStatus.CANCELLED, finished_at=utcnow(),
                                message="Stopped: the thread was deleted before this turn started.")
                        .execution_options(synchronize_session=False))
        session.commit()
        return None
    holder, now = new_holder(), utcnow()
    head = select(Thread.head_version).where(Thread.id == Turn.thread_id).scalar_subquery()
    head = case((Turn.pinned_base, Turn.base_version), else_=head)
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
    their turn (a missing one was taken over, or stopped by its owner with
    :func:`cancel`, and must not finish it)."""
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
        if is_cancelled(session, claim_.turn_id):
            log.info("turn %s was stopped by its owner; this run's outcome (%s) is discarded",
                     claim_.turn_id, status.value)
        else:
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


def decline(session: Session, claim_: Claim, message: str | None,
            suggestions: list[str] | tuple[str, ...] | None = None) -> bool:
    """End the claimed turn ``declined`` with the backend's ``message`` and
    the ``suggestions`` it offers instead (``BackendDeclined.suggestions``).
    Commits. Returns False (nothing written) when it was taken over or stopped."""
    return _commit(session, _end(session, claim_, TurnStatus.DECLINED, message=message, error=None,
                                 suggestions=list(suggestions) if suggestions else None))


def fail(session: Session, claim_: Claim, error: str) -> bool:
    """End the claimed turn ``failed`` with ``error`` (a sentence for the
    person, free of internals). Commits. Returns False (nothing written)
    when it was taken over."""
    return _commit(session, _end(session, claim_, TurnStatus.FAILED, error=error, message=None))


def cancel(session: Session, turn: Turn, message: str | None = None) -> bool:
    """Stop ``turn`` for the person: one conditional ``UPDATE`` that sets it
    ``cancelled`` (with ``message``, and ``finished_at`` now) only while it
    is ``queued`` or ``running``. Clearing ``claimed_by`` and the lease makes
    the worker's finishing update (:func:`_end`, which matches only its own
    holder) change nothing: the run's result is discarded and no version is
    written; its heartbeat then misses the turn and the worker stops the
    backend where it can (``app.worker.TurnRunner``). A queued turn's job
    (PostgreSQL) finds it ended and does nothing. Commits, then wakes
    in-process workers (a later turn of the thread may start now) and calls
    the :func:`add_cancel_listener` listeners with the turn's id. Returns
    False (nothing written) when the turn had already ended."""
    result = session.execute(
        update(Turn).where(Turn.id == turn.id, Turn.status.in_(PENDING))
        .values(status=TurnStatus.CANCELLED, claimed_by=None, lease_expires_at=None, finished_at=utcnow(),
                message=message, error=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.rollback()
        return False
    session.commit()
    session.refresh(turn)
    _wake_all()
    with _wakers_lock:
        listeners = list(_cancel_listeners)
    for listener in listeners:
        try:
            listener(turn.id)
        except Exception:
            log.exception("a cancel listener failed")
    return True


_cancel_listeners: list[Callable[[str], None]] = []


def add_cancel_listener(listener: Callable[[str], None]) -> None:
    """Call ``listener(turn_id)`` after each :func:`cancel` in this process
    commits: how an in-process worker stops its backend at once (workers in
    other processes notice through their heartbeat instead). Adding the
    same listener twice adds it once."""
    with _wakers_lock:
        if listener not in _cancel_listeners:  # idempotent: a runner adds itself at each start()
            _cancel_listeners.append(listener)


def remove_cancel_listener(listener: Callable[[str], None]) -> None:
    """Undo :func:`add_cancel_listener`; does nothing for an unknown one."""
    with _wakers_lock:
        if listener in _cancel_listeners:
            _cancel_listeners.remove(listener)


def is_cancelled(session: Session, turn_id: str) -> bool:
    """Whether turn ``turn_id`` is ``cancelled`` (a worker whose finishing
    update matched nothing asks, to tell a stop from a takeover). Ends the
    read (rollback)."""
    status = session.scalar(select(Turn.status).where(Turn.id == turn_id))
    session.rollback()
    return status == TurnStatus.CANCELLED


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
