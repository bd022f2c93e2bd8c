"""Cached thread renderings (``app/render_cache.py``) are always what a
fresh rendering would be.

Every kind of write raises the thread's revision (``app/revisions.py``);
after each, the thread page, its live block, the Thread JSON and the
shared page and JSON are fetched three times: once (which may fill the
cache), again (served from it) and after the cache is cleared (rendered
afresh). All three must be equal, on SQLite and PostgreSQL. A turn that
finishes through the worker's Core updates, one cancelled while queued and
one that fails are among the writes.
"""
from __future__ import annotations

from sqlalchemy import select

from app.models import Thread
from tests.conftest import png_bytes, wait_for_thread, wait_for_turn

LIVE = {"HX-Request": "true", "HX-Target": "live"}


def revision(client, thread_id: str) -> int:
    with client.app.state.ctx.sessions() as session:
        return session.scalar(select(Thread.revision).where(Thread.id == thread_id))


def renderings(client, thread_id: str, token: str | None) -> dict[str, str]:
    got = {"page": client.get(f"/t/{thread_id}").text,
           "live": client.get(f"/t/{thread_id}", headers=LIVE).text,
           "json": client.get(f"/api/v1/threads/{thread_id}").text}
    if token:
        got["shared page"] = client.get(f"/s/{token}").text
        got["shared json"] = client.get(f"/api/v1/shared/{token}").text
    return got


def assert_cache_agrees(client, thread_id: str, token: str | None = None, *, cached: bool = True) -> dict:
    cache = client.app.state.ctx.render_cache
    first = renderings(client, thread_id, token)
    hits = cache.hits
    again = renderings(client, thread_id, token)
    if cached:
        assert cache.hits > hits, "the second reading was not served from the cache"
    else:
        assert cache.hits == hits, "a thread with a pending turn was served from the cache"
    cache.clear()
    fresh = renderings(client, thread_id, token)
    for what in fresh:
        assert first[what] == again[what] == fresh[what], (what, _difference(first[what], again[what], fresh[what]))
    return fresh


def _difference(*texts: str) -> str:
    """The first differing lines of the three readings, for the failure message."""
    import difflib

    a, b, c = (t.splitlines() for t in texts)
    other = b if a != b else c
    return "\n".join(list(difflib.unified_diff(a, other, lineterm="", n=1))[:40])


def test_cached_renderings_follow_every_write(client, fake_backend):
    tid = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()["id"]
    seen = [revision(client, tid)]
    assert_cache_agrees(client, tid)

    def changed(token=None) -> dict:
        now = revision(client, tid)
        assert now > seen[-1], "the write did not raise the revision"
        seen.append(now)
        return assert_cache_agrees(client, tid, token)

    assert client.patch(f"/api/v1/threads/{tid}", json={"title": "Harbour at dusk"}).status_code == 200
    assert "Harbour at dusk" in changed()["page"]

    token = client.post(f"/api/v1/threads/{tid}/share").json()["url"].rstrip("/").rsplit("/", 1)[-1]
    assert token in changed(token)["json"]

    turn = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "invert it"}).json()
    assert wait_for_turn(client, turn["id"])["status"] == "succeeded"  # finished by the worker's Core updates
    got = changed(token)
    assert "invert it" in got["page"] and "invert it" in got["shared page"]
    assert '"head_version":2' in got["json"]

    assert client.post(f"/api/v1/threads/{tid}/revert", json={"version": 1}).status_code == 200
    assert '"head_version":1,' in changed(token)["json"]

    failed = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "crash please"}).json()
    assert wait_for_turn(client, failed["id"])["status"] == "failed"
    assert "failed" in changed(token)["json"]

    fake_backend.gate.clear()  # hold the next "slow" turn in the backend
    try:
        running = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "slow invert"}).json()
        queued = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "and once more"}).json()
        assert_cache_agrees(client, tid, token, cached=False)
        assert client.post(f"/api/v1/threads/{tid}/turns/{queued['id']}/cancel").status_code == 200
    finally:
        fake_backend.gate.set()
    wait_for_thread(client, tid)
    got = changed(token)
    assert '"status":"cancelled"' in got["json"] and "and once more" in got["page"]
    assert wait_for_turn(client, running["id"])["status"] == "succeeded"

    assert client.delete(f"/api/v1/threads/{tid}/share").status_code == 204
    changed()
    assert client.get(f"/s/{token}").status_code == 404  # a revoked link is not served from the cache
    assert client.get(f"/api/v1/shared/{token}").status_code == 404


def test_a_deleted_thread_is_not_served_from_the_cache(client):
    tid = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()["id"]
    assert_cache_agrees(client, tid)
    assert client.delete(f"/api/v1/threads/{tid}").status_code == 204
    assert client.get(f"/t/{tid}").status_code == 404
    assert client.get(f"/api/v1/threads/{tid}").status_code == 404


def test_another_owner_gets_404_not_the_cached_thread(client):
    from tests.conftest import another_owner

    tid = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()["id"]
    assert_cache_agrees(client, tid)
    with another_owner(client) as other:
        assert other.get(f"/t/{tid}").status_code == 404
        assert other.get(f"/api/v1/threads/{tid}").status_code == 404


def test_a_live_refresh_gets_placeholders_for_the_turns_it_shows_unchanged(client, fake_backend):
    import re

    tid = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()["id"]
    turn = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "invert it"}).json()
    assert wait_for_turn(client, turn["id"])["status"] == "succeeded"
    keys = dict(re.findall(r'id="turn-([^"]+)" data-key="([^"]+)"', client.get(f"/t/{tid}").text))
    assert sorted(keys.values()) == ["succeeded.1.0", "succeeded.2.1"]  # the upload, then the edit (the head)
    shown = ",".join(f"{k}:{v}" for k, v in keys.items())

    live = client.get(f"/t/{tid}", params={"turns": shown}, headers=LIVE).text
    conversation = live.split('id="conversation"', 1)[1]
    assert conversation.count('hx-preserve="true"></li>') == 2 and "invert it" not in conversation
    assert client.get(f"/t/{tid}", params={"turns": shown}).text.count('hx-preserve="true"') == 0  # a whole page
    stale = shown.replace("succeeded.2.1", "succeeded.2.0")
    assert client.get(f"/t/{tid}", params={"turns": stale}, headers=LIVE).text.count('hx-preserve="true"></li>') == 1

    # A revert moves the head: both turns show it differently now, so both come whole.
    assert client.post(f"/api/v1/threads/{tid}/revert", json={"version": 1}).status_code == 200
    conversation = client.get(f"/t/{tid}", params={"turns": shown}, headers=LIVE).text.split('id="conversation"', 1)[1]
    assert conversation.count('hx-preserve="true"></li>') == 0 and "invert it" in conversation

    # A pending turn is never a placeholder: it has no key.
    fake_backend.gate.clear()
    try:
        pending = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "slow invert"}).json()
        page = client.get(f"/t/{tid}").text
        assert f'id="turn-{pending["id"]}" data-key' not in page and f'id="turn-{pending["id"]}"' in page
    finally:
        fake_backend.gate.set()
    wait_for_thread(client, tid)
