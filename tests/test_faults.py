"""Backend faults, each run against a real turn through the HTTP API.

An :class:`OpenAIBackend` registered as ``openai-faults`` talks over HTTP to
the fake OpenAI server (``tests/fake_openai.py``), which answers the turn's
request with one fault after another. For every fault the test checks that:

- the turn ends ``failed`` or ``declined`` with a message a person can act
  on, and neither the turn JSON, the thread page ``/t/{id}`` nor the log
  (captured at DEBUG) holds a traceback or the API key;
- the thread is untouched: same head, same versions with the same sha256s,
  and every earlier image (and thumbnail) is still served byte for byte;
- "try again" (``POST /api/v1/turns/{id}/retry``) succeeds once the fault is
  gone;
- retries are bounded and never bill twice silently: the fake's request
  count shows exactly how many requests were sent, only failures that make
  no image (connection refused, 429, 5xx) are resent, at most
  ``max_retries`` (1) times, and a resend is stated in the turn's error or
  message.
"""
from __future__ import annotations

import hashlib
import logging
import socket
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from app.backends import register_backend, unregister_backend
from app.backends.openai_backend import OpenAIBackend
from app.main import create_app
from tests.conftest import make_settings, png_bytes, wait_for_turn
from tests.fake_openai import FakeOpenAI

API_KEY = "sk-proj-FAULTKEY-7d3c9a1b5e2f4a6c8e0d"
BACKEND = "openai-faults"
TIMEOUT = 1.5  # seconds, per OpenAI request
MAX_RETRIES = 1


def closed_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


class Rig:
    """The app client, the fake server and a switch for the backend's URL."""

    def __init__(self, client: TestClient, fake: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
        self.client = client
        self.fake = fake
        self.caplog = caplog

    def point_backend_at(self, base_url: str, **options) -> None:
        """(Re-)register the test backend; the next turn builds it afresh."""
        options = {"timeout": TIMEOUT, "max_retries": MAX_RETRIES, **options}
        register_backend(BACKEND, lambda: OpenAIBackend(api_key=API_KEY, base_url=base_url, **{"partial_images": 0, **options}))

    def turn(self, thread_id: str, instruction: str) -> dict:
        r = self.client.post(f"/api/v1/threads/{thread_id}/turns", data={"instruction": instruction})
        assert r.status_code == 202, r.text
        return wait_for_turn(self.client, r.json()["id"])

    def snapshot(self, thread_id: str) -> dict:
        """The thread's head, its versions' sha256s and their served bytes."""
        thread = self.client.get(f"/api/v1/threads/{thread_id}").json()
        images = {}
        for v in thread["versions"]:
            full = self.client.get(v["image_url"])
            thumb = self.client.get(v["image_url"], params={"size": "thumb"})
            assert full.status_code == 200 and thumb.status_code == 200
            assert hashlib.sha256(full.content).hexdigest() == v["sha256"]
            assert full.headers["etag"] == f'"{v["sha256"]}"'
            images[v["number"]] = (full.content, thumb.content)
        return {"head": thread["head_version"],
                "versions": [(v["number"], v["parent"], v["sha256"]) for v in thread["versions"]],
                "images": images}

    def assert_nothing_leaks(self, thread_id: str, turn: dict) -> None:
        """No traceback and no API key in the turn, the thread JSON, the
        page or the log."""
        page = self.client.get(f"/t/{thread_id}").text
        thread_json = self.client.get(f"/api/v1/threads/{thread_id}").text
        for text in (str(turn), thread_json, page, self.caplog.text):
            assert API_KEY not in text
            assert "FAULTKEY" not in text
        for text in (str(turn), thread_json, page):
            assert "Traceback" not in text and 'File "' not in text
        for record in self.caplog.records:
            assert record.exc_info is None, f"traceback logged: {record.getMessage()}"
            assert "Traceback" not in record.getMessage()
        shown = turn["error"] if turn["status"] == "failed" else turn["message"]
        assert str(escape(shown)) in page  # the person sees the explanation


@pytest.fixture
def rig(tmp_path, sqlite_url, fake_openai, caplog) -> Iterator[Rig]:
    caplog.set_level(logging.DEBUG)
    fake_openai.image_size = (64, 64)
    fake_openai.retry_after = "0.2"
    settings = make_settings(tmp_path / "data", sqlite_url, backend=BACKEND)
    r = None
    # Not streamed: these faults are answers to a plain request (a stream that breaks
    # is tested in test_openai_options.py).
    register_backend(BACKEND, lambda: OpenAIBackend(api_key=API_KEY, base_url=fake_openai.base_url,
                                                    timeout=TIMEOUT, max_retries=MAX_RETRIES, partial_images=0))
    try:
        with TestClient(create_app(settings)) as client:
            r = Rig(client, fake_openai, caplog)
            yield r
    finally:
        unregister_backend(BACKEND)


def thread_with_two_versions(rig: Rig) -> str:
    """A thread with an uploaded photo (v1) and one successful edit (v2)."""
    r = rig.client.post("/api/v1/threads", files={"image": ("p.png", png_bytes((48, 40)), "image/png")},
                        data={"prompt": "make it warmer"})
    assert r.status_code == 201, r.text
    thread = r.json()
    assert wait_for_turn(rig.client, thread["turns"][1]["id"])["status"] == "succeeded"
    return thread["id"]


# (fault queued on the fake, final status, words the person reads, requests sent)
FAULTS = {
    "429": (["429", "429"], "failed", ["rate-limiting", "HTTP 429", "sent the request 2 times", "none is billed"], 2),
    "500": (["500", "500"], "failed", ["server problem (HTTP 500)", "sent the request 2 times", "none is billed"], 2),
    "503": (["503", "503"], "failed", ["server problem (HTTP 503)", "sent the request 2 times", "none is billed"], 2),
    "slow": (["slow"], "failed", [f"did not answer within {TIMEOUT:g} seconds", "did not resend",
                                  "billed", "try again"], 1),
    "malformed_json": (["malformed_json"], "failed", ["not valid JSON"], 1),
    "missing_b64": (["missing_b64"], "failed", ["URL instead of the image data"], 1),
    "bad_b64": (["bad_b64"], "failed", ["not an image"], 1),
    "not_base64": (["not_base64"], "failed", ["not valid base64"], 1),
    "moderation_blocked": (["moderation_blocked"], "declined", ["safety system", "rephras"], 1),
    "401": (["401"], "failed", ["API key was rejected", "OPENAI_API_KEY"], 1),
    "insufficient_quota": (["insufficient_quota"], "failed", ["quota"], 1),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_ends_the_turn_readably_and_keeps_the_thread(rig, fault):
    """One fault against a real edit turn: a readable failed/declined turn,
    an intact thread, exactly the expected number of requests, no leaks,
    and a working "try again" afterwards."""
    behaviours, status, words, requests = FAULTS[fault]
    if fault == "slow":
        rig.fake.slow_seconds = TIMEOUT + 2
    tid = thread_with_two_versions(rig)
    before = rig.snapshot(tid)
    rig.fake.reset()

    rig.fake.fail_next(*behaviours)
    turn = rig.turn(tid, f"an edit that meets {fault}")
    assert turn["status"] == status, turn
    text = turn["error"] if status == "failed" else turn["message"]
    for w in words:
        assert w.lower() in text.lower(), (w, text)
    assert len(rig.fake.requests) == requests, [r.behaviour for r in rig.fake.requests]
    assert rig.fake.pending == []
    assert turn["result_version"] is None
    assert rig.snapshot(tid) == before
    rig.assert_nothing_leaks(tid, turn)

    retried = rig.client.post(f"/api/v1/turns/{turn['id']}/retry")
    assert retried.status_code == 202, retried.text
    done = wait_for_turn(rig.client, retried.json()["id"])
    assert done["status"] == "succeeded", done
    after = rig.snapshot(tid)
    assert after["head"] == before["head"] + 1
    assert after["versions"][:-1] == before["versions"]
    assert after["versions"][-1][1] == before["head"]  # built on the intact head
    assert all(after["images"][n] == before["images"][n] for n in before["images"])


def test_connection_refused_fails_readably_and_retry_works_once_reachable(rig):
    """The backend points at a closed port: the turn fails saying it could
    not connect (after one automatic resend, which it mentions); pointed at
    the server again, "try again" succeeds."""
    tid = thread_with_two_versions(rig)
    before = rig.snapshot(tid)
    rig.point_backend_at(closed_port_url())
    turn = rig.turn(tid, "an edit while the network is down")
    assert turn["status"] == "failed"
    assert "could not connect" in turn["error"].lower() and "try again" in turn["error"].lower()
    assert "sent the request 2 times" in turn["error"]
    assert rig.snapshot(tid) == before
    rig.assert_nothing_leaks(tid, turn)

    rig.point_backend_at(rig.fake.base_url)
    rig.fake.reset()
    done = wait_for_turn(rig.client, rig.client.post(f"/api/v1/turns/{turn['id']}/retry").json()["id"])
    assert done["status"] == "succeeded"
    assert len(rig.fake.requests) == 1
    assert rig.snapshot(tid)["head"] == before["head"] + 1


@pytest.mark.parametrize("behaviour", ["429", "500", "503"])
def test_one_unbilled_failure_is_resent_once_and_the_turn_says_so(rig, behaviour):
    """A single 429/5xx is resent automatically (2 requests); the turn
    succeeds and its message says a request was resent and only one billed."""
    tid = thread_with_two_versions(rig)
    rig.fake.reset()
    rig.fake.fail_next(behaviour)
    turn = rig.turn(tid, "an edit that fails once")
    assert turn["status"] == "succeeded", turn
    assert [r.behaviour for r in rig.fake.requests] == [behaviour, None]
    assert f"HTTP {behaviour}" in turn["message"] and "2 requests in all" in turn["message"]
    assert "only the last one is billed" in turn["message"]
    rig.assert_nothing_leaks(tid, turn)


def test_retries_are_bounded(rig):
    """However many 5xx answers are queued, one turn sends at most
    1 + max_retries requests."""
    tid = thread_with_two_versions(rig)
    rig.fake.reset()
    rig.fake.fail_next("500", "503", "500", "503", "500")
    turn = rig.turn(tid, "an edit during an outage")
    assert turn["status"] == "failed"
    assert len(rig.fake.requests) == 1 + MAX_RETRIES
    assert rig.fake.pending == ["500", "503", "500"]


def test_a_timeout_is_never_resent_even_with_more_retries(rig):
    """A request that timed out may have been billed, so it is not resent
    even when max_retries allows it."""
    rig.point_backend_at(rig.fake.base_url, max_retries=3)
    rig.fake.slow_seconds = TIMEOUT + 2
    tid = thread_with_two_versions(rig)
    rig.fake.reset()
    rig.fake.fail_next("slow", "slow", "slow")
    turn = rig.turn(tid, "an edit that is too slow")
    assert turn["status"] == "failed" and "did not resend" in turn["error"]
    assert len(rig.fake.requests) == 1


def test_a_long_retry_after_is_not_waited_for(rig):
    """When the API asks to wait longer than Retouch will (Retry-After: 60),
    the turn fails at once quoting the wait instead of resending."""
    tid = thread_with_two_versions(rig)
    rig.fake.reset()
    rig.fake.retry_after = "60"
    rig.fake.fail_next("429")
    turn = rig.turn(tid, "an edit while rate limited for a minute")
    assert turn["status"] == "failed" and "60 seconds" in turn["error"]
    assert len(rig.fake.requests) == 1


def test_a_generation_fault_leaves_an_empty_thread_retryable(rig):
    """A fault on the very first (generate) turn: the thread stays without
    versions, and trying again generates version 1."""
    rig.fake.fail_next("500", "500")
    thread = rig.client.post("/api/v1/threads", json={"prompt": "a lighthouse at dusk"}).json()
    turn = wait_for_turn(rig.client, thread["turns"][0]["id"])
    assert turn["status"] == "failed" and "HTTP 500" in turn["error"]
    assert rig.client.get(f"/api/v1/threads/{thread['id']}").json()["versions"] == []
    rig.assert_nothing_leaks(thread["id"], turn)
    done = wait_for_turn(rig.client, rig.client.post(f"/api/v1/turns/{turn['id']}/retry").json()["id"])
    assert done["status"] == "succeeded" and done["result_version"] == 1


# ------------------------------------------------------------ worker faults


@pytest.fixture
def fake_client(tmp_path, sqlite_url, fake_backend) -> Iterator[TestClient]:
    """The app with the deterministic fake backend (tests/conftest.py)."""
    with TestClient(create_app(make_settings(tmp_path / "data", sqlite_url))) as c:
        yield c


def test_a_damaged_stored_image_fails_the_turn_readably(fake_client, tmp_path, caplog):
    """A head blob whose bytes were damaged on disk: the turn fails saying
    so, without a traceback in the turn or on the page."""
    thread = fake_client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()
    sha = thread["versions"][0]["sha256"]
    (tmp_path / "data" / "blobs" / sha[:2] / f"{sha}.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    r = fake_client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "invert it"})
    turn = wait_for_turn(fake_client, r.json()["id"])
    assert turn["status"] == "failed" and "damaged" in turn["error"]
    page = fake_client.get(f"/t/{thread['id']}").text
    assert "Traceback" not in page and "Traceback" not in str(turn)


def test_an_unexpected_error_fails_the_turn_and_the_worker_goes_on(fake_client, monkeypatch, caplog):
    """An exception escaping run_turn (here: while adding the version) fails
    that turn with a plain message instead of leaving it running, and the
    worker keeps running later turns."""
    import app.worker

    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    thread = fake_client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()
    monkeypatch.setattr(app.worker, "add_version", broken)
    r = fake_client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "invert it"})
    turn = wait_for_turn(fake_client, r.json()["id"])
    assert turn["status"] == "failed" and "internal error" in turn["error"]
    assert "secret internal detail" not in str(turn)
    assert "secret internal detail" not in fake_client.get(f"/t/{thread['id']}").text
    monkeypatch.undo()
    for _ in range(3):  # both workers are still alive
        r = fake_client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "invert it"})
        assert wait_for_turn(fake_client, r.json()["id"])["status"] == "succeeded"
    assert fake_client.get(f"/api/v1/threads/{thread['id']}").json()["head_version"] == 4


def test_a_turn_run_again_after_a_crash_says_so(tmp_path, sqlite_url, fake_backend):
    """A turn a crash interrupted once (left ``running`` after its first
    attempt) succeeds on its second attempt, and its message says it ran
    again (the first run may have been billed)."""
    from sqlalchemy import select

    from app.db import make_engine, make_sessionmaker
    from app.models import Thread, Turn

    settings = make_settings(tmp_path / "data", sqlite_url)
    with TestClient(create_app(settings)) as c:
        thread = c.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()
        cookies = dict(c.cookies)
    engine = make_engine(settings.sqlalchemy_url)
    with make_sessionmaker(engine)() as s:  # what a SIGKILL during the first attempt leaves behind
        t = s.scalar(select(Thread).where(Thread.id == thread["id"]))
        s.add(Turn(id="crashed-turn", thread=t, kind="edit", instruction="invert it", status="running",
                   backend="fake", attempts=1, base_version=1))
        s.commit()
    engine.dispose()
    with TestClient(create_app(settings), cookies=cookies) as c:
        done = wait_for_turn(c, "crashed-turn")
    assert done["status"] == "succeeded"
    assert done["message"].startswith("inverted ") and "ran again from the start (attempt 2 of 2)" in done["message"]
