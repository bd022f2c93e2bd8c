"""The job queue on PostgreSQL: procrastinate (https://procrastinate.readthedocs.io).

Each queued turn has one job (task :data:`TASK`, queue :data:`QUEUE`)
carrying its turn id, deferred in the transaction that queues the turn
(:func:`defer_turn`, a call of procrastinate's ``procrastinate_defer_jobs_v1``
on the same connection): a committed turn always has its job, and the
job's ``NOTIFY`` wakes the workers at commit. The job's ``lock`` is the
thread id, so procrastinate runs one job of a thread at a time, in order.

Fairness between owners (the rule of ``app.worker.pick_fairly``: an owner
with a backlog must not starve another) is the job's priority: an owner's
turn gets minus the number of that owner's turns already pending, so owners
take turns; it never exceeds the priority of an earlier pending job of the
same thread (procrastinate would otherwise run the later one first).

The job body (``app.worker.TurnRunner.run_job``) claims the turn with the
conditional update of ``app/turns.py`` and runs it. :class:`JobWorker` runs
procrastinate's worker (its heartbeat every third of the lease) beside a
supervisor that, every third of the lease, sends the jobs of workers whose
heartbeat is older than the lease and one more beat (:meth:`JobWorker.stalled_after`)
back to ``todo`` (procrastinate's stalled jobs), requeues turns whose lease
expired, and defers a job for any queued turn without one. So a killed
worker's turn is taken over once its lease (``RETOUCH_LEASE_SECONDS``) has
run out: between one lease and one and a half leases after the kill.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.models import Thread, Turn

log = logging.getLogger("retouch.jobs")

TASK = "retouch.run_turn"
QUEUE = "turns"
#: Seconds a stopping job worker is given to finish its loop, then again after a cancel.
STOP_SECONDS = 5.0
#: How often a stopping job worker is asked again to stop, seconds.
STOP_POLL_SECONDS = 0.1
#: Any constant: the PostgreSQL advisory lock held while the schema is applied.
SCHEMA_LOCK = 0x7265746F  # "reto"

_DEFER = text(
    "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(:queue, :task, :priority, :lock, NULL, "
    "CAST(:args AS jsonb), NULL)::procrastinate_job_to_defer_v1])) AS id"
)


def _cancelling() -> bool:
    """True when the current task has been asked to stop (``Task.cancel``),
    even if the CancelledError it got was turned into another exception on
    the way (psycopg cancels the query and raises ``QueryCanceled``)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def conninfo(url: str) -> str:
    """The libpq connection URI for SQLAlchemy URL ``url``
    (``postgresql+psycopg://...`` becomes ``postgresql://...``, query
    options such as ``options=-csearch_path=...`` kept)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


#: procrastinate wakes its workers only when a job is inserted, so the next
#: job of a thread would wait for the next poll once the thread's running job
#: ends. This trigger sends the same ``job_inserted`` notification, at the
#: commit that ends (or retries) a locked job, naming the lock's next job.
_LOCK_RELEASED = """
CREATE OR REPLACE FUNCTION retouch_notify_lock_released() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    next_id bigint;
    payload text;
BEGIN
    SELECT id INTO next_id FROM procrastinate_jobs
     WHERE lock = OLD.lock AND status = 'todo' ORDER BY priority DESC, id LIMIT 1;
    IF next_id IS NOT NULL THEN
        payload := json_build_object('type', 'job_inserted', 'job_id', next_id)::text;
        PERFORM pg_notify('procrastinate_queue_v1#' || OLD.queue_name, payload);
        PERFORM pg_notify('procrastinate_any_queue_v1', payload);
    END IF;
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS retouch_lock_released_update ON procrastinate_jobs;
CREATE TRIGGER retouch_lock_released_update AFTER UPDATE OF status ON procrastinate_jobs FOR EACH ROW
    WHEN (OLD.status = 'doing' AND NEW.status <> 'doing' AND OLD.lock IS NOT NULL)
    EXECUTE FUNCTION retouch_notify_lock_released();
DROP TRIGGER IF EXISTS retouch_lock_released_delete ON procrastinate_jobs;
CREATE TRIGGER retouch_lock_released_delete AFTER DELETE ON procrastinate_jobs FOR EACH ROW
    WHEN (OLD.status = 'doing' AND OLD.lock IS NOT NULL)
    EXECUTE FUNCTION retouch_notify_lock_released();
"""


def apply_schema(engine: Engine) -> bool:
    """Create procrastinate's tables, types and functions in ``engine``'s
    database (its ``search_path`` schema) unless they exist, and (again,
    idempotently) the trigger :data:`_LOCK_RELEASED`; several processes may
    call it at once (an advisory lock serialises them). Returns True when
    it created procrastinate's schema. Called by ``app.db.migrate``."""
    from procrastinate.schema import SchemaManager

    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
        raw = conn.connection.driver_connection  # executed without parameters: '%' in the SQL stays
        created = conn.scalar(text("SELECT to_regclass('procrastinate_jobs')")) is None
        if created:
            raw.execute(SchemaManager.get_schema())
        raw.execute(_LOCK_RELEASED)
        conn.commit()
    if created:
        log.info("applied the job queue's schema (procrastinate)")
    return created


def fair_priority(session: Session, turn: Turn) -> int:
    """The job priority of ``turn`` (see the module docstring): minus its
    owner's other pending turns, capped at the lowest priority of the
    thread's pending jobs."""
    from app.turns import PENDING

    owner = select(Thread.owner_id).where(Thread.id == turn.thread_id).scalar_subquery()
    pending = session.scalar(select(func.count(Turn.pk)).join(Thread, Turn.thread_id == Thread.id)
                             .where(Thread.owner_id == owner, Turn.status.in_(PENDING), Turn.id != turn.id)) or 0
    floor = session.scalar(text("SELECT min(priority) FROM procrastinate_jobs WHERE lock = :lock "
                                "AND status IN ('todo', 'doing') AND task_name = :task"),
                           {"lock": turn.thread_id, "task": TASK})
    priority = -int(pending)
    return priority if floor is None else min(priority, int(floor))


def defer_turn(session: Session, turn: Turn, priority: int | None = None) -> int:
    """Defer the job that runs ``turn`` (flushed, in ``session``'s open
    transaction; the caller commits), with ``lock`` = its thread id and
    :func:`fair_priority` unless ``priority`` is given. Returns the job id."""
    if priority is None:
        priority = fair_priority(session, turn)
    return session.scalar(_DEFER, {"queue": QUEUE, "task": TASK, "priority": priority, "lock": turn.thread_id,
                                   "args": json.dumps({"turn_id": turn.id})})


def has_job(session: Session, turn_id: str, *, besides: int | None = None) -> bool:
    """Whether turn ``turn_id`` has a job waiting or running (other than
    job ``besides``)."""
    return session.scalar(text(
        "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE task_name = :task AND status IN ('todo', 'doing') "
        "AND args->>'turn_id' = :turn AND id IS DISTINCT FROM :besides)"),
        {"task": TASK, "turn": turn_id, "besides": besides})


def ensure_job(session: Session, turn_id: str, thread_id: str, *, besides: int | None = None,
               priority: int | None = None) -> bool:
    """Defer a job for queued turn ``turn_id`` unless it has one (other
    than job ``besides``), in ``session``'s transaction; the caller commits.
    Returns True when it deferred one."""
    if has_job(session, turn_id, besides=besides):
        return False
    turn = session.scalar(select(Turn).where(Turn.id == turn_id))
    defer_turn(session, turn, priority)
    return True


def step_aside(session: Session, turn_id: str, thread_id: str, job_id: int, priority: int) -> None:
    """For the job ``job_id`` of turn ``turn_id`` that found an older turn
    of its thread still queued: make sure each older queued turn has a job
    that runs before this turn's, and defer this turn again after them
    (this job then ends, freeing the thread's lock). Commits."""
    older = session.scalars(select(Turn.id).where(Turn.thread_id == thread_id, Turn.status == "queued",
                                                  Turn.pk < select(Turn.pk).where(Turn.id == turn_id)
                                                  .scalar_subquery()).order_by(Turn.pk)).all()
    for tid in older:
        ensure_job(session, tid, thread_id, priority=priority)
        session.execute(text("UPDATE procrastinate_jobs SET priority = greatest(priority, :p) WHERE "
                             "status = 'todo' AND task_name = :task AND args->>'turn_id' = :turn"),
                        {"p": priority, "task": TASK, "turn": tid})
    ensure_job(session, turn_id, thread_id, besides=job_id, priority=priority)
    session.commit()


def orphans(session: Session) -> list[tuple[str, str]]:
    """Queued turns with no job waiting or running (turns queued before
    the job queue existed, or whose job ended early): (turn id, thread id),
    oldest first."""
    rows = session.execute(text(
        "SELECT t.id, t.thread_id FROM turns t WHERE t.status = 'queued' AND NOT EXISTS ("
        "SELECT 1 FROM procrastinate_jobs j WHERE j.task_name = :task AND j.status IN ('todo', 'doing') "
        "AND j.args->>'turn_id' = t.id) ORDER BY t.pk"), {"task": TASK}).all()
    session.rollback()
    return [tuple(r) for r in rows]


def defer_orphans(sessions: sessionmaker) -> int:
    """Defer a job for every :func:`orphans` turn. Returns how many."""
    count = 0
    with sessions() as session:
        for turn_id, thread_id in orphans(session):
            count += ensure_job(session, turn_id, thread_id)
            session.commit()
    if count:
        log.warning("deferred jobs for %d queued turns that had none", count)
    return count


class JobWorker:
    """procrastinate's worker for turns, with the supervisor described in
    the module docstring. ``run_job(turn_id, job_id, priority)`` is the job
    body (sync; procrastinate runs it in a thread). ``sessions`` should be
    its own engine's, for the supervisor's queries."""

    def __init__(self, database_url: str, sessions: sessionmaker, run_job: Callable[[str, int, int], None], *,
                 concurrency: int, lease_seconds: float, name: str = "retouch") -> None:
        self.database_url = database_url
        self.sessions = sessions
        self.run_job = run_job
        self.concurrency = max(1, concurrency)
        self.lease_seconds = lease_seconds
        self.name = name
        self._stop_requested = asyncio.Event()

    def make_app(self):
        """The procrastinate ``App`` with the turn task registered."""
        import procrastinate

        app = procrastinate.App(connector=procrastinate.PsycopgConnector(
            conninfo=conninfo(self.database_url), min_size=1, max_size=self.concurrency + 3))

        @app.task(name=TASK, queue=QUEUE, pass_context=True)
        def run_turn(context, turn_id: str) -> None:
            self.run_job(turn_id, context.job.id, context.job.priority)

        return app

    def stop(self) -> None:
        """Ask :meth:`run` to end (from its event loop): it stops
        procrastinate's worker as on cancellation, but cannot be lost the way
        a cancellation can (on Python 3.11 ``asyncio.wait_for``, which the
        connection pool uses, may swallow one)."""
        self._stop_requested.set()

    async def run(self) -> None:
        """Run until :meth:`stop` or cancelled: the worker and the supervisor. Then
        procrastinate's worker is asked to stop
        (``Worker.stop()``: it finishes its loop and unregisters) and waited
        for at most :data:`STOP_SECONDS`, and only then cancelled: cancelling
        its task directly could leave its shielded loop waiting for a stop
        that never came, and the event loop's shutdown waiting on it."""
        from procrastinate import worker as procrastinate_worker

        from app import turns

        app = self.make_app()
        interval = self.lease_seconds / 3
        async with app.open_async():
            app.perform_import_paths()
            runner = procrastinate_worker.Worker(
                app=app, queues=[QUEUE], concurrency=self.concurrency, name=self.name, install_signal_handlers=False,
                update_heartbeat_interval=interval, stalled_worker_timeout=self.stalled_after,
                fetch_job_polling_interval=max(interval, 1.0), listen_notify=True, delete_jobs="successful")
            worker = asyncio.create_task(runner.run(), name="procrastinate-worker")
            stop = asyncio.ensure_future(self._stop_requested.wait())
            try:
                while not worker.done() and not stop.done():
                    try:
                        await self.supervise(app)
                        await asyncio.to_thread(self._sweep, turns)
                    except Exception:  # a database hiccup: try again next round
                        if _cancelling():  # psycopg turns a cancelled query into an error: stop, as asked
                            raise asyncio.CancelledError from None
                        log.exception("the job supervisor's round failed")
                    await asyncio.wait({worker, stop}, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
                if worker.done():
                    await worker
            finally:
                stop.cancel()
                # stop() again and again: a worker task that has not started yet clears its stop
                # event when it starts (procrastinate's Worker.run), so one early stop() can be lost.
                for _ in range(int(STOP_SECONDS / STOP_POLL_SECONDS)):
                    if worker.done():
                        break
                    runner.stop()
                    await asyncio.wait({worker}, timeout=STOP_POLL_SECONDS)
                if not worker.done():
                    log.warning("the job worker did not stop within %g s; cancelling it", STOP_SECONDS)
                    worker.cancel()
                    await asyncio.wait({worker}, timeout=STOP_SECONDS)
                if worker.done() and not worker.cancelled() and worker.exception() is not None:
                    log.warning("the job worker ended with %r", worker.exception())

    @property
    def stalled_after(self) -> float:
        """Seconds without a heartbeat after which a worker's jobs are
        taken over: the lease and one heartbeat interval more, so the dead
        worker's turn leases (renewed at most one interval before its last
        heartbeat) have always expired by then."""
        return self.lease_seconds * 4 / 3

    def _sweep(self, turns) -> None:
        with self.sessions() as session:
            turns.recover_expired(session)
        defer_orphans(self.sessions)

    async def supervise(self, app) -> int:
        """Send the jobs of workers silent for longer than :attr:`stalled_after`
        back to ``todo`` (procrastinate's ``get_stalled_jobs`` and ``retry_job``).
        Returns how many."""
        count = 0
        for job in await app.job_manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=self.stalled_after):
            try:
                await app.job_manager.retry_job(job)
            except Exception:  # another supervisor was first
                log.debug("stalled job %s was already retried", job.id, exc_info=True)
                continue
            count += 1
            log.warning("job %s (turn %s) lost its worker; it will be taken over", job.id,
                        job.task_kwargs.get("turn_id"))
        return count
