"""Turn actions through HTTP, on SQLite and PostgreSQL: Stop (cancel a queued
turn, stop a running one), Regenerate, Edit and resend, and a decline's
suggestions (``app/turns.py`` ``cancel``, ``app/services.py``)."""
from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from app import turns as turns_module
from app.backends import BackendFailed, EditResult, ImageBackend, register_backend, unregister_backend
from app.main import create_app
from tests.conftest import another_owner, make_settings, png_bytes, wait_for_thread, wait_for_turn
from tests.test_threads_api import create_from_photo, send


def status_of(client, turn_id: str) -> str:
    return client.get(f"/api/v1/turns/{turn_id}").json()["status"]


def wait_status(client, turn_id: str, status: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while status_of(client, turn_id) != status:
        assert time.monotonic() < deadline, f"turn {turn_id} never became {status}"
        time.sleep(0.02)


def cancel(client, tid: str, turn_id: str):
    return client.post(f"/api/v1/threads/{tid}/turns/{turn_id}/cancel")


def worker_idle(client, timeout: float = 20) -> None:
    """Wait until the app's worker runs nothing (its runs have all returned)."""
    runner = client.app.state.ctx.worker.runner
    deadline = time.monotonic() + timeout
    while True:
        with runner._held_lock:
            if not runner._held:
                return
        assert time.monotonic() < deadline, "the worker still runs a turn"
        time.sleep(0.02)


# ---------------------------------------------------------------- stop


def test_cancel_queued_turn_never_runs(client, fake_backend, database_url):
    tid = create_from_photo(client)["id"]
    fake_backend.gate.clear()
    running = send(client, tid, "slow invert")
    wait_status(client, running["id"], "running")
    queued = send(client, tid, "invert again")
    assert status_of(client, queued["id"]) == "queued"
    r = cancel(client, tid, queued["id"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "cancelled" and body["result_version"] is None
    assert "not started" in body["message"] and "bill" not in body["message"]
    fake_backend.gate.set()
    thread = wait_for_thread(client, tid)
    worker_idle(client)
    time.sleep(0.3)  # the cancelled turn's job (PostgreSQL) has had time to run, and must do nothing
    assert [r.instruction for r in fake_backend.requests] == ["slow invert"]
    assert [v["turn_id"] for v in thread["versions"]] == [thread["turns"][0]["id"], running["id"]]
    after = client.get(f"/api/v1/turns/{queued['id']}").json()
    assert after["status"] == "cancelled" and after["started_at"] is None
    if database_url.startswith("postgresql"):  # its procrastinate job ran, found it ended, and is done
        from app import jobs

        deadline = time.monotonic() + 10
        while True:
            with client.app.state.ctx.sessions() as session:
                if not jobs.has_job(session, queued["id"]):
                    break
            assert time.monotonic() < deadline, "the cancelled turn's job is still waiting or running"
            time.sleep(0.1)
    # the thread goes on: a new turn runs from the head
    nxt = wait_for_turn(client, send(client, tid, "invert")["id"])
    assert (nxt["status"], nxt["base_version"]) == ("succeeded", 2)


def test_stop_running_turn_discards_its_result(client, fake_backend):
    tid = create_from_photo(client)["id"]
    fake_backend.gate.clear()
    running = send(client, tid, "slow invert")
    wait_status(client, running["id"], "running")
    r = cancel(client, tid, running["id"])
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert "discarded" in r.json()["message"]
    fake_backend.gate.set()  # the backend now finishes; its image must not become a version
    worker_idle(client)
    thread = client.get(f"/api/v1/threads/{tid}").json()
    assert len(thread["versions"]) == 1 and thread["head_version"] == 1
    turn = next(t for t in thread["turns"] if t["id"] == running["id"])
    assert turn["status"] == "cancelled" and turn["error"] is None and turn["result_version"] is None
    page = client.get(f"/t/{tid}").text
    assert "Stopped." in page and "Try again" in page
    # a stopped turn can be tried again
    again = client.post(f"/api/v1/turns/{running['id']}/retry")
    assert again.status_code == 202
    assert wait_for_turn(client, again.json()["id"])["status"] == "succeeded"


def test_cancel_an_ended_turn_is_409(client, fake_backend):
    tid = create_from_photo(client)["id"]
    done = wait_for_turn(client, send(client, tid, "invert")["id"])
    r = cancel(client, tid, done["id"])
    assert r.status_code == 409 and "already ended" in r.json()["detail"]
    upload = client.get(f"/api/v1/threads/{tid}").json()["turns"][0]
    assert cancel(client, tid, upload["id"]).status_code == 409
    assert cancel(client, tid, "nope").status_code == 404
    fake_backend.gate.clear()
    t = send(client, tid, "slow invert")
    assert cancel(client, tid, t["id"]).status_code == 200
    assert cancel(client, tid, t["id"]).status_code == 409  # cancelled is ended too
    fake_backend.gate.set()
    # another owner cannot stop it
    with another_owner(client) as other:
        assert other.post(f"/api/v1/threads/{tid}/turns/{t['id']}/cancel").status_code == 404


def test_stop_with_the_slow_test_backend(tmp_path, database_url, monkeypatch):
    """tests/slow_backend.py: the run sleeps; stopped meanwhile, no version, and the page says so."""
    monkeypatch.setenv("RETOUCH_TEST_SLOW_SECONDS", "1.5")
    import tests.slow_backend as slow

    register_backend(slow.NAME, slow.SlowBackend)  # a fresh instance reads the sleep above
    try:
        with TestClient(create_app(make_settings(tmp_path / "data", database_url, backend=slow.NAME))) as client:
            tid = create_from_photo(client)["id"]
            turn = send(client, tid, "invert slowly")
            wait_status(client, turn["id"], "running")
            assert "Stop</button>" in client.get(f"/t/{tid}").text
            assert cancel(client, tid, turn["id"]).status_code == 200
            worker_idle(client)
            thread = client.get(f"/api/v1/threads/{tid}").json()
            assert [v["number"] for v in thread["versions"]] == [1]
            assert thread["turns"][-1]["status"] == "cancelled"
            page = client.get(f"/t/{tid}").text
            assert "Stopped." in page and "no version was made" in page
            assert "bill" not in page  # a free backend: no billing note
    finally:
        unregister_backend(slow.NAME)


class StoppableBackend(ImageBackend):
    """Waits until stopped (``stop(request)``, like the diffusers backend),
    then fails as diffusers does; records what was stopped."""

    name = "stoppable"
    can_generate = True
    paid = True

    def __init__(self) -> None:
        self.started = threading.Event()
        self.stopped: list = []
        self._events: dict[int, threading.Event] = {}

    def stop(self, request=None) -> bool:
        event = self._events.get(id(request))
        if event is None:
            return False
        self.stopped.append(request.instruction)
        event.set()
        return True

    def run(self, request):
        event = self._events.setdefault(id(request), threading.Event())
        self.started.set()
        if event.wait(timeout=20):
            raise BackendFailed("Stopped at step 3 of 20; no version was made.")
        return EditResult(image=None, message="never stopped")


@pytest.fixture
def stoppable():
    backend = StoppableBackend()
    register_backend("stoppable", lambda: backend)
    yield backend
    unregister_backend("stoppable")


@pytest.mark.parametrize("how", ["listener", "heartbeat"])
def test_stop_calls_the_backends_stop(tmp_path, database_url, stoppable, monkeypatch, how):
    """Where the backend can stop (diffusers' ``stop(request)``), the worker
    calls it: at once in this process, or at its next heartbeat (the other
    processes' way), and the turn ends cancelled, not failed."""
    if how == "heartbeat":  # no in-process hint: only the heartbeat's failed renewal can tell
        monkeypatch.setattr(turns_module, "add_cancel_listener", lambda listener: None)
    settings = make_settings(tmp_path / "data", database_url, backend="stoppable", lease_seconds=1.5)
    with TestClient(create_app(settings)) as client:
        tid = create_from_photo(client)["id"]
        turn = send(client, tid, "a long diffusion")
        assert stoppable.started.wait(10)
        r = cancel(client, tid, turn["id"])
        assert r.status_code == 200
        assert "may still bill" in r.json()["message"]  # a paid backend
        worker_idle(client)
        assert stoppable.stopped == ["a long diffusion"]
        after = client.get(f"/api/v1/turns/{turn['id']}").json()
        assert after["status"] == "cancelled" and after["error"] is None


def test_page_stop_button_and_form(client, fake_backend):
    tid = create_from_photo(client)["id"]
    fake_backend.gate.clear()
    t = send(client, tid, "slow invert")
    wait_status(client, t["id"], "running")
    page = client.get(f"/t/{tid}").text
    assert f'action="/t/{tid}/turns/{t["id"]}/cancel"' in page
    r = client.post(f"/t/{tid}/turns/{t['id']}/cancel", headers={"HX-Request": "true", "HX-Target": "live"})
    assert r.status_code == 200 and "Stopped." in r.text and "/cancel" not in r.text
    r = client.post(f"/t/{tid}/turns/{t['id']}/cancel", headers={"HX-Request": "true"})
    assert r.status_code == 409
    fake_backend.gate.set()


# ---------------------------------------------------------------- regenerate, edit and resend


def test_regenerate_and_edit_make_siblings(client, fake_backend):
    tid = create_from_photo(client)["id"]
    r = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "invert", "quality": "low"})
    a = wait_for_turn(client, r.json()["id"])
    b = wait_for_turn(client, send(client, tid, "invert more")["id"])
    assert (a["result_version"], b["result_version"]) == (2, 3)

    r = client.post(f"/api/v1/threads/{tid}/turns/{a['id']}/regenerate")
    assert r.status_code == 202, r.text
    regen = r.json()
    assert regen["pinned_base"] and regen["base_version"] == 1 and regen["instruction"] == "invert"
    regen = wait_for_turn(client, regen["id"])
    assert (regen["status"], regen["base_version"], regen["result_version"], regen["quality"]) == \
        ("succeeded", 1, 4, "low")

    r = client.post(f"/api/v1/threads/{tid}/turns/{b['id']}/edit", json={"instruction": "invert, edited"})
    assert r.status_code == 202, r.text
    edited = wait_for_turn(client, r.json()["id"])
    assert (edited["instruction"], edited["base_version"], edited["result_version"]) == ("invert, edited", 2, 5)

    thread = client.get(f"/api/v1/threads/{tid}").json()
    parents = {v["number"]: v["parent"] for v in thread["versions"]}
    assert parents == {1: None, 2: 1, 3: 2, 4: 1, 5: 2}  # 4 beside 2, 5 beside 3
    assert thread["head_version"] == 5
    # the originals are unchanged
    assert [t["status"] for t in thread["turns"]].count("succeeded") == 5
    assert fake_backend.requests[-1].instruction == "invert, edited"
    assert fake_backend.requests[-2].image.getpixel((0, 0)) == fake_backend.requests[0].image.getpixel((0, 0))


def test_regenerate_a_generation_makes_a_new_root(client, fake_backend):
    r = client.post("/api/v1/threads", json={"prompt": "a teal square"})
    tid = r.json()["id"]
    thread = wait_for_thread(client, tid)
    gen = thread["turns"][0]
    regen = client.post(f"/api/v1/threads/{tid}/turns/{gen['id']}/regenerate").json()
    regen = wait_for_turn(client, regen["id"])
    assert (regen["kind"], regen["base_version"], regen["result_version"]) == ("generate", None, 2)
    thread = client.get(f"/api/v1/threads/{tid}").json()
    assert [v["parent"] for v in thread["versions"]] == [None, None]


def test_regenerate_and_edit_refusals(client, fake_backend):
    tid = create_from_photo(client)["id"]
    upload = client.get(f"/api/v1/threads/{tid}").json()["turns"][0]
    assert client.post(f"/api/v1/threads/{tid}/turns/{upload['id']}/regenerate").status_code == 409
    assert client.post(f"/api/v1/threads/{tid}/turns/{upload['id']}/edit",
                       json={"instruction": "x"}).status_code == 409
    declined = wait_for_turn(client, send(client, tid, "decline this")["id"])
    assert client.post(f"/api/v1/threads/{tid}/turns/{declined['id']}/regenerate").status_code == 409
    done = wait_for_turn(client, send(client, tid, "invert")["id"])
    assert client.post(f"/api/v1/threads/{tid}/turns/{done['id']}/edit", json={"instruction": ""}).status_code == 422
    r = client.post(f"/api/v1/threads/{tid}/turns/{done['id']}/edit", json={"instruction": "a\x00b"})
    assert r.status_code == 422
    assert client.post(f"/api/v1/threads/{tid}/turns/nope/edit", json={"instruction": "x"}).status_code == 404
    # editing a declined instruction is fine: it starts from the declined turn's base
    r = client.post(f"/api/v1/threads/{tid}/turns/{declined['id']}/edit", json={"instruction": "invert instead"})
    fixed = wait_for_turn(client, r.json()["id"])
    assert (fixed["base_version"], fixed["status"]) == (1, "succeeded")
    page = client.get(f"/t/{tid}").text
    assert "Regenerate" in page and "?edit=1" in page  # fake is not deterministic


def test_local_backend_is_deterministic_so_no_regenerate(tmp_path, database_url):
    with TestClient(create_app(make_settings(tmp_path / "data", database_url, backend="local"))) as client:
        tid = create_from_photo(client, png_bytes((64, 48)))["id"]
        done = wait_for_turn(client, send(client, tid, "make it black and white")["id"])
        assert done["status"] == "succeeded"
        r = client.post(f"/api/v1/threads/{tid}/turns/{done['id']}/regenerate")
        assert r.status_code == 409 and "same result" in r.json()["detail"]
        page = client.get(f"/t/{tid}").text
        assert "Regenerate" not in page and "?edit=1" in page
        # the edit form, and sending it through the page
        form = client.get(f"/t/{tid}/turns/{done['id']}?edit=1").text
        assert 'class="bubble user edit-instruction"' in form and "make it black and white</textarea>" in form
        assert "edit-instruction" not in client.get(f"/t/{tid}/turns/{done['id']}").text
        r = client.post(f"/t/{tid}/turns/{done['id']}/edit", data={"instruction": "make it sepia"},
                        headers={"HX-Request": "true", "HX-Target": "live"})
        assert r.status_code == 200
        thread = wait_for_thread(client, tid)
        assert [(v["number"], v["parent"]) for v in thread["versions"]] == [(1, None), (2, 1), (3, 1)]


def test_decline_suggestions_become_buttons(tmp_path, database_url):
    with TestClient(create_app(make_settings(tmp_path / "data", database_url, backend="local"))) as client:
        tid = create_from_photo(client, png_bytes((64, 48)))["id"]
        turn = wait_for_turn(client, send(client, tid, "draw a dragon on the roof")["id"])
        assert turn["status"] == "declined"
        assert turn["suggestions"] == ["make it black and white", 'add the text "Hello" at the top',
                                       "blur the background"]
        assert "backend" not in turn["message"]
        page = client.get(f"/t/{tid}").text
        assert 'data-fill="make it black and white"' in page
        assert 'data-fill="add the text &#34;Hello&#34; at the top"' in page
        assert "Things I can do instead: &#39;" not in page  # the sentence became the buttons
