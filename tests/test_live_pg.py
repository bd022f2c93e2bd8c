"""Thread-change events across processes through PostgreSQL LISTEN/NOTIFY
(``app/live_pg.py``): two hubs on one database stand in for two processes;
the last test runs two real ``retouch serve`` processes without Redis."""
from __future__ import annotations

import asyncio
import secrets
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from app.config import Settings
from app.events import ThreadEvents, make_events
from app.live_pg import PostgresThreadEvents, libpq_url
from app.live_redis import RedisThreadEvents
from tests.conftest import IN_CI, POSTGRES_URL

pytestmark = pytest.mark.postgres
DEAD_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:1/test"


@pytest.fixture
def pg_url() -> str:
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # pragma: no cover - depends on the machine
        if IN_CI:
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required under CI=true: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    return POSTGRES_URL


def channel() -> str:
    """A channel of this test's own (channels are per database)."""
    return "test_" + secrets.token_hex(6)


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_make_events_picks_listen_notify_on_postgres_without_redis(tmp_path):
    assert type(make_events(Settings(data_dir=tmp_path))) is ThreadEvents  # SQLite: as before
    assert isinstance(make_events(Settings(data_dir=tmp_path, database_url=POSTGRES_URL)), PostgresThreadEvents)
    both = Settings(data_dir=tmp_path, database_url=POSTGRES_URL, redis_url="redis://127.0.0.1:6379/15")
    assert isinstance(make_events(both), RedisThreadEvents)
    assert libpq_url("postgresql+psycopg://u:p%40ss@h:5433/db?options=-csearch_path%3Dx") == \
        "postgresql://u:p%40ss@h:5433/db?options=-csearch_path%3Dx"


def test_two_hubs_hear_each_other_once(pg_url):
    async def scenario():
        name = channel()
        a, b = PostgresThreadEvents(pg_url, name), PostgresThreadEvents(pg_url, name)
        a.start()
        b.start()
        try:
            await until(lambda: a.listening.is_set() and b.listening.is_set())
            async with a.subscribe("t1") as qa, b.subscribe("t1") as qb:
                sender = threading.Thread(target=b.publish, args=("t1",))
                sender.start()
                sender.join()
                await asyncio.wait_for(qa.get(), 2)
                await asyncio.wait_for(qb.get(), 2)
                await asyncio.sleep(0.3)
                assert qa.empty() and qb.empty()  # B's own message came back: ignored
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(scenario())


def test_a_process_that_only_publishes_reaches_the_pages(pg_url):
    name = channel()
    worker_side = PostgresThreadEvents(pg_url, name)

    async def scenario():
        web = PostgresThreadEvents(pg_url, name)
        web.start()
        try:
            await until(web.listening.is_set)
            async with web.subscribe("t9") as q:
                await asyncio.to_thread(worker_side.publish, "t9")
                await asyncio.wait_for(q.get(), 2)
        finally:
            await web.stop()
            await worker_side.stop()

    asyncio.run(scenario())


def test_the_listener_reconnects_and_tells_open_pages(pg_url):
    async def scenario():
        name = channel()
        a, b = PostgresThreadEvents(pg_url, name), PostgresThreadEvents(pg_url, name)
        a.start()
        admin = create_engine(pg_url)
        try:
            await until(a.listening.is_set)
            async with a.subscribe("t2") as qa:
                with admin.begin() as conn:
                    killed = conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                               "WHERE application_name = :n"), {"n": f"retouch-events-{a.origin}"}).all()
                assert killed == [(True,)]
                await until(lambda: not a.listening.is_set(), 15)
                await until(a.listening.is_set, 10)
                await asyncio.wait_for(qa.get(), 2)  # "refetch": messages may have been missed meanwhile
                await asyncio.to_thread(b.publish, "t2")
                await asyncio.wait_for(qa.get(), 2)
        finally:
            admin.dispose()
            await a.stop()
            await b.stop()

    asyncio.run(scenario())


def test_without_the_server_pages_of_this_process_still_hear(caplog):
    async def scenario():
        hub = PostgresThreadEvents(DEAD_POSTGRES_URL, channel())
        hub.start()
        try:
            async with hub.subscribe("t3") as q:
                for _ in range(3):
                    hub.publish("t3")
                    await asyncio.wait_for(q.get(), 2)
                await asyncio.sleep(0.5)
        finally:
            await hub.stop()

    asyncio.run(scenario())
    assert "PostgreSQL (LISTEN/NOTIFY) is unreachable" in caplog.text


def test_pages_on_two_processes_hear_turns_without_redis(tmp_path, pg_url):
    from bench.bench_events import measure, postgres_schema, summary, two_servers

    with postgres_schema(pg_url) as database_url, two_servers(tmp_path, database_url, None) as (a, b):
        results = measure(a, b, turns=2, image_size=256)
    assert all(x["a"] is not None and x["b"] is not None for x in results), results
    print(summary(results))
