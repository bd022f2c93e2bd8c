"""Claims, leases and takeover of turns (``app/turns.py``), on SQLite and
PostgreSQL, without a server: claimers race in threads on one database."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from app import turns
from app.db import make_engine, make_sessionmaker, migrate
from app.models import Thread, Turn, Version, new_id, utcnow
from app.services import store_image
from app.storage import BlobStore
from app.worker import TurnRunner, pick_fairly

LEASE = 30.0


@pytest.fixture
def sessions(database_url):
    migrate(database_url)
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def make_threads(sessions, owners: int, threads_each: int, turns_each: int, *, head: bool = False) -> list[str]:
    """Queue ``turns_each`` turns in each of ``threads_each`` threads of
    each of ``owners`` owners, interleaved (turn k of every thread, then
    turn k+1). Returns the thread ids."""
    ids = []
    with sessions() as s:
        threads = []
        for o in range(owners):
            for _ in range(threads_each):
                th = Thread(id=new_id(), owner_id=f"owner-{o}", title="t", head_version=1 if head else None)
                s.add(th)
                threads.append(th)
        s.commit()
        for k in range(turns_each):
            for th in threads:
                turns.queue(s, Turn(id=new_id(), thread=th, instruction=f"{th.id} {k}", backend="fake"))
                s.commit()
        ids = [th.id for th in threads]
    return ids


def test_two_claimers_racing_for_one_turn_get_it_once(sessions):
    """Eight threads claim the same queued turn at the same instant: exactly one gets it."""
    make_threads(sessions, 1, 1, 1)
    with sessions() as s:
        turn_id = s.scalar(select(Turn.id))
    barrier = threading.Barrier(8)
    got = []

    def race():
        with sessions() as s:
            barrier.wait()
            got.append(turns.claim(s, turn_id, LEASE))

    workers = [threading.Thread(target=race) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    winners = [c for c in got if c is not None]
    assert len(got) == 8 and len(winners) == 1
    with sessions() as s:
        turn = s.scalar(select(Turn).where(Turn.id == turn_id))
        assert turn.status == "running" and turn.attempts == 1 and turn.claimed_by == winners[0].holder


def test_racing_claimers_never_share_a_turn_and_keep_each_threads_order(sessions):
    """Six claimers drain 48 turns (4 owners x 2 threads x 6 turns) by the
    fairness rule: every turn is claimed once, a thread never has two
    turns held at once, and each thread's turns start oldest first."""
    thread_ids = make_threads(sessions, 4, 2, 6)
    claimed: list[tuple[str, int]] = []
    held: set[str] = set()
    lock = threading.Lock()
    errors: list[str] = []

    def claimer():
        idle = 0
        while idle < 20:
            with sessions() as s:
                try:
                    c = turns.claim_next(s, LEASE, pick_fairly)
                except Exception as exc:  # SQLite "database is locked" would show here
                    errors.append(repr(exc))
                    continue
            if c is None:
                idle += 1
                time.sleep(0.01)
                continue
            idle = 0
            with sessions() as s:
                pk = s.scalar(select(Turn.pk).where(Turn.id == c.turn_id))
            with lock:
                if c.thread_id in held:
                    errors.append(f"thread {c.thread_id} had two turns held")
                held.add(c.thread_id)
                claimed.append((c.thread_id, pk))
            time.sleep(0.002)
            with lock:
                held.discard(c.thread_id)
            with sessions() as s:
                assert turns.fail(s, c, "done")

    workers = [threading.Thread(target=claimer) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert len(claimed) == 48 and len(set(claimed)) == 48
    for tid in thread_ids:
        pks = [pk for t, pk in claimed if t == tid]
        assert pks == sorted(pks) and len(pks) == 6


def test_a_later_turn_of_a_thread_cannot_be_claimed_before_an_older_one(sessions):
    make_threads(sessions, 1, 1, 2)
    with sessions() as s:
        first, second = s.scalars(select(Turn.id).order_by(Turn.pk)).all()
    with sessions() as s:
        assert turns.claim(s, second, LEASE) is None  # the older turn is still queued
        c = turns.claim(s, first, LEASE)
        assert c is not None
        assert turns.claim(s, second, LEASE) is None  # the older turn is running
        assert turns.fail(s, c, "x")
        assert turns.claim(s, second, LEASE) is not None


def test_the_kind_is_settled_when_the_turn_starts(sessions):
    """A turn queued behind a generation is recorded as a generation, and
    becomes an edit of the generated version when it starts."""
    make_threads(sessions, 1, 1, 2)
    with sessions() as s:
        first, second = s.scalars(select(Turn).order_by(Turn.pk)).all()
        assert first.kind == second.kind == "generate"
        c = turns.claim(s, first.id, LEASE)
        turn = turns.succeed(s, c)
        s.add(Version(thread_id=turn.thread_id, number=1, sha256="0" * 64, width=1, height=1, turn_id=turn.id))
        turn.thread.head_version = 1
        s.commit()
        c2 = turns.claim(s, second.id, LEASE)
        row = s.execute(select(Turn.kind, Turn.base_version).where(Turn.id == c2.turn_id)).one()
        assert tuple(row) == ("edit", 1)


def _expire(sessions, turn_id: str) -> None:
    with sessions() as s:
        s.execute(update(Turn).where(Turn.id == turn_id).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        s.commit()


def test_recovery_leaves_a_live_lease_alone_and_takes_over_an_expired_one(sessions):
    make_threads(sessions, 1, 2, 1)
    with sessions() as s:
        a, b = s.scalars(select(Turn.id).order_by(Turn.pk)).all()
        ca, cb = turns.claim(s, a, LEASE), turns.claim(s, b, LEASE)
    _expire(sessions, b)
    with sessions() as s:
        assert turns.recover_expired(s) == (1, 0)
        status = dict(s.execute(select(Turn.id, Turn.status)).all())
    assert status == {a: "running", b: "queued"}
    with sessions() as s:  # the second start of b; expired again, it is failed "interrupted"
        cb2 = turns.claim(s, b, LEASE)
        assert cb2 is not None and cb2.attempts == 2 and cb2.holder != cb.holder
    _expire(sessions, b)
    with sessions() as s:
        assert turns.recover_expired(s) == (0, 1)
        turn = s.scalar(select(Turn).where(Turn.id == b))
        assert (turn.status, turn.error) == ("failed", "interrupted")
        assert s.scalar(select(Turn.claimed_by).where(Turn.id == a)) == ca.holder


def test_a_dead_holder_on_this_machine_frees_its_turn_at_once(sessions):
    """A live lease whose holder process (on this node) has exited is
    recovered without waiting; one whose process runs is left alone."""
    make_threads(sessions, 1, 2, 1)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with sessions() as s:
            a, b = s.scalars(select(Turn.id).order_by(Turn.pk)).all()
            turns.claim(s, a, LEASE), turns.claim(s, b, LEASE)
            s.execute(update(Turn).where(Turn.id == a).values(claimed_by=f"{turns.NODE}:{dead.pid}:1"))
            s.execute(update(Turn).where(Turn.id == b).values(claimed_by=f"{turns.NODE}:{alive.pid}:1"))
            s.execute(update(Turn).values(lease_expires_at=utcnow() + timedelta(seconds=60)))
            s.commit()
            assert turns.recover_expired(s) == (1, 0)
            assert dict(s.execute(select(Turn.id, Turn.status)).all()) == {a: "queued", b: "running"}
        # another machine's holder is never judged by its pid
        assert not turns.holder_is_dead(f"elsewhere-00000000:{dead.pid}:1")
    finally:
        alive.kill()
        alive.wait()


def test_the_old_holder_cannot_end_a_taken_over_turn(sessions):
    make_threads(sessions, 1, 1, 1)
    with sessions() as s:
        turn_id = s.scalar(select(Turn.id))
        old = turns.claim(s, turn_id, LEASE)
    _expire(sessions, turn_id)
    with sessions() as s:
        turns.recover_expired(s)
        new = turns.claim(s, turn_id, LEASE)
    assert new is not None
    with sessions() as s:
        assert turns.succeed(s, old) is None
        assert not turns.fail(s, old, "late")
        assert not turns.decline(s, old, "late")
        assert turns.heartbeat(s, [old.holder, new.holder], LEASE) == {new.holder}
        assert turns.succeed(s, new) is not None
        s.commit()


def test_a_run_whose_lease_was_taken_over_writes_no_version(sessions, fake_backend, tmp_path):
    """The worker's run ends ``lost`` and adds nothing when, while its
    backend worked, the lease expired and another worker took the turn."""
    make_threads(sessions, 1, 1, 1)
    store = BlobStore(tmp_path / "blobs")
    with sessions() as s:
        th = s.scalar(select(Thread))
        from PIL import Image

        sha, w, h = store_image(store, Image.new("RGB", (8, 8), (9, 9, 9)))
        s.add(Version(thread_id=th.id, number=1, sha256=sha, width=w, height=h))
        th.head_version = 1
        s.execute(update(Turn).values(instruction="slow invert"))
        s.commit()
        turn_id = s.scalar(select(Turn.id))
    runner = TurnRunner(sessions, store, lease_seconds=LEASE)
    fake_backend.gate.clear()
    with sessions() as s:
        old = turns.claim(s, turn_id, LEASE)
    outcome = []
    run = threading.Thread(target=lambda: outcome.append(runner.run_claimed(old)))
    run.start()
    while not fake_backend.requests:
        time.sleep(0.01)
    _expire(sessions, turn_id)
    with sessions() as s:
        assert turns.recover_expired(s) == (1, 0)
        new = turns.claim(s, turn_id, LEASE)
    fake_backend.gate.set()
    run.join(10)
    runner.stop()
    assert outcome == ["lost"]
    with sessions() as s:
        assert s.scalar(select(Turn.claimed_by).where(Turn.id == turn_id)) == new.holder
        assert s.scalar(select(Turn.status).where(Turn.id == turn_id)) == "running"
        assert s.scalars(select(Version.number)).all() == [1]  # no version from the old run


def test_queueing_on_postgres_defers_one_job_in_the_same_transaction(sessions, database_url):
    """A rolled-back turn leaves no job; a committed one has exactly one,
    locked on its thread. Owners with a backlog get lower priorities."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the job queue is PostgreSQL's")
    with sessions() as s:
        th = Thread(id=new_id(), owner_id="o", title="t")
        s.add(th)
        s.commit()
        turns.queue(s, Turn(id=new_id(), thread=th, instruction="gone", backend="fake"))
        s.rollback()
        assert s.scalar(text("SELECT count(*) FROM procrastinate_jobs")) == 0
        ids = []
        for k in range(3):
            ids.append(turns.queue(s, Turn(id=new_id(), thread=th, instruction=f"i{k}", backend="fake")).id)
            s.commit()
        other = Thread(id=new_id(), owner_id="p", title="t")
        s.add(other)
        turns.queue(s, Turn(id=new_id(), thread=other, instruction="p0", backend="fake"))
        s.commit()
        rows = s.execute(text("SELECT args->>'turn_id', lock, priority, status FROM procrastinate_jobs ORDER BY id")).all()
    assert [r[0] for r in rows[:3]] == ids and {r[1] for r in rows[:3]} == {th.id}
    assert [r[2] for r in rows] == [0, -1, -2, 0]
    assert Counter(r[3] for r in rows) == {"todo": 4}


def test_a_threads_next_turn_starts_as_soon_as_the_previous_one_ends(tmp_path, database_url, fake_backend):
    """Ten turns of one thread run back to back, without waiting for the
    job queue's polling (every 10 s with the default 30 s lease): on
    PostgreSQL the end of a thread's job wakes the workers for its next one."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from tests.conftest import make_settings, png_bytes, wait_for_thread

    settings = make_settings(tmp_path / "data", database_url, turn_rate_limit="0")
    with TestClient(create_app(settings)) as client:
        tid = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()["id"]
        started = time.monotonic()
        for i in range(10):
            assert client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": f"invert {i}"}).status_code == 202
        thread = wait_for_thread(client, tid, timeout=30)
        elapsed = time.monotonic() - started
    assert [t["status"] for t in thread["turns"]][1:] == ["succeeded"] * 10
    assert elapsed < 8, elapsed


def test_a_job_that_finds_an_older_turn_waiting_steps_aside(sessions, database_url, tmp_path):
    """PostgreSQL: the job of a thread's second turn, run while the first
    turn is still queued without a job (say it was queued before the job
    queue existed), runs nothing: it defers the first turn's job and its
    own again after it, then ends, freeing the thread's lock."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the job queue is PostgreSQL's")
    make_threads(sessions, 1, 1, 2)
    with sessions() as s:
        first, second = s.scalars(select(Turn.id).order_by(Turn.pk)).all()
        s.execute(text("DELETE FROM procrastinate_jobs WHERE args->>'turn_id' = :t"), {"t": first})
        job_id, priority = s.execute(text("SELECT id, priority FROM procrastinate_jobs WHERE args->>'turn_id' = :t"),
                                     {"t": second}).one()
        s.execute(text("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = :id"), {"id": job_id})
        s.commit()
    runner = TurnRunner(sessions, BlobStore(tmp_path / "blobs"), lease_seconds=LEASE)
    runner.run_job(second, job_id, priority)
    with sessions() as s:
        assert dict(s.execute(select(Turn.id, Turn.status)).all()) == {first: "queued", second: "queued"}
        todo = s.execute(text("SELECT args->>'turn_id' FROM procrastinate_jobs WHERE status = 'todo' "
                              "ORDER BY priority DESC, id")).scalars().all()
    assert todo == [first, second]


def test_a_turn_queued_as_its_thread_is_deleted_is_stopped_not_run(sessions):
    """A turn that reached the queue in the instant its thread was deleted
    (after the delete stopped the pending ones) is stopped at its claim, so
    it neither runs nor blocks the queue; the next thread's turn then starts."""
    first, second = make_threads(sessions, 1, 2, 1)
    with sessions() as s:
        s.execute(update(Thread).where(Thread.id == first).values(deleted_at=utcnow()))
        s.commit()
        doomed = s.scalar(select(Turn.id).where(Turn.thread_id == first))
        assert turns.claim(s, doomed, LEASE) is None
        turn = s.scalar(select(Turn).where(Turn.id == doomed))
        assert turn.status == "cancelled" and "deleted" in turn.message and turn.attempts == 0
        got = turns.claim_next(s, LEASE, pick_fairly)
        assert got is not None and got.thread_id == second
