"""Deleting threads (issue 14), through HTTP on SQLite and PostgreSQL: a
soft delete that hides the thread everywhere at once, an undo window
(``RETOUCH_DELETE_UNDO_SECONDS``), pending turns stopped without a
version, and a purge (``app.services.purge_deleted_threads``, run by
``retouch gc`` and after deletes) that removes the rows, lets gc remove the
images nothing else uses, and deletes stored OpenAI responses."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app import services
from app.db import make_engine, make_sessionmaker
from app.gc import collect_garbage
from app.main import create_app
from app.models import ShareLink, Thread, Turn, Version, utcnow
from app.storage import BlobStore
from tests.conftest import another_owner, make_settings, png_bytes, wait_for_thread


def photo_thread(client, title="Beach", prompt="invert it", color=(200, 30, 30)) -> dict:
    r = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(color=color), "image/png")},
                    data={"prompt": prompt, "title": title})
    assert r.status_code == 201, r.text
    return wait_for_thread(client, r.json()["id"])


@pytest.fixture
def short_window(tmp_path, database_url, fake_backend):
    """An app whose undo window is 1 s."""
    settings = make_settings(tmp_path / "data", database_url, delete_undo_seconds=1)
    with TestClient(create_app(settings)) as c:
        yield c, settings


def test_delete_hides_the_thread_everywhere_and_restore_brings_it_back(client, fake_backend):
    thread = photo_thread(client)
    tid = thread["id"]
    token = client.post(f"/api/v1/threads/{tid}/share").json()["token"]
    turn_id = thread["turns"][-1]["id"]
    urls = [f"/api/v1/threads/{tid}", f"/t/{tid}", f"/api/v1/threads/{tid}/versions/1/image",
            f"/api/v1/turns/{turn_id}", f"/api/v1/shared/{token}", f"/s/{token}",
            f"/api/v1/shared/{token}/versions/2/image", f"/api/v1/threads/{tid}/export", f"/t/{tid}/events"]
    assert all(client.get(u).status_code == 200 for u in urls[:-1])

    r = client.delete(f"/api/v1/threads/{tid}")
    assert r.status_code == 204 and r.content == b""
    for u in urls:
        assert client.get(u).status_code == 404, u
    assert client.get("/api/v1/threads").json()["threads"] == []
    assert tid not in client.get("/").text
    assert client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "x"}).status_code == 404
    assert client.delete(f"/api/v1/threads/{tid}").status_code == 404  # already gone

    r = client.post(f"/api/v1/threads/{tid}/restore")
    assert r.status_code == 200 and r.json()["id"] == tid and r.json()["head_version"] == 2
    for u in urls[:-1]:
        assert client.get(u).status_code == 200, u
    assert [t["id"] for t in client.get("/api/v1/threads").json()["threads"]] == [tid]
    assert client.post(f"/api/v1/threads/{tid}/restore").status_code == 200  # idempotent


def test_only_the_owner_deletes_or_restores(client, fake_backend):
    tid = photo_thread(client)["id"]
    with another_owner(client) as other:
        assert other.delete(f"/api/v1/threads/{tid}").status_code == 404
        assert client.delete(f"/api/v1/threads/{tid}").status_code == 204
        assert other.post(f"/api/v1/threads/{tid}/restore").status_code == 404
    assert client.post("/api/v1/threads/nope/restore").status_code == 404


def test_pending_turns_of_a_deleted_thread_make_no_version(client, fake_backend):
    tid = photo_thread(client)["id"]
    fake_backend.gate.clear()
    running = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "slow invert"}).json()
    queued = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "invert again"}).json()
    deadline = time.monotonic() + 10
    while client.get(f"/api/v1/turns/{running['id']}").json()["status"] != "running":
        assert time.monotonic() < deadline, "the slow turn never started"
        time.sleep(0.05)
    assert client.delete(f"/api/v1/threads/{tid}").status_code == 204
    fake_backend.gate.set()  # the worker finishes the running turn now
    time.sleep(1.0)
    assert client.post(f"/api/v1/threads/{tid}/restore").status_code == 200
    thread = wait_for_thread(client, tid)
    assert thread["head_version"] == 2 and len(thread["versions"]) == 2
    stopped = {t["id"]: t for t in thread["turns"]}
    for turn in (running, queued):
        assert stopped[turn["id"]]["status"] == "cancelled"
        assert stopped[turn["id"]]["message"] == services.STOPPED_BY_DELETE


def test_html_delete_lands_home_with_undo(client, fake_backend):
    tid = photo_thread(client, title="Lighthouse")["id"]
    page = client.get(f"/t/{tid}").text
    assert 'id="delete-dialog"' in page and f'action="/t/{tid}/delete"' in page
    r = client.post(f"/t/{tid}/delete", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/?deleted={tid}"
    home = client.get(r.headers["location"])
    assert "Thread deleted." in home.text and f'action="/t/{tid}/restore"' in home.text
    assert "Lighthouse" not in home.text
    r = client.post(f"/t/{tid}/restore", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/t/{tid}"
    assert "Lighthouse" in client.get("/").text
    # htmx asks get an HX-Redirect instead of a 303
    r = client.post(f"/t/{tid}/delete", headers={"HX-Request": "true"})
    assert r.status_code == 204 and r.headers["HX-Redirect"] == f"/?deleted={tid}"
    assert "Thread deleted." not in client.get(f"/?deleted={photo_thread(client)['id']}").text  # not deleted


def test_undo_window_then_purge_and_gc(short_window, fake_backend):
    client, settings = short_window
    kept = photo_thread(client, title="Kept", color=(10, 20, 30))
    doomed = photo_thread(client, title="Doomed", color=(90, 80, 70))
    token = client.post(f"/api/v1/threads/{doomed['id']}/share").json()["token"]
    fork = client.post(f"/api/v1/shared/{token}/fork").json()  # shares the doomed thread's images
    assert client.delete(f"/api/v1/threads/{doomed['id']}").status_code == 204
    time.sleep(1.3)
    r = client.post(f"/api/v1/threads/{doomed['id']}/restore")
    assert r.status_code == 404 and "too long ago" in r.json()["detail"]
    assert "Thread deleted." not in client.get(f"/?deleted={doomed['id']}").text

    engine = make_engine(settings.sqlalchemy_url)
    try:
        # The fork keeps the doomed thread's images: delete it too. That delete purges the doomed
        # thread at once (its window has passed: the opportunistic purge after each delete).
        assert client.delete(f"/api/v1/threads/{fork['id']}").status_code == 204
        with make_sessionmaker(engine)() as session:
            assert session.get(Thread, doomed["id"]) is None and session.get(Thread, fork["id"]) is not None
        doomed_shas = {v["sha256"] for v in doomed["versions"]}
        store = BlobStore(settings.data_dir / "blobs")
        assert all(store.exists(s) for s in doomed_shas)
        result = collect_garbage(engine, store, grace_seconds=0, purge_deleted_after=0)
        assert result.threads_purged == 1  # the fork, whose window (1 s) gc does not wait for here
        with make_sessionmaker(engine)() as session:
            assert session.get(Thread, doomed["id"]) is None and session.get(Thread, fork["id"]) is None
            for model in (Turn, Version, ShareLink):
                assert session.scalar(select(func.count()).select_from(model)
                                      .where(model.thread_id.in_([doomed["id"], fork["id"]]))) == 0
        assert not any(store.exists(s) for s in doomed_shas)
        kept_shas = {v["sha256"] for v in kept["versions"]}
        assert all(store.exists(s) for s in kept_shas)
        assert client.get(f"/api/v1/threads/{kept['id']}/versions/2/image").status_code == 200
        # search no longer knows the purged thread
        assert client.get("/api/v1/threads", params={"q": "doomed"}).json()["threads"] == []
    finally:
        engine.dispose()


def test_purge_keeps_threads_inside_the_window_and_deletes_stored_responses(client, fake_backend, settings,
                                                                           monkeypatch):
    recent = photo_thread(client, title="Recent")["id"]
    old = photo_thread(client, title="Old")["id"]
    asked: list[list[str]] = []

    class FakeChat:
        def delete_responses(self, ids):
            asked.append(list(ids))
            return len(ids) - 1  # one was already gone

    monkeypatch.setattr(services, "get_backend", lambda name: FakeChat() if name == "openai-chat" else None)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        with make_sessionmaker(engine)() as session:
            for tid in (recent, old):
                services.delete_thread(session, session.get(Thread, tid).owner_id, tid)
            session.get(Thread, old).deleted_at = utcnow() - timedelta(seconds=60)
            turn = session.scalars(select(Turn).where(Turn.thread_id == old, Turn.kind == "edit")).one()
            turn.backend, turn.response_id = "openai-chat", "resp_123"
            other = session.scalars(select(Turn).where(Turn.thread_id == old, Turn.kind == "upload")).one()
            other.backend, other.response_id = "openai", "not-a-chat-response"
            session.commit()
            result = services.purge_deleted_threads(session, 30)
            assert result.thread_ids == [old]
            assert asked == [["resp_123"]] and (result.responses_asked, result.responses_deleted) == (1, 0)
            assert session.get(Thread, recent) is not None
    finally:
        engine.dispose()
    assert client.post(f"/api/v1/threads/{recent}/restore").status_code == 200


def test_purge_survives_openai_errors(client, fake_backend, settings, monkeypatch):
    tid = photo_thread(client)["id"]

    def broken(name):
        raise RuntimeError("no key")

    monkeypatch.setattr(services, "get_backend", broken)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        with make_sessionmaker(engine)() as session:
            thread = session.get(Thread, tid)
            thread.deleted_at = utcnow() - timedelta(seconds=60)
            turn = session.scalars(select(Turn).where(Turn.thread_id == tid, Turn.kind == "edit")).one()
            turn.backend, turn.response_id = "openai-chat", "resp_9"
            session.commit()
            result = services.purge_deleted_threads(session, 10)
            assert result.thread_ids == [tid] and result.responses_deleted == 0
    finally:
        engine.dispose()
