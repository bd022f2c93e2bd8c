"""Running turns: the in-process worker and the job body.

A turn's lifecycle (queue, claim, lease, end) is ``app/turns.py``; this
module runs claimed turns. :class:`TurnRunner` runs one claimed turn with
its backend, renews the leases of the turns it runs (a heartbeat every
third of ``RETOUCH_LEASE_SECONDS``), and ends each through the functions of
``app/turns.py``, which write only while the lease is still this run's.
:class:`TurnWorker` is what a process starts: on SQLite, ``workers`` asyncio
tasks that claim turns by the fairness rule (:func:`pick_fairly`); on
PostgreSQL, procrastinate's worker with that concurrency (``app/jobs.py``),
whose job body is :meth:`TurnRunner.run_job`. All database, image and
backend work runs in worker threads, off the event loop.

A turn's base is the thread's head when the turn starts. The result image is
written to the blob store first (atomically), and beside it, when the vendor's
file carries a C2PA manifest, that file as it came (``<sha>.source``); then
one transaction adds the version and finishes the turn. A crash in between
leaves at most an unreferenced blob, never a version without its image.

A turn the person stops (``app.turns.cancel``) loses its holder: this run's
finishing update then changes nothing, so its result is discarded, never
stored as a version, and the run ends ``cancelled`` (not an error). The
runner hears of it at once in this process (a cancel listener) and at its
next heartbeat from other processes; it then stops the backend where the
backend can (``stop(request)``, the diffusers backend) and keeps nothing of
the run. A run whose turn was taken over is dropped the same way.

Turns whose holder is gone (lease expired, or its process on this machine
dead) are queued again, at start-up and then every third of the lease; a
turn interrupted for the second time fails with the error "interrupted".
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import anyio
from sqlalchemy import and_, func, literal, select
from sqlalchemy.orm import aliased, sessionmaker

from app import metrics, turns

from app.backends import BackendDeclined, BackendFailed, EditRequest, UnknownBackend, get_backend
from app.events import call_on_loop
from app.image_cache import DecodedImages
from app.imaging import normalise_mode, open_png
from app.models import Thread, Turn, Version, utcnow
from app.partials import PartialFrames
from app.schemas import utc
from app.security import safety_identifier
from app.services import add_version, store_image, store_thumbnail, version_row
from app.storage import BlobStore

log = logging.getLogger("retouch.worker")

#: A turn started this many times and interrupted each time is failed (``app/turns.py``).
MAX_ATTEMPTS = turns.MAX_ATTEMPTS
#: How many earlier instructions are passed to the backend as context.
HISTORY_LIMIT = 20
POLL_SECONDS = 1.0


def recover_interrupted(sessions: sessionmaker) -> tuple[int, int]:
    """Requeue running turns whose holder is gone (lease expired, or its
    process on this machine dead), failing those already started
    :data:`MAX_ATTEMPTS` times with the error "interrupted"; live leases of
    other processes are left alone (:func:`app.turns.recover_expired`).
    Returns (requeued, failed)."""
    with sessions() as session:
        return turns.recover_expired(session)


def pick_fairly(session) -> int | None:
    """The primary key of the turn to start next (see :meth:`TurnWorker.claim`),
    or None. Two grouped queries, whatever the queue's length: each owner's
    oldest runnable turn, and each owner's running count and last start."""
    busy = select(Turn.thread_id).where(Turn.status == "running")
    candidates = session.execute(
        select(Thread.owner_id, func.min(Turn.pk)).join(Thread, Turn.thread_id == Thread.id)
        .where(Turn.status == "queued", Turn.thread_id.not_in(busy)).group_by(Thread.owner_id)
    ).all()
    if not candidates:
        return None
    owners = [owner for owner, _ in candidates]
    served = {owner: (running or 0, last) for owner, running, last in session.execute(
        select(Thread.owner_id, func.count(Turn.pk).filter(Turn.status == "running"), func.max(Turn.started_at))
        .join(Thread, Turn.thread_id == Thread.id)
        .where(Thread.owner_id.in_(owners), Turn.started_at.is_not(None)).group_by(Thread.owner_id)
    )}
    never = datetime.min.replace(tzinfo=timezone.utc)

    def order(candidate):
        owner, pk = candidate
        running, last = served.get(owner, (0, None))
        return running, utc(last) if last is not None else never, pk

    return min(candidates, key=order)[1]


#: Most versions :func:`history_of` walks back through: instructions come from
#: edit and generate turns, and most versions are made by one.
HISTORY_WALK_LIMIT = HISTORY_LIMIT * 5


def history_of(session, thread_id: str, number: int | None) -> tuple[str, ...]:
    """The instructions that made version ``number`` of thread ``thread_id``,
    following parents back towards the root, oldest first: at most
    :data:`HISTORY_LIMIT` of them, from at most :data:`HISTORY_WALK_LIMIT`
    versions. One recursive query over the (thread_id, number) index, so
    its cost does not grow with the thread's length (a parent always has a
    lower number, so the walk ends)."""
    if number is None:
        return ()
    start = (select(Version.number, Version.parent, Version.turn_id, literal(0).label("depth"))
             .where(Version.thread_id == thread_id, Version.number == number).cte("chain", recursive=True))
    up = aliased(Version)
    chain = start.union_all(
        select(up.number, up.parent, up.turn_id, start.c.depth + 1)
        .join(start, and_(up.thread_id == thread_id, up.number == start.c.parent))
        .where(start.c.depth < HISTORY_WALK_LIMIT - 1))
    rows = session.execute(
        select(Turn.instruction).select_from(chain).join(Turn, Turn.id == chain.c.turn_id)
        .where(Turn.kind.in_(("edit", "generate")), Turn.instruction.is_not(None), Turn.instruction != "")
        .order_by(chain.c.depth).limit(HISTORY_LIMIT)).scalars().all()
    return tuple(reversed(rows))


#: Least time between two change events for streamed words, in seconds.
TEXT_EVENT_INTERVAL = 0.25


@dataclass(frozen=True)
class _Chain:
    """Where a conversational turn's context stands: the stored response to
    continue (None = start afresh), the chain depth it had (0 = none) and,
    when a conversation existed but is not continued, why."""

    previous_response_id: str | None = None
    depth: int = 0
    restart_reason: str | None = None


def conversation_of(session, thread: Thread, version: Version | None, backend_name: str) -> _Chain:
    """Decide whether a turn of ``backend_name`` from ``version`` (its base;
    None: no image yet) continues the stored response that made that version.

    It continues only when the backend is conversational and stores
    responses (``RETOUCH_OPENAI_STORE``), and the turn that made the version
    (in this thread) has a response id whose image is exactly the version's
    pixels (not an upload, another backend's edit, a mask composite or a
    revert), the thread is not a fork of someone else's, and the chain is
    shorter than the backend's ``chain_max`` (``RETOUCH_OPENAI_CHAIN_MAX``). Siblings therefore never see
    each other: each continues the response of its own base version.
    Reads the turns it needs by indexed queries (``session``).
    """
    try:
        backend = get_backend(backend_name)
    except UnknownBackend:
        return _Chain()
    if not backend.conversational or version is None:
        return _Chain()
    made_by = session.scalar(select(Turn).where(Turn.id == version.turn_id)) if version.turn_id else None
    # A words-only answer from this version (a question back) is where the conversation stands:
    # the person's reply must continue it. Its input was this version's pixels.
    answered = session.scalars(select(Turn).where(
        Turn.thread_id == thread.id, Turn.status == "answered", Turn.base_version == version.number,
        Turn.response_id.is_not(None)).order_by(Turn.pk)).all()
    if not backend.stores_responses:
        return _Chain(restart_reason="Conversation memory is off on this server (RETOUCH_OPENAI_STORE=false), "
                                     "so the earlier instructions were sent as text.")
    if thread.forked_from:
        return _Chain(restart_reason="This thread is a copy of a shared one, so the model started a new "
                                     "conversation; the earlier instructions were sent as text.")
    if answered:
        made_by = answered[-1]
    elif made_by is None or not made_by.response_id or made_by.response_image_sha256 != version.sha256:
        return _Chain(restart_reason=f"Version {version.number} was not made by the conversation alone "
                                     "(an upload, another backend, a selected region or a revert), so the model "
                                     "started a new conversation; the earlier instructions were sent as text.")
    depth = made_by.chain_depth or 1
    if depth >= backend.chain_max:
        return _Chain(depth=depth, restart_reason=(
            f"The conversation reached {depth} turns (RETOUCH_OPENAI_CHAIN_MAX), so Retouch started a new one "
            "to stop billing the earlier turns again; the earlier instructions were sent as text."))
    return _Chain(previous_response_id=made_by.response_id, depth=depth)


class TurnRunner:
    """Runs claimed turns to their end and keeps their leases alive.

    ``on_change(thread_id)`` is called (from a worker thread) when a turn
    starts or ends and when a running turn receives a partial image or
    words; ``partials`` keeps the newest partial image of each running turn
    (dropped when the turn ends). ``lease_seconds`` is how long a claim
    lasts without a heartbeat; the heartbeat runs every third of it."""

    def __init__(self, sessions: sessionmaker, store: BlobStore, *, lease_seconds: float = 30.0,
                 on_change: Callable[[str], None] | None = None, partials: PartialFrames | None = None,
                 on_ended: Callable[[str, str, float], None] | None = None) -> None:
        self.sessions = sessions
        self.store = store
        self.lease_seconds = lease_seconds
        self.on_change = on_change or (lambda thread_id: None)
        self.partials = partials if partials is not None else PartialFrames()
        #: Called with (outcome, backend, seconds) once per run that ended (see :meth:`_ended`).
        self.on_ended = on_ended
        #: The last results, decoded: the next turn of a thread skips decoding its base.
        self.decoded = DecodedImages()
        self._held: dict[str, str] = {}  # holder -> turn id, of the runs in progress here
        self._held_lock = threading.Lock()
        self._backend_runs: dict[str, tuple] = {}  # holder -> (backend, request) while the backend runs
        self._dropped: set[str] = set()  # holders whose turn was stopped or taken over: keep nothing
        self._keeper: threading.Thread | None = None
        self._stop = threading.Event()

    # -- leases

    def start(self) -> None:
        """Start the heartbeat thread (idempotent)."""
        turns.add_cancel_listener(self.cancelled)
        if self._keeper is None or not self._keeper.is_alive():
            self._stop.clear()
            self._keeper = threading.Thread(target=self._keep_leases, name="turn-leases", daemon=True)
            self._keeper.start()

    def stop(self) -> None:
        """Stop the heartbeat thread; leases of runs still in progress then
        expire and those turns are taken over."""
        turns.remove_cancel_listener(self.cancelled)
        self._stop.set()

    def _keep_leases(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            with self._held_lock:
                holders = list(self._held)
            if not holders:
                continue  # nothing held: no query
            try:
                with self.sessions() as session:
                    kept = turns.heartbeat(session, holders, self.lease_seconds)
                for lost in set(holders) - kept:
                    log.warning("turn %s is no longer held by this run (%s): stopped by its owner or "
                                "taken over", self._held.get(lost), lost)
                    self._drop_run(lost)
            except Exception:  # a database hiccup: the next beat tries again
                log.exception("could not renew the turn leases")

    def cancelled(self, turn_id: str) -> None:
        """Called (in this process, :func:`app.turns.add_cancel_listener`)
        when turn ``turn_id`` was stopped: drop this process's run of it at
        once, as the heartbeat would a beat later."""
        with self._held_lock:
            holders = [h for h, t in self._held.items() if t == turn_id]
        for holder in holders:
            self._drop_run(holder)

    def _drop_run(self, holder: str) -> None:
        """The run of ``holder`` can no longer end its turn (the person
        stopped it, or another worker took it over): keep none of its
        result, and stop its backend where the backend can stop (a
        ``stop(request)`` method, as the diffusers backend has; OpenAI's
        requests cannot be recalled, so a paid one may still bill)."""
        with self._held_lock:
            if holder not in self._held:
                return
            self._dropped.add(holder)
            running = self._backend_runs.get(holder)
        if running is None:
            return
        backend, request = running
        stop = getattr(backend, "stop", None)
        if callable(stop):
            try:
                if stop(request):
                    log.info("stopped the %s backend's run of turn %s", backend.name, self._held.get(holder))
            except Exception:
                log.exception("could not stop the backend's run of turn %s", self._held.get(holder))

    def _is_dropped(self, holder: str) -> bool:
        with self._held_lock:
            return holder in self._dropped

    # -- claiming and running

    def claim_next(self) -> turns.Claim | None:
        """Claim the next turn by the fairness rule (:func:`pick_fairly`), or None."""
        with self.sessions() as session:
            return turns.claim_next(session, self.lease_seconds, pick_fairly)

    def run_job(self, turn_id: str, job_id: int, priority: int) -> None:
        """The body of turn ``turn_id``'s job ``job_id`` (``app/jobs.py``;
        ``priority`` is the job's). Takes the turn over when its holder is
        gone, waits while a live holder runs it, steps aside when an older
        turn of its thread is still queued, else claims and runs it. Ends
        at once when the turn has already ended."""
        from app import jobs
        from app.schemas import utc

        while not self._stop.is_set():
            with self.sessions() as session:
                row = session.execute(select(Turn.status, Turn.claimed_by, Turn.lease_expires_at, Turn.thread_id)
                                      .where(Turn.id == turn_id)).first()
                session.rollback()
                if row is None or row.status not in turns.PENDING:
                    return  # ended (another job ran it) or gone
                if row.status == turns.TurnStatus.RUNNING:
                    until = utc(row.lease_expires_at)
                    if until is None or until <= utcnow() or turns.holder_is_dead(row.claimed_by):
                        log.warning("taking over turn %s from %s (its lease ran out)", turn_id, row.claimed_by)
                        if turns.requeue(session, turn_id, row.claimed_by) == turns.TurnStatus.FAILED:
                            self.on_change(row.thread_id)
                            return
                        continue
                    self._stop.wait(min(1.0, self.lease_seconds / 3))  # a live holder runs it
                    continue
                claimed = turns.claim(session, turn_id, self.lease_seconds)
                if claimed is not None:
                    self.run_claimed(claimed)
                    return
                if session.scalar(select(func.count(Turn.pk)).where(
                        Turn.thread_id == row.thread_id, Turn.status == turns.TurnStatus.RUNNING)):
                    session.rollback()
                    self._stop.wait(min(1.0, self.lease_seconds / 3))  # an older turn still runs
                    continue
                session.rollback()
                jobs.step_aside(session, turn_id, row.thread_id, job_id, priority)
                return

    def run_claimed(self, claim: turns.Claim) -> str:
        """Run one claimed turn to its end: succeeded, answered, declined or
        failed, or ``lost`` when the lease was taken over meanwhile (then
        nothing of this run is written). Never raises. Returns the outcome.

        A turn a crash interrupted runs again from the start; its message
        (or error) then says so, because the backend may have done, and
        billed, the interrupted run's work too (:func:`rerun_note`)."""
        self.start()
        with self._held_lock:
            self._held[claim.holder] = claim.turn_id
        began = time.monotonic()
        outcome, backend_name = "failed", "unknown"
        self.on_change(claim.thread_id)
        try:
            outcome, backend_name = self._run_turn(claim)
        except Exception:  # never let one turn stop a worker
            log.exception("turn %s ended with an unexpected error", claim.turn_id)
            outcome = self._fail_quietly(claim)
        finally:
            with self._held_lock:
                self._held.pop(claim.holder, None)
                self._backend_runs.pop(claim.holder, None)
                self._dropped.discard(claim.holder)
            if outcome == "lost":
                try:
                    with self.sessions() as session:
                        if turns.is_cancelled(session, claim.turn_id):
                            outcome = "cancelled"  # stopped by its owner: discarded, not an error
                except Exception:
                    log.exception("could not read how turn %s ended", claim.turn_id)
            self.partials.drop(claim.turn_id)  # partial images never outlive their turn
            self._ended(outcome, backend_name, time.monotonic() - began)
            self.on_change(claim.thread_id)
        return outcome

    def _ended(self, outcome: str, backend: str, seconds: float) -> None:
        """The one place a run ends: ``outcome`` is the turn's final status
        (``succeeded``, ``answered``, ``declined``, ``failed``, or
        ``cancelled``: stopped by its owner while it ran, its result
        discarded) or ``lost`` (taken over; another run ends it), ``backend``
        its backend's name,
        ``seconds`` from claim to end. Metrics hook in here."""
        if self.on_ended is not None:
            try:
                self.on_ended(outcome, backend, seconds)
            except Exception:
                log.exception("the turn-ended hook failed")

    def _run_turn(self, claim: turns.Claim) -> tuple[str, str]:
        backend_name = "unknown"
        try:
            request, backend_name, attempts, chain = self._prepare(claim.turn_id)
        except _TurnError as exc:
            return self._fail(claim, exc.message), backend_name
        try:
            backend = get_backend(backend_name)
            with self._held_lock:
                self._backend_runs[claim.holder] = (backend, request)
            if self._is_dropped(claim.holder):  # stopped before the backend started
                return "lost", backend_name
            try:
                result = backend.edit(request)
            finally:
                with self._held_lock:
                    self._backend_runs.pop(claim.holder, None)
        except UnknownBackend:
            return self._fail(claim, "The image service this turn was sent to is no longer available on this "
                                     "server. Choose another in Options and send it again."), backend_name
        except BackendDeclined as exc:
            with self.sessions() as session:
                ok = turns.decline(session, claim, _with_note(exc.message, rerun_note(attempts)),
                                   getattr(exc, "suggestions", None))
            return ("declined" if ok else "lost"), backend_name
        except BackendFailed as exc:
            hint = " You can try again." if exc.retryable and "try again" not in exc.message.lower() else ""
            return self._fail(claim, _with_note(exc.message + hint, rerun_note(attempts))), backend_name
        except Exception:
            log.exception("backend %s crashed on turn %s", backend_name, claim.turn_id)
            return self._fail(claim, "The image service hit an internal error. You can try again."), backend_name
        if self._is_dropped(claim.holder):  # stopped (or taken over) while the backend ran: keep nothing
            return "lost", backend_name
        if result.image is None:  # answered in words only: no version, not a failure
            with self.sessions() as session:
                turn = turns.answer(session, claim)
                if turn is None:
                    return "lost", backend_name
                self._record_reply(turn, result, chain, attempts, image_sha=None)
                session.commit()
            return "answered", backend_name
        try:
            sha, width, height = store_image(self.store, result.image, thumbnail=False)  # thumbnail: after commit
            self.decoded.put(sha, normalise_mode(result.image))  # the next turn starts from these pixels
        except Exception:
            log.exception("could not store the result of turn %s", claim.turn_id)
            return self._fail(claim, "The result could not be saved (storage error). You can try again."), backend_name
        source_sha = self._keep_source(claim.turn_id, result.source)
        with self.sessions() as session:
            turn = turns.succeed(session, claim)  # checks the lease first: a taken-over run writes nothing
            if turn is None:
                return "lost", backend_name
            add_version(session, turn.thread, sha256=sha, width=width, height=height,
                        parent=turn.base_version, turn=turn)
            self._record_reply(turn, result, chain, attempts, image_sha=None if request.mask is not None else sha)
            if source_sha is not None:
                turn.output = {**(turn.output or {}), "source_sha256": source_sha}
            session.commit()
        try:  # off the path to "version visible": a thumbnail asked for before this is made on request
            store_thumbnail(self.store, sha, result.image)
        except Exception:
            log.exception("could not store the thumbnail of turn %s's result", claim.turn_id)
        return "succeeded", backend_name

    def _fail(self, claim: turns.Claim, error: str) -> str:
        with self.sessions() as session:
            return "failed" if turns.fail(session, claim, error) else "lost"
    def _keep_source(self, turn_id: str, source: bytes | None) -> str | None:
        """Store the vendor's original result file (``EditResult.source``)
        when it carries an embedded C2PA manifest
        (:func:`app.provenance.embedded_manifest_format`), so the version's
        Content Credentials can keep the vendor's claim as an ingredient.
        Returns its sha256 (recorded as ``turn.output["source_sha256"]``),
        or None: no file, no manifest, or it could not be stored (logged;
        the turn still succeeds, only without the vendor's claim)."""
        if not source:
            return None
        from app.provenance import embedded_manifest_format

        try:
            if embedded_manifest_format(source) is None:
                return None
            return self.store.put_source(source)
        except Exception:
            log.exception("could not keep the vendor's original file of turn %s", turn_id)
            return None

    @staticmethod
    def _record_reply(turn: Turn, result, chain: _Chain, attempts: int, *, image_sha: str | None) -> None:
        """Copy what the backend answered onto ``turn``: note, usage, output
        and, for conversational backends, the response id, the words, the
        revised prompt and where the conversation stands. ``image_sha`` is
        the version's blob when it holds exactly the response's image (no
        mask composite), the condition for continuing from it later."""
        turn.message = _with_note(result.message, rerun_note(attempts))
        turn.usage = result.usage
        turn.output = result.output
        turn.reply = result.reply
        turn.revised_prompt = result.revised_prompt
        turn.context = result.context
        if result.response_id:
            turn.response_id = result.response_id
            turn.response_image_sha256 = image_sha
            turn.chain_depth = chain.depth + 1 if result.context == "chained" else 1
        turn.finished_at = utcnow()

    def _prepare(self, turn_id: str) -> tuple[EditRequest, str, int, _Chain]:
        with self.sessions() as session:
            turn = session.scalar(select(Turn).where(Turn.id == turn_id))
            thread = turn.thread
            base = version_row(session, thread.id, turn.base_version)
            history = history_of(session, thread.id, turn.base_version)
            backend_name = turn.backend or "local"
            chain = conversation_of(session, thread, base, backend_name)
            base_sha = base.sha256 if base else None
            mask_sha, markup_sha, ref_shas = turn.mask_sha256, turn.markup_sha256, list(turn.reference_sha256s or [])
            instruction, size, quality = turn.instruction, turn.size, turn.quality
            model, background = turn.model, turn.background
            attempts, thread_id, owner_id = turn.attempts, thread.id, thread.owner_id
        try:
            image = (self.decoded.get(base_sha) or open_png(self.store.read(base_sha))) if base_sha else None
            mask = open_png(self.store.read(mask_sha)).convert("L") if mask_sha else None
            markup = open_png(self.store.read(markup_sha)).convert("RGBA") if markup_sha else None
            refs = tuple(open_png(self.store.read(s)) for s in ref_shas)
        except FileNotFoundError:
            raise _TurnError("A stored image this turn needs is missing.") from None
        except Exception:  # a damaged blob: say so, keep the traceback in the log only
            log.exception("could not read a stored image for turn %s", turn_id)
            raise _TurnError("A stored image this turn needs could not be read (it is damaged).") from None
        for drawn, what in ((mask, "selection"), (markup, "drawing")):
            if drawn is not None and (image is None or drawn.size != image.size):
                raise _TurnError(
                    f"The {what} no longer matches the current image (its size changed). "
                    f"Make the {what} again."
                )

        def on_partial(index: int, frame) -> None:
            self.partials.put(turn_id, index, frame)
            metrics.partial_frame_stored()
            self.on_change(thread_id)

        last_text = [0.0]

        def on_text(text: str) -> None:
            self.partials.put_text(turn_id, text)
            now = time.monotonic()
            if now - last_text[0] >= TEXT_EVENT_INTERVAL:  # words arrive fast: announce a few times a second
                last_text[0] = now
                self.on_change(thread_id)

        return EditRequest(instruction=instruction, image=image, mask=mask, references=refs,
                           history=history, size=size, quality=quality, model=model, background=background,
                           markup=markup, safety_identifier=safety_identifier(owner_id),
                           on_partial=on_partial, on_text=on_text, previous_response_id=chain.previous_response_id,
                           restart_reason=chain.restart_reason if history else None), backend_name, attempts, chain

    def _fail_quietly(self, claim: turns.Claim) -> str:
        """Best effort after an unexpected error: fail the turn (if this run
        still holds it) with a message free of internals, so it does not stay
        ``running`` until its lease runs out. Errors here are logged only.
        Returns the outcome (``failed`` or ``lost``)."""
        try:
            return self._fail(claim, "Retouch hit an internal error while finishing this turn. You can try again.")
        except Exception:
            log.exception("could not mark turn %s failed", claim.turn_id)
            return "failed"


class TurnWorker:
    """What a process runs turns with. ``start()`` in the lifespan (or in
    ``retouch worker``), ``stop()`` at shutdown; ``notify()`` wakes an idle
    SQLite worker at once (queueing a turn calls it, ``app.turns.queue``).

    ``workers`` turns run side by side (0: none, this process only serves
    pages). On SQLite, ``workers`` asyncio tasks claim by :func:`pick_fairly`;
    on PostgreSQL, procrastinate's worker runs with that concurrency
    (``app/jobs.py``). Either way turns whose holder is gone are requeued at
    start-up and then every third of ``lease_seconds``."""

    def __init__(self, sessions: sessionmaker, store: BlobStore, workers: int = 2,
                 on_change: Callable[[str], None] | None = None, partials: PartialFrames | None = None, *,
                 lease_seconds: float = 30.0, database_url: str | None = None,
                 on_ended: Callable[[str, str, float], None] | None = None) -> None:
        self.sessions = sessions
        self.runner = TurnRunner(sessions, store, lease_seconds=lease_seconds, on_change=on_change,
                                 partials=partials, on_ended=on_ended)
        self.workers = max(0, workers)
        self.lease_seconds = lease_seconds
        self.database_url = database_url or str(sessions.kw["bind"].url.render_as_string(hide_password=False))
        self.postgres = self.database_url.startswith("postgresql")
        self._wakeup: asyncio.Event | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self._last_sweep = 0.0
        self._job_engine = None
        self._job_worker = None

    @property
    def partials(self) -> PartialFrames:
        """The runner's partial frames (``app.partials``)."""
        return self.runner.partials

    @property
    def store(self) -> BlobStore:
        """The blob store results are written to."""
        return self.runner.store

    async def start(self) -> None:
        """Requeue turns whose holder is gone, then start the workers."""
        await anyio.to_thread.run_sync(recover_interrupted, self.sessions)
        self._wakeup = asyncio.Event()
        self._event_loop = asyncio.get_running_loop()
        self._stopping = False
        if self.workers == 0:
            return
        self.runner.start()
        if self.postgres:
            from app import jobs
            from app.db import make_engine, make_sessionmaker

            await anyio.to_thread.run_sync(jobs.defer_orphans, self.sessions)
            self._job_engine = make_engine(self.database_url)  # the supervisor's own connections
            worker = jobs.JobWorker(self.database_url, make_sessionmaker(self._job_engine), self.runner.run_job,
                                    concurrency=self.workers, lease_seconds=self.lease_seconds,
                                    name=f"{turns.NODE}:{os.getpid()}")
            self._job_worker = worker
            self._tasks = [asyncio.create_task(self._run_jobs(worker), name="turn-jobs")]
            return
        turns.add_waker(self.notify)
        # The workers' own threads: through anyio's default limiter, turns (a remote backend may take
        # minutes) would hold the threads requests run on (RETOUCH_REQUEST_THREADS) and stall pages.
        self._threads = anyio.CapacityLimiter(self.workers)
        self._tasks = [asyncio.create_task(self._loop(i), name=f"turn-worker-{i}") for i in range(self.workers)]

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming turns and wait up to ``timeout`` seconds for running
        ones; a turn still running then is taken over once its lease expires
        (at once by the next start on this machine)."""
        self._stopping = True
        turns.remove_waker(self.notify)
        self.notify()
        if self._tasks:
            if self._job_worker is not None:
                self._job_worker.stop()  # a request, not a cancel: a cancel can be lost on Python 3.11
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
        self._tasks = []
        self.runner.stop()
        if self._job_engine is not None:
            self._job_engine.dispose()
            self._job_engine = None

    async def _run_jobs(self, worker) -> None:
        """Run the job worker (``app.jobs.JobWorker``); when it fails (the
        database went away), log it and start it again after a pause that
        doubles from 1 s to at most 30 s."""
        pause = 1.0
        while not self._stopping:
            began = time.monotonic()
            try:
                await worker.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._stopping or asyncio.current_task().cancelling():  # a cancel turned into an error
                    return
                log.exception("the job worker stopped; starting it again in %g s", pause)
            if self._stopping:
                return
            if time.monotonic() - began > 60:
                pause = 1.0
            await asyncio.sleep(pause)
            pause = min(pause * 2, 30.0)

    def notify(self) -> None:
        """Wake an idle worker. Safe to call from any thread (the sync routes
        run in a thread pool; ``asyncio.Event`` is not thread-safe)."""
        if self._wakeup is not None:
            call_on_loop(self._event_loop, self._wakeup.set)

    async def _loop(self, index: int) -> None:
        assert self._wakeup is not None
        while not self._stopping:
            try:
                claimed = await anyio.to_thread.run_sync(self.claim, limiter=self._threads)
            except Exception:  # database hiccup: log, wait, go on
                log.exception("worker %d could not claim a turn", index)
                claimed = None
            if claimed is None:
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), POLL_SECONDS)
                except TimeoutError:
                    pass
                continue
            await anyio.to_thread.run_sync(self.runner.run_claimed, claimed, limiter=self._threads)
            self.notify()  # a finished turn may unblock the next one of its thread

    def claim(self) -> turns.Claim | None:
        """Requeue turns whose holder is gone (every third of the lease),
        then claim the next runnable turn: return its :class:`app.turns.Claim`,
        or None when no turn can start.

        Runnable: queued, in a thread with no turn running or queued before
        it (a thread's turns run one at a time, oldest first; the claim is a
        conditional update, correct across processes). Owners take turns
        (round-robin): of each owner's oldest runnable turn, the one whose
        owner has the fewest turns running, then whose owner was served
        longest ago, then the oldest, starts next (:func:`pick_fairly`). So
        one owner's backlog cannot starve another's."""
        now = time.monotonic()
        if now - self._last_sweep >= self.lease_seconds / 3:
            self._last_sweep = now
            recover_interrupted(self.sessions)
        return self.runner.claim_next()


def rerun_note(attempts: int) -> str | None:
    """What a turn started ``attempts`` times says about its earlier,
    interrupted runs; None for a first attempt."""
    if attempts <= 1:
        return None
    return (f"Retouch was restarted while this turn ran, so it ran again from the start "
            f"(attempt {attempts} of {MAX_ATTEMPTS}); a paid backend may have billed the "
            "interrupted attempt too.")


def _with_note(text: str | None, note: str | None) -> str | None:
    if not note:
        return text
    return f"{text} {note}" if text else note


class _TurnError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

