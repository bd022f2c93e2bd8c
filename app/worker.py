"""The in-process turn worker.

Turns are a queue in the database (``turns.status = 'queued'``, in insertion
order). :class:`TurnWorker` runs ``workers`` asyncio tasks, started by the
app's lifespan; each claims the oldest queued turn whose thread has no turn
running, so one thread's turns run one at a time and in order while
different threads run side by side. All database, image and backend work runs
in worker threads (``anyio.to_thread``), off the event loop.

A turn's base is the thread's head when the turn starts. The result image is
written to the blob store first (atomically), and beside it, when the vendor's
file carries a C2PA manifest, that file as it came (``<sha>.source``); then
one transaction adds the version and finishes the turn. A crash in between
leaves at most an unreferenced blob, never a version without its image.

At start-up, turns a crash left ``running`` are queued again; a turn
interrupted for the second time fails with the error "interrupted".
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import anyio
from sqlalchemy import func, select, update
from sqlalchemy.orm import sessionmaker

from app.backends import BackendDeclined, BackendFailed, EditRequest, UnknownBackend, get_backend
from app.events import call_on_loop
from app.image_cache import DecodedImages
from app.imaging import normalise_mode, open_png
from app.models import Thread, Turn, utcnow
from app.partials import PartialFrames
from app.schemas import utc
from app.security import safety_identifier
from app.services import add_version, store_image
from app.storage import BlobStore

log = logging.getLogger("retouch.worker")

#: A turn started this many times and interrupted each time is failed.
MAX_ATTEMPTS = 2
#: How many earlier instructions are passed to the backend as context.
HISTORY_LIMIT = 20
POLL_SECONDS = 1.0


def recover_interrupted(sessions: sessionmaker) -> tuple[int, int]:
    """Requeue turns left ``running`` by a crash; fail those already
    started :data:`MAX_ATTEMPTS` times with the error "interrupted".
    Returns (requeued, failed)."""
    with sessions() as session:
        requeued = session.execute(
            update(Turn).where(Turn.status == "running", Turn.attempts < MAX_ATTEMPTS)
            .values(status="queued", started_at=None)
        ).rowcount
        failed = session.execute(
            update(Turn).where(Turn.status == "running", Turn.attempts >= MAX_ATTEMPTS)
            .values(status="failed", error="interrupted", finished_at=utcnow())
        ).rowcount
        session.commit()
    if requeued or failed:
        log.warning("recovered interrupted turns: %d requeued, %d failed", requeued, failed)
    return requeued, failed


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


def history_of(thread: Thread, number: int | None) -> tuple[str, ...]:
    """The instructions that made version ``number``, following parents back
    to the root, oldest first (at most :data:`HISTORY_LIMIT`)."""
    turns = {t.id: t for t in thread.turns}
    out: list[str] = []
    seen: set[int] = set()
    while number is not None and number not in seen and len(out) < HISTORY_LIMIT:
        seen.add(number)
        version = thread.version(number)
        if version is None:
            break
        turn = turns.get(version.turn_id or "")
        if turn is not None and turn.kind in ("edit", "generate") and turn.instruction:
            out.append(turn.instruction)
        number = version.parent
    return tuple(reversed(out))


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


def conversation_of(thread: Thread, number: int | None, backend_name: str) -> _Chain:
    """Decide whether a turn of ``backend_name`` from version ``number``
    continues the stored response that made that version.

    It continues only when the backend is conversational and stores
    responses (``RETOUCH_OPENAI_STORE``), and the turn that made the version
    (in this thread) has a response id whose image is exactly the version's
    pixels (not an upload, another backend's edit, a mask composite or a
    revert), the thread is not a fork of someone else's, and the chain is
    shorter than the backend's ``chain_max`` (``RETOUCH_OPENAI_CHAIN_MAX``). Siblings therefore never see
    each other: each continues the response of its own base version.
    """
    try:
        backend = get_backend(backend_name)
    except UnknownBackend:
        return _Chain()
    version = thread.version(number) if number is not None else None
    if not backend.conversational or version is None:
        return _Chain()
    made_by = next((t for t in thread.turns if t.id == version.turn_id), None)
    # A words-only answer from this version (a question back) is where the conversation stands:
    # the person's reply must continue it. Its input was this version's pixels.
    answered = [t for t in thread.turns if t.status == "answered" and t.base_version == number and t.response_id]
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


class TurnWorker:
    """Runs queued turns. ``start()`` in the lifespan, ``stop()`` at shutdown;
    ``notify()`` after queueing a turn wakes an idle worker at once."""

    def __init__(self, sessions: sessionmaker, store: BlobStore, workers: int = 2,
                 on_change: Callable[[str], None] | None = None, partials: PartialFrames | None = None) -> None:
        self.sessions = sessions
        # Called with a thread id (from a worker thread) when one of its turns starts or ends,
        # and when a running turn receives a partial image.
        self.on_change = on_change or (lambda thread_id: None)
        #: The newest partial image of each running turn (dropped when the turn ends).
        self.partials = partials if partials is not None else PartialFrames()
        #: The last results, decoded: the next turn of a thread skips decoding its base.
        self.decoded = DecodedImages()
        self.store = store
        self.workers = max(1, workers)
        self._claim_lock = threading.Lock()
        self._wakeup: asyncio.Event | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    async def start(self) -> None:
        await anyio.to_thread.run_sync(recover_interrupted, self.sessions)
        self._wakeup = asyncio.Event()
        self._event_loop = asyncio.get_running_loop()
        self._stopping = False
        self._tasks = [asyncio.create_task(self._loop(i), name=f"turn-worker-{i}") for i in range(self.workers)]

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming turns and wait up to ``timeout`` seconds for running
        ones; a turn still running then is requeued at the next start."""
        self._stopping = True
        self.notify()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
        self._tasks = []

    def notify(self) -> None:
        """Wake an idle worker. Safe to call from any thread (the sync routes
        run in a thread pool; ``asyncio.Event`` is not thread-safe)."""
        if self._wakeup is not None:
            call_on_loop(self._event_loop, self._wakeup.set)

    async def _loop(self, index: int) -> None:
        assert self._wakeup is not None
        while not self._stopping:
            try:
                claimed = await anyio.to_thread.run_sync(self.claim)
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
            turn_id, thread_id = claimed
            self.on_change(thread_id)
            try:
                await anyio.to_thread.run_sync(self.run_turn, turn_id)
            except Exception:  # never let one turn stop this worker
                log.exception("worker %d: turn %s ended with an unexpected error", index, turn_id)
                await anyio.to_thread.run_sync(self._fail_quietly, turn_id)
            self.on_change(thread_id)
            self.notify()  # a finished turn may unblock the next one of its thread

    def claim(self) -> tuple[str, str] | None:
        """Mark the next runnable queued turn ``running``; return its id and
        its thread's id, or None when no turn can start.

        Runnable: queued, in a thread with no turn running (a thread's turns
        run one at a time, oldest first). Owners take turns (round-robin):
        of each owner's oldest runnable turn, the one whose owner has the
        fewest turns running, then whose owner was served longest ago, then
        the oldest, starts next. So one owner's backlog cannot starve
        another's."""
        with self._claim_lock, self.sessions() as session:
            pk = pick_fairly(session)
            turn = session.get(Turn, pk) if pk is not None else None
            if turn is None:
                return None
            thread = turn.thread
            turn.status = "running"
            turn.attempts += 1
            turn.started_at = utcnow()
            turn.base_version = thread.head_version
            if turn.kind in ("edit", "generate"):
                turn.kind = "edit" if thread.head_version is not None else "generate"
            session.commit()
            return turn.id, thread.id

    def run_turn(self, turn_id: str) -> None:
        """Run one claimed turn to its end: succeeded, declined or failed.

        A turn a crash interrupted runs again from the start; its message
        (or error) then says so, because the backend may have done, and
        billed, the interrupted run's work too (:func:`rerun_note`).
        """
        try:
            self._run_turn(turn_id)
        finally:
            self.partials.drop(turn_id)  # partial images never outlive their turn

    def _run_turn(self, turn_id: str) -> None:
        try:
            request, backend_name, attempts, chain = self._prepare(turn_id)
        except _TurnError as exc:
            self._finish(turn_id, "failed", error=exc.message)
            return
        try:
            backend = get_backend(backend_name)
            result = backend.edit(request)
        except UnknownBackend:
            self._finish(turn_id, "failed", error=f"The backend {backend_name!r} is not available on this server.")
            return
        except BackendDeclined as exc:
            self._finish(turn_id, "declined", message=_with_note(exc.message, rerun_note(attempts)))
            return
        except BackendFailed as exc:
            hint = " You can try again." if exc.retryable and "try again" not in exc.message.lower() else ""
            self._finish(turn_id, "failed", error=_with_note(exc.message + hint, rerun_note(attempts)))
            return
        except Exception:
            log.exception("backend %s crashed on turn %s", backend_name, turn_id)
            self._finish(turn_id, "failed", error=f"The {backend_name} backend hit an internal error. You can try again.")
            return
        if result.image is None:  # answered in words only: no version, not a failure
            with self.sessions() as session:
                turn = session.scalar(select(Turn).where(Turn.id == turn_id))
                turn.status = "answered"
                self._record_reply(turn, result, chain, attempts, image_sha=None)
                turn.thread.updated_at = utcnow()
                session.commit()
            return
        try:
            sha, width, height = store_image(self.store, result.image)
            self.decoded.put(sha, normalise_mode(result.image))  # the next turn starts from these pixels
        except Exception:
            log.exception("could not store the result of turn %s", turn_id)
            self._finish(turn_id, "failed", error="The result could not be saved (storage error). You can try again.")
            return
        source_sha = self._keep_source(turn_id, result.source)
        with self.sessions() as session:
            turn = session.scalar(select(Turn).where(Turn.id == turn_id))
            add_version(session, turn.thread, sha256=sha, width=width, height=height,
                        parent=turn.base_version, turn=turn)
            turn.status = "succeeded"
            self._record_reply(turn, result, chain, attempts, image_sha=None if request.mask is not None else sha)
            if source_sha is not None:
                turn.output = {**(turn.output or {}), "source_sha256": source_sha}
            session.commit()

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
            base = thread.version(turn.base_version)
            history = history_of(thread, turn.base_version)
            backend_name = turn.backend or "local"
            chain = conversation_of(thread, turn.base_version, backend_name)
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

    def _fail_quietly(self, turn_id: str) -> None:
        """Best effort after an unexpected error: fail the turn (if it is
        still running) with a message free of internals, so it does not stay
        ``running`` until the next restart. Errors here are logged only."""
        try:
            with self.sessions() as session:
                turn = session.scalar(select(Turn).where(Turn.id == turn_id))
                if turn is None or turn.status != "running":
                    return
                turn.status = "failed"
                turn.error = "Retouch hit an internal error while finishing this turn. You can try again."
                turn.finished_at = utcnow()
                session.commit()
        except Exception:
            log.exception("could not mark turn %s failed", turn_id)

    def _finish(self, turn_id: str, status: str, *, message: str | None = None, error: str | None = None) -> None:
        with self.sessions() as session:
            turn: Turn = session.scalar(select(Turn).where(Turn.id == turn_id))
            turn.status = status
            turn.message = message
            turn.error = error
            turn.finished_at = utcnow()
            turn.thread.updated_at = utcnow()
            session.commit()


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

