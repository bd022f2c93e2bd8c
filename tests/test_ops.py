"""Operations endpoints: ``/healthz``, ``/readyz``, ``/metrics`` (``app/ops.py``, ``app/metrics.py``)."""
from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import create_engine

from app import metrics
from app.db import make_sessionmaker
from app.main import create_app
from tests.conftest import make_settings, png_bytes, wait_for_turn
from tests.test_live_redis import redis_url  # noqa: F401  (the fixture)

DEAD_REDIS_URL = "redis://127.0.0.1:1/0"


def sample(exposition: str, name: str, **labels: str) -> float:
    """The value of one sample in a text exposition (0.0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in exposition.splitlines():
        m = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if m and ",".join(sorted((m.group(1) or "").split(","))) == want:
            return float(m.group(2))
    return 0.0


@pytest.fixture
def app_settings(tmp_path, sqlite_url, fake_backend):
    return make_settings(tmp_path / "data", sqlite_url)


def test_readyz_names_what_it_checked(app_settings):
    with TestClient(create_app(app_settings)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        r = client.get("/readyz")
        assert r.status_code == 200
        assert r.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}
        assert r.headers["cache-control"] == "no-store"
        assert not list(app_settings.blob_dir.glob(".readyz-*"))  # the probe file is gone


def test_readyz_with_redis_pings_it(app_settings, redis_url):
    with TestClient(create_app(app_settings.model_copy(update={"redis_url": redis_url}))) as client:
        r = client.get("/readyz")
        assert r.status_code == 200 and r.json()["checks"] == {"database": "ok", "storage": "ok", "redis": "ok"}


def test_readyz_503_names_what_failed(app_settings, caplog):
    app = create_app(app_settings.model_copy(update={"redis_url": DEAD_REDIS_URL}))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200  # alive, just not ready
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json() == {"status": "unavailable", "checks": {"database": "ok", "storage": "ok", "redis": "failed"},
                            "failed": ["redis"]}
        assert "127.0.0.1:1" not in r.text and "readiness check redis failed" in caplog.text

        class BrokenStore:  # an S3-like store (no root) whose bucket is gone
            def exists(self, sha256: str) -> bool:
                raise OSError("NoSuchBucket")

        ctx = app.state.ctx
        ctx.store, ctx.sessions = BrokenStore(), make_sessionmaker(create_engine("sqlite:////nonexistent/dir/x.db"))
        assert client.get("/readyz").json()["failed"] == ["database", "storage", "redis"]


def test_readyz_is_open_and_metrics_need_the_password(app_settings):
    with TestClient(create_app(app_settings.model_copy(update={"access_password": "correct horse"}))) as client:
        assert client.get("/readyz").status_code == 200
        assert client.get("/metrics", follow_redirects=False).status_code in (303, 401)
        r = client.get("/metrics", headers={"Authorization": "Bearer correct horse"})
        assert r.status_code == 200 and "retouch_queue_depth" in r.text


def test_metrics_functions_show_in_the_exposition():
    before = metrics.render().decode()
    metrics.turn_finished("unit-test", "failed", 2.0)
    metrics.partial_frame_stored()
    after = metrics.render().decode()
    assert sample(after, "retouch_turns_total", backend="unit-test", outcome="failed") == \
        sample(before, "retouch_turns_total", backend="unit-test", outcome="failed") + 1
    assert sample(after, "retouch_turn_duration_seconds_bucket", backend="unit-test", le="2.5") >= 1
    metrics.turn_ended("lost", "unit-test", 1.0)  # the worker's on_ended hook: a run taken over
    metrics.turn_ended("succeeded", "unit-test", 0.3)
    final = metrics.render().decode()
    assert sample(final, "retouch_turn_runs_lost_total", backend="unit-test") == \
        sample(after, "retouch_turn_runs_lost_total", backend="unit-test") + 1
    assert sample(final, "retouch_turns_total", backend="unit-test", outcome="lost") == 0
    assert sample(final, "retouch_turns_total", backend="unit-test", outcome="succeeded") == \
        sample(after, "retouch_turns_total", backend="unit-test", outcome="succeeded") + 1
    stored = "retouch_partial_frames_stored_total"
    assert sample(after, stored) == sample(before, stored) + 1


def test_metrics_show_queue_depth_and_frames_served(app_settings, fake_backend):
    with TestClient(create_app(app_settings)) as client:
        r = client.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
        for name in ("retouch_turns_total", "retouch_turn_duration_seconds", "retouch_queue_depth",
                     "retouch_partial_frames_sent_total", "retouch_partial_frames_stored_total"):
            assert f"# TYPE {name.removesuffix('_total')}" in r.text, name
        tid = client.post("/api/v1/threads", files={"image": ("a.png", png_bytes(), "image/png")}).json()["id"]
        fake_backend.gate.clear()
        turn = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "slow invert"}).json()
        client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "invert"})
        for _ in range(200):
            if client.get(f"/api/v1/turns/{turn['id']}").json()["status"] == "running":
                break
        text = client.get("/metrics").text
        assert sample(text, "retouch_queue_depth", status="running") == 1
        assert sample(text, "retouch_queue_depth", status="queued") == 1
        sent = sample(text, "retouch_partial_frames_sent_total")
        client.app.state.ctx.partials.put(turn["id"], 0, Image.new("RGB", (40, 30)))  # as a backend would
        assert client.get(f"/api/v1/threads/{tid}/turns/{turn['id']}/partial").status_code == 200
        assert sample(client.get("/metrics").text, "retouch_partial_frames_sent_total") == sent + 1
        fake_backend.gate.set()
        wait_for_turn(client, turn["id"])
        wait_for_turn(client, client.get(f"/api/v1/threads/{tid}").json()["turns"][-1]["id"])
        text = client.get("/metrics").text
        assert sample(text, "retouch_queue_depth", status="running") == 0
        assert sample(text, "retouch_queue_depth", status="queued") == 0


def test_metrics_count_a_finished_turn(app_settings):
    with TestClient(create_app(app_settings)) as client:
        before = client.get("/metrics").text
        tid = client.post("/api/v1/threads", files={"image": ("a.png", png_bytes(), "image/png")}).json()["id"]
        turn = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "invert"}).json()
        assert wait_for_turn(client, turn["id"])["status"] == "succeeded"
        after = client.get("/metrics").text
        assert sample(after, "retouch_turns_total", backend="fake", outcome="succeeded") == \
            sample(before, "retouch_turns_total", backend="fake", outcome="succeeded") + 1
        assert sample(after, "retouch_turn_duration_seconds_count", backend="fake") == \
            sample(before, "retouch_turn_duration_seconds_count", backend="fake") + 1


def test_a_worker_process_serves_its_metrics_on_its_own_port(tmp_path, sqlite_url):
    """``retouch worker`` with ``RETOUCH_METRICS_PORT``: prometheus-client's
    HTTP server, queue depth included (once per process)."""
    import httpx

    from app.db import make_engine, migrate
    from bench.server import free_port

    migrate(sqlite_url)
    port = free_port()
    metrics.serve_in_background(port, make_sessionmaker(make_engine(sqlite_url)), addr="127.0.0.1")
    metrics.serve_in_background(port + 1)  # a second call does nothing
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "retouch_turns_total" in text or "# TYPE retouch_turns counter" in text
    assert 'retouch_queue_depth{status="queued"} 0.0' in text


def test_request_threads_size_the_thread_limiter(tmp_path, sqlite_url, fake_backend):
    import anyio.to_thread

    def tokens() -> float:
        return anyio.to_thread.current_default_thread_limiter().total_tokens

    for threads in (3, 8):
        app = create_app(make_settings(tmp_path / f"data{threads}", sqlite_url, request_threads=threads))
        with TestClient(app) as client:
            assert client.portal.call(tokens) == threads
            assert client.get("/healthz").json() == {"status": "ok"}
