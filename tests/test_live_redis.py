"""Live updates across processes through Redis (``app/live_redis.py``).

Two hubs (or frame stores) on one Redis stand in for two processes; the
last test runs two real ``retouch serve`` processes on one PostgreSQL
database and shows a page open on A hears of a turn queued through B.
"""
from __future__ import annotations

import asyncio
import io
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis
from PIL import Image

from app.config import Settings
from app.events import ThreadEvents, make_events
from app.live_redis import FRAME_KEY, TEXT_KEY, RedisPartialFrames, RedisThreadEvents
from app.partials import PartialFrames, make_partials
from bench.server import ROOT, free_port

REDIS_URL = os.environ.get("RETOUCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
#: A Redis URL nobody listens on (port 1 is reserved, tcpmux, and closed here).
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:  # pragma: no cover - depends on the machine
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is required under CI=true: {exc}")
        pytest.skip(f"Redis not reachable: {exc}")
    return REDIS_URL


def channel() -> str:
    """A channel of this test's own, so tests running at once do not cross."""
    return "test:" + secrets.token_hex(6)


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_the_factories_choose_by_redis_url(tmp_path):
    plain = Settings(data_dir=tmp_path)
    assert type(make_events(plain)) is ThreadEvents and type(make_partials(plain)) is PartialFrames
    shared = Settings(data_dir=tmp_path, redis_url=REDIS_URL)
    assert isinstance(make_events(shared), RedisThreadEvents)
    assert isinstance(make_partials(shared), RedisPartialFrames)


def test_two_hubs_hear_each_other_once(redis_url):
    async def scenario():
        name = channel()
        a, b = RedisThreadEvents(redis_url, name), RedisThreadEvents(redis_url, name)
        a.start()
        b.start()
        try:
            await until(lambda: a.listening.is_set() and b.listening.is_set())
            async with a.subscribe("t1") as qa, b.subscribe("t1") as qb:
                # published from a worker thread of "process" B: A's page hears it
                sender = threading.Thread(target=b.publish, args=("t1",))
                sender.start()
                sender.join()
                await asyncio.wait_for(qa.get(), 2)
                await asyncio.wait_for(qb.get(), 2)  # B's own page, in-process
                await asyncio.sleep(0.3)
                assert qa.empty() and qb.empty()  # B's own notice came back over Redis: ignored
                async with a.subscribe("other") as q_other:
                    a.publish("t1")
                    await asyncio.wait_for(qb.get(), 2)
                    await asyncio.wait_for(qa.get(), 2)
                    await asyncio.sleep(0.2)
                    assert q_other.empty()
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(scenario())


def test_a_process_that_only_publishes_reaches_the_pages(redis_url):
    """A ``retouch worker`` process never calls ``start()``; it only publishes."""
    name = channel()
    worker_side = RedisThreadEvents(redis_url, name)

    async def scenario():
        web = RedisThreadEvents(redis_url, name)
        web.start()
        try:
            await until(web.listening.is_set)
            async with web.subscribe("t9") as q:
                await asyncio.to_thread(worker_side.publish, "t9")
                await asyncio.wait_for(q.get(), 2)
        finally:
            await web.stop()

    asyncio.run(scenario())


def test_the_listener_reconnects_and_tells_open_pages(redis_url):
    async def scenario():
        name = channel()
        a, b = RedisThreadEvents(redis_url, name), RedisThreadEvents(redis_url, name)
        a.start()
        try:
            await until(a.listening.is_set)
            async with a.subscribe("t2") as qa:
                admin = redis.Redis.from_url(redis_url)
                killed = admin.client_kill_filter(_type="pubsub", skipme=True,
                                                  _id=next(c["id"] for c in admin.client_list()
                                                           if c["name"] == f"retouch-events-{a.origin}"))
                assert killed == 1
                await until(lambda: not a.listening.is_set(), 5)
                await until(a.listening.is_set, 10)
                await asyncio.wait_for(qa.get(), 2)  # "refetch": notices may have been missed meanwhile
                await asyncio.to_thread(b.publish, "t2")
                await asyncio.wait_for(qa.get(), 2)
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(scenario())


def test_without_redis_pages_of_this_process_still_hear(caplog):
    async def scenario():
        hub = RedisThreadEvents(DEAD_REDIS_URL, channel())
        hub.start()
        try:
            async with hub.subscribe("t3") as q:
                for _ in range(3):
                    hub.publish("t3")
                    await asyncio.wait_for(q.get(), 2)
                await asyncio.sleep(0.5)
            with pytest.raises(redis.RedisError):
                hub.ping()
        finally:
            await hub.stop()

    asyncio.run(scenario())
    assert "Redis is unreachable" in caplog.text


def test_partial_frames_are_shared_and_dropped(redis_url):
    a, b = RedisPartialFrames(redis_url), RedisPartialFrames(redis_url)
    turn = "turn-" + secrets.token_hex(6)
    assert b.get(turn) is None and b.text(turn) is None
    stored = a.put(turn, 1, Image.new("RGB", (96, 64), (200, 30, 30)))
    a.put_text(turn, "Making it red")
    frame = b.get(turn)
    assert frame == stored and (frame.index, frame.width, frame.height) == (1, 96, 64)
    assert frame.data[:4] == b"RIFF" and frame.data[8:12] == b"WEBP"
    assert b.text(turn) == "Making it red"
    admin = redis.Redis.from_url(redis_url)
    assert 0 < admin.ttl(FRAME_KEY + turn) <= a.ttl and 0 < admin.ttl(TEXT_KEY + turn) <= a.ttl
    newer = a.put(turn, 2, Image.new("RGBA", (96, 64), (0, 0, 200, 128)))
    assert b.get(turn) == newer
    b.drop(turn)  # whichever process ends the turn
    assert admin.exists(FRAME_KEY + turn, TEXT_KEY + turn) == 0
    assert b.get(turn) is None
    a.drop(turn)
    assert a.get(turn) is None and a.text(turn) is None and len(a) == 0


def test_partial_frames_without_redis_stay_in_this_process(caplog):
    frames = RedisPartialFrames(DEAD_REDIS_URL)
    started = time.monotonic()
    frame = frames.put("t", 0, Image.new("RGB", (32, 32)))
    frames.put_text("t", "hello")
    assert frames.get("t") == frame and frames.text("t") == "hello" and len(frames) == 1
    assert frames.get("elsewhere") is None and frames.text("elsewhere") is None
    frames.drop("t")
    assert frames.get("t") is None
    assert time.monotonic() - started < 3  # refused at once, then not retried for a while
    assert caplog.text.count("Redis is unreachable") == 1


@pytest.mark.postgres
def test_a_page_on_one_process_hears_a_turn_queued_through_another(tmp_path, redis_url):
    from bench.bench_events import measure, postgres_schema, summary, two_servers

    try:
        schema = postgres_schema()
        database_url = schema.__enter__()
    except Exception as exc:  # pragma: no cover - depends on the machine
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        with two_servers(tmp_path, database_url, redis_url) as (a, b):
            results = measure(a, b, turns=2, image_size=256)
    finally:
        schema.__exit__(None, None, None)
    # Each page (on A and on B) heard each turn end, whichever process ran it.
    # The figures (seconds from finished_at to the event) are for the report:
    # python -m bench.bench_events measures them over more turns.
    assert all(x["a"] is not None and x["b"] is not None for x in results), results
    print(summary(results))


SERVE_WITH_PARTIALS = ("import tests.partial_backend; from app.cli import main; "
                       "raise SystemExit(main(['serve', '--host', '127.0.0.1', '--port', '{port}']))")


@contextmanager
def serve_with_partials(tmp: Path, env: dict[str, str]) -> Iterator[str]:
    """A ``retouch serve`` process that knows the ``partial-test`` backend
    (``tests/partial_backend.py``); yields its base URL, stops it after."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RETOUCH_", "OPENAI_"))}
    full_env.update(RETOUCH_DATA_DIR=str(tmp / "data"), RETOUCH_BACKEND="partial-test", PYTHONUNBUFFERED="1",
                    RETOUCH_TURN_RATE_LIMIT="0", RETOUCH_ANONYMOUS_RATE_LIMIT="0", **env)
    with open(tmp / f"server-{port}.log", "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", SERVE_WITH_PARTIALS.format(port=port)], cwd=ROOT,
                                env=full_env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp / f"server-{port}.log").read_text()[-3000:]
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.postgres
def test_partial_frames_of_a_turn_on_another_process_reach_the_page(tmp_path, redis_url):
    """Process A runs no turns (``RETOUCH_WORKERS=0``), so B runs it: A's
    page hears it start, change and end, and A serves B's partial frames
    and streamed words, read from Redis."""
    from bench.bench_events import EventReader, postgres_schema
    from bench.load_test import photo_bytes

    try:
        schema = postgres_schema()
        database_url = schema.__enter__()
    except Exception as exc:  # pragma: no cover - depends on the machine
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    common = {"RETOUCH_DATABASE_URL": database_url, "RETOUCH_REDIS_URL": redis_url}
    try:
        with serve_with_partials(tmp_path, {**common, "RETOUCH_WORKERS": "0"}) as a, \
                serve_with_partials(tmp_path, {**common, "RETOUCH_WORKERS": "1"}), \
                httpx.Client(base_url=a, timeout=30) as owner:
            tid = owner.post("/api/v1/threads", files={"image": ("p.png", photo_bytes(64), "image/png")}).json()["id"]
            page = EventReader(a, f"/t/{tid}/events", owner.cookies)
            page.start()
            try:
                assert page.ready.wait(10)
                turn_id = owner.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "invert"}).json()["id"]
                seen_indexes = set()
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    turn = owner.get(f"/api/v1/turns/{turn_id}").json()
                    if turn["status"] not in ("queued", "running"):
                        break
                    if turn["partial_image_url"]:
                        r = owner.get(turn["partial_image_url"], follow_redirects=False)
                        if r.status_code == 200:  # else the turn ended in between
                            assert r.headers["content-type"] == "image/webp"
                            assert Image.open(io.BytesIO(r.content)).size == (64, 48)
                            seen_indexes.add(int(r.headers["x-partial-index"]))
                    time.sleep(0.05)
                assert turn["status"] == "succeeded", turn
                assert seen_indexes, "A never served a partial frame of the turn B ran"
                assert len([name for name, _ in page.events if name == "changed"]) >= 2
                assert redis.Redis.from_url(redis_url).exists(FRAME_KEY + turn_id, TEXT_KEY + turn_id) == 0
            finally:
                page.close()
    finally:
        schema.__exit__(None, None, None)
