"""The JSON API contract, end to end through HTTP, on SQLite and PostgreSQL."""
from __future__ import annotations

import hashlib
import io

from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from tests.conftest import another_owner, open_image, png_bytes, wait_for_thread, wait_for_turn


def create_from_photo(client, data=None, prompt=None, **fields):
    files = {"image": ("photo.png", data or png_bytes(), "image/png")}
    form = {k: v for k, v in {"prompt": prompt, **fields}.items() if v is not None}
    r = client.post("/api/v1/threads", files=files, data=form)
    assert r.status_code == 201, r.text
    return r.json()


def send(client, thread_id, instruction, **kwargs):
    r = client.post(f"/api/v1/threads/{thread_id}/turns", data={"instruction": instruction}, **kwargs)
    assert r.status_code == 202, r.text
    return r.json()


def test_create_from_prompt_generates_version_1(client, fake_backend):
    r = client.post("/api/v1/threads", json={"prompt": "a teal rectangle"})
    assert r.status_code == 201
    thread = r.json()
    assert thread["title"] == "a teal rectangle"
    assert [t["kind"] for t in thread["turns"]] == ["generate"]
    thread = wait_for_thread(client, thread["id"])
    assert thread["head_version"] == 1
    v1 = thread["versions"][0]
    assert (v1["number"], v1["parent"], v1["width"], v1["height"]) == (1, None, 64, 48)
    turn = thread["turns"][0]
    assert turn["status"] == "succeeded" and turn["result_version"] == 1 and turn["backend"] == "fake"
    png = client.get(v1["image_url"])
    assert png.headers["content-type"] == "image/png"
    assert hashlib.sha256(png.content).hexdigest() == v1["sha256"]
    assert open_image(png.content).getpixel((0, 0)) == (0, 128, 128)


def test_create_from_photo_then_prompt_is_first_edit(client, fake_backend):
    photo = png_bytes((40, 30), (200, 30, 30))
    thread = create_from_photo(client, photo, prompt="invert it", title="My cat")
    assert thread["title"] == "My cat"
    assert thread["head_version"] == 1
    assert [(t["kind"], t["status"]) for t in thread["turns"]] == [("upload", "succeeded"), ("edit", "queued")]
    thread = wait_for_thread(client, thread["id"])
    assert thread["head_version"] == 2
    assert thread["versions"][1]["parent"] == 1
    # the backend got the uploaded photo's pixels and the instruction
    req = fake_backend.requests[-1]
    assert req.instruction == "invert it" and req.image.getpixel((39, 29)) == (200, 30, 30)
    v2 = open_image(client.get(thread["versions"][1]["image_url"]).content)
    assert v2.getpixel((39, 29)) == (55, 225, 225)


def test_create_needs_prompt_or_image(client):
    assert client.post("/api/v1/threads", json={}).status_code == 422
    assert client.post("/api/v1/threads", data={"title": "x"}).status_code == 422
    assert client.post("/api/v1/threads", json={"prompt": "   "}).status_code == 422
    r = client.post("/api/v1/threads", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert client.get("/api/v1/threads").json()["threads"] == []


def test_turns_chain_with_history_and_ordering(client, fake_backend):
    thread = create_from_photo(client)
    tid = thread["id"]
    turns = [send(client, tid, f"invert step {i}") for i in range(3)]
    assert all(t["status"] in ("queued", "running") for t in turns)
    for t in turns:
        assert wait_for_turn(client, t["id"])["status"] == "succeeded"
    thread = client.get(f"/api/v1/threads/{tid}").json()
    assert [v["number"] for v in thread["versions"]] == [1, 2, 3, 4]
    assert [v["parent"] for v in thread["versions"]] == [None, 1, 2, 3]
    assert thread["head_version"] == 4
    # each turn ran on the previous result, with the earlier instructions as context
    assert [r.instruction for r in fake_backend.requests] == ["invert step 0", "invert step 1", "invert step 2"]
    assert fake_backend.requests[2].history == ("invert step 0", "invert step 1")
    t = client.get(f"/api/v1/turns/{turns[2]['id']}").json()
    assert (t["base_version"], t["result_version"], t["usage"]) == (3, 4, {"total_tokens": 7})


def test_history_follows_parents_and_keeps_the_newest_instructions(client, fake_backend):
    """The context a turn gets is the chain of instructions behind its base
    version: siblings on other branches are left out, and past
    HISTORY_LIMIT only the newest are kept, oldest first."""
    from app.worker import HISTORY_LIMIT

    tid = create_from_photo(client)["id"]
    for i in range(HISTORY_LIMIT + 3):
        wait_for_turn(client, send(client, tid, f"invert step {i}")["id"])
    # a branch from version 3 (made by step 1), then a turn on that branch
    assert client.post(f"/api/v1/threads/{tid}/revert", json={"version": 3}).status_code == 200
    wait_for_turn(client, send(client, tid, "invert on the branch")["id"])
    wait_for_turn(client, send(client, tid, "invert once more")["id"])
    assert fake_backend.requests[-1].history == ("invert step 0", "invert step 1", "invert on the branch")
    # back to the long line's head: the newest HISTORY_LIMIT of its instructions
    head = HISTORY_LIMIT + 3 + 1
    assert client.post(f"/api/v1/threads/{tid}/revert", json={"version": head}).status_code == 200
    wait_for_turn(client, send(client, tid, "invert at the end")["id"])
    assert fake_backend.requests[-1].history == tuple(f"invert step {i}" for i in range(3, HISTORY_LIMIT + 3))


def test_revert_branches_and_keeps_everything(client, fake_backend):
    tid = create_from_photo(client)["id"]
    for i in range(2):
        wait_for_turn(client, send(client, tid, f"invert {i}")["id"])
    r = client.post(f"/api/v1/threads/{tid}/revert", json={"version": 1})
    assert r.status_code == 200
    thread = r.json()
    assert thread["head_version"] == 1
    assert thread["turns"][-1]["kind"] == "revert"
    assert (thread["turns"][-1]["base_version"], thread["turns"][-1]["result_version"]) == (3, 1)
    wait_for_turn(client, send(client, tid, "invert again")["id"])
    thread = client.get(f"/api/v1/threads/{tid}").json()
    assert [v["number"] for v in thread["versions"]] == [1, 2, 3, 4]
    assert thread["versions"][3]["parent"] == 1  # a branch from version 1
    assert fake_backend.requests[-1].history == ()  # version 1's history, not version 3's
    assert client.post(f"/api/v1/threads/{tid}/revert", json={"version": 9}).status_code == 422
    assert client.post(f"/api/v1/threads/{tid}/revert", json={"version": 0}).status_code == 422


def test_declined_and_failed_turns_leave_thread_usable(client, fake_backend):
    tid = create_from_photo(client)["id"]
    declined = wait_for_turn(client, send(client, tid, "please decline this")["id"])
    assert declined["status"] == "declined" and "dragons" in declined["message"]
    assert declined["result_version"] is None
    fake_backend.fail_times = 1
    failed = wait_for_turn(client, send(client, tid, "fail once")["id"])
    assert failed["status"] == "failed" and "overloaded" in failed["error"] and "try again" in failed["error"]
    crashed = wait_for_turn(client, send(client, tid, "crash")["id"])
    assert crashed["status"] == "failed" and "secret internal detail" not in crashed["error"]
    assert client.get(f"/api/v1/threads/{tid}").json()["head_version"] == 1
    retried = client.post(f"/api/v1/turns/{failed['id']}/retry")
    assert retried.status_code == 202
    assert wait_for_turn(client, retried.json()["id"])["status"] == "succeeded"
    assert client.get(f"/api/v1/threads/{tid}").json()["head_version"] == 2
    ok_turn = client.get(f"/api/v1/threads/{tid}").json()["turns"][-1]["id"]
    assert client.post(f"/api/v1/turns/{ok_turn}/retry").status_code == 409


def test_mask_and_references_reach_the_backend(client, fake_backend):
    tid = create_from_photo(client, png_bytes((40, 30)))["id"]
    mask = Image.new("L", (40, 30), 0)
    mask.paste(255, (0, 0, 20, 30))
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    files = [("mask", ("mask.png", buf.getvalue(), "image/png")),
             ("image", ("ref1.png", png_bytes((8, 8), (1, 2, 3)), "image/png")),
             ("image", ("ref2.jpg", png_bytes((9, 9), (250, 250, 250), fmt="JPEG"), "image/jpeg"))]
    turn = send(client, tid, "invert the left half", files=files)
    assert turn["has_mask"] and turn["reference_count"] == 2
    assert wait_for_turn(client, turn["id"])["status"] == "succeeded"
    req = fake_backend.requests[-1]
    assert [r.size for r in req.references] == [(8, 8), (9, 9)]
    result = open_image(client.get(f"/api/v1/threads/{tid}/versions/2/image").content)
    original = open_image(client.get(f"/api/v1/threads/{tid}/versions/1/image").content)
    # inside the mask: inverted; outside: bit-identical
    assert result.getpixel((5, 20)) != original.getpixel((5, 20))
    assert all(result.getpixel((x, y)) == original.getpixel((x, y)) for x in range(20, 40) for y in range(30))


def test_alpha_convention_mask_is_accepted(client, fake_backend):
    tid = create_from_photo(client, png_bytes((20, 20)))["id"]
    mask = Image.new("RGBA", (20, 20), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 10, 20))  # transparent = edit here (OpenAI's convention)
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    turn = send(client, tid, "invert", files={"mask": ("m.png", buf.getvalue(), "image/png")})
    wait_for_turn(client, turn["id"])
    req = fake_backend.requests[-1]
    assert req.mask.getpixel((2, 2)) == 255 and req.mask.getpixel((15, 2)) == 0


def test_share_revoke_and_fork(client, fake_backend, settings):
    tid = create_from_photo(client)["id"]
    wait_for_turn(client, send(client, tid, "invert")["id"])
    r = client.post(f"/api/v1/threads/{tid}/share")
    assert r.status_code == 201
    token, url = r.json()["token"], r.json()["url"]
    assert len(token) >= 22 and url.endswith(f"/s/{token}")
    assert client.post(f"/api/v1/threads/{tid}/share").json()["token"] == token  # the live link is reused
    assert client.get(f"/api/v1/threads/{tid}").json()["share_url"] == url

    with another_owner(client) as stranger:
        assert stranger.get(f"/api/v1/threads/{tid}").status_code == 404
        shared = stranger.get(f"/api/v1/shared/{token}")
        assert shared.status_code == 200
        body = shared.json()
        assert body["share_url"] is None and body["head_version"] == 2
        assert all(t["usage"] is None for t in body["turns"])
        img = stranger.get(body["versions"][1]["image_url"])
        # a shared image carries its C2PA Content Credentials (app/provenance.py): the stored
        # version's pixels, in a signed file whose bytes differ from the stored blob's
        assert img.status_code == 200 and b"caBX" in img.content
        owners = client.get(f"/api/v1/threads/{tid}/versions/2/image").content
        assert hashlib.sha256(owners).hexdigest() == body["versions"][1]["sha256"]
        assert open_image(img.content).tobytes() == open_image(owners).tobytes()
        fork = stranger.post(f"/api/v1/shared/{token}/fork")
        assert fork.status_code == 201
        forked = fork.json()
        assert forked["id"] != tid and forked["head_version"] == 2
        assert [v["sha256"] for v in forked["versions"]] == [v["sha256"] for v in body["versions"]]
        # the fork is independent: editing it changes neither thread's other copy
        wait_for_turn(stranger, send(stranger, forked["id"], "invert the fork")["id"])
        assert stranger.get(f"/api/v1/threads/{forked['id']}").json()["head_version"] == 3
        assert client.get(f"/api/v1/threads/{tid}").json()["head_version"] == 2
        assert client.get(f"/api/v1/threads/{forked['id']}").status_code == 404
        # image bytes are shared, not copied: one blob per distinct image. Inverting twice
        # gives version 1's bytes back, so the fork's version 3 reuses version 1's blob.
        fork_versions = stranger.get(f"/api/v1/threads/{forked['id']}").json()["versions"]
        assert fork_versions[2]["sha256"] == fork_versions[0]["sha256"]
        blobs = list((settings.blob_dir).rglob("*.png"))
        assert len(blobs) == len({v["sha256"] for v in fork_versions}) == 2

        assert client.delete(f"/api/v1/threads/{tid}/share").status_code == 204
        assert stranger.get(f"/api/v1/shared/{token}").status_code == 404
        assert stranger.get(body["versions"][1]["image_url"]).status_code == 404
        assert stranger.post(f"/api/v1/shared/{token}/fork").status_code == 404
        assert stranger.delete(f"/api/v1/threads/{tid}/share").status_code == 404
    assert client.get(f"/api/v1/threads/{tid}").json()["share_url"] is None
    assert client.post(f"/api/v1/threads/{tid}/share").json()["token"] != token


def test_owner_isolation(client, fake_backend):
    tid = create_from_photo(client)["id"]
    turn = send(client, tid, "invert")
    with another_owner(client) as other:
        assert other.get("/api/v1/threads").json()["threads"] == []
        assert other.get(f"/api/v1/threads/{tid}").status_code == 404
        assert other.get(f"/api/v1/turns/{turn['id']}").status_code == 404
        assert other.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "x"}).status_code == 404
        assert other.post(f"/api/v1/threads/{tid}/revert", json={"version": 1}).status_code == 404
        assert other.post(f"/api/v1/threads/{tid}/share").status_code == 404
        assert other.get(f"/api/v1/threads/{tid}/versions/1/image").status_code == 404
        assert other.get(f"/t/{tid}").status_code == 404


def test_thread_list_newest_first_and_rename(client, fake_backend):
    a = create_from_photo(client, title="first")["id"]
    b = create_from_photo(client, title="second")["id"]
    listed = client.get("/api/v1/threads").json()["threads"]
    assert [t["id"] for t in listed] == [b, a]
    assert listed[0]["thumbnail_url"].endswith("?size=thumb")
    r = client.patch(f"/api/v1/threads/{a}", json={"title": "renamed"})
    assert r.status_code == 200 and r.json()["title"] == "renamed"
    assert [t["id"] for t in client.get("/api/v1/threads").json()["threads"]] == [a, b]


def test_image_caching_and_thumbnails(client):
    thread = create_from_photo(client, png_bytes((600, 400)))
    url = thread["versions"][0]["image_url"]
    r = client.get(url)
    assert r.headers["etag"] == f'"{thread["versions"][0]["sha256"]}"'
    assert "immutable" in r.headers["cache-control"] and "max-age=31536000" in r.headers["cache-control"]
    assert client.get(url, headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    thumb = client.get(thread["versions"][0]["thumbnail_url"])
    assert thumb.headers["content-type"] == "image/webp"
    assert open_image(thumb.content).size == (256, 171)
    dl = client.get(url + "?download=1")
    assert dl.headers["content-disposition"] == 'attachment; filename="photo-v1.png"'
    assert client.get(thread["versions"][0]["image_url"].replace("/1/", "/7/")).status_code == 404


def test_everything_survives_a_restart(settings, fake_backend):
    with TestClient(create_app(settings)) as c:
        tid = create_from_photo(c)["id"]
        wait_for_turn(c, send(c, tid, "invert")["id"])
        c.post(f"/api/v1/threads/{tid}/share")
        cookies = dict(c.cookies)
        before = c.get(f"/api/v1/threads/{tid}").json()
    with TestClient(create_app(settings), cookies=cookies) as c:
        after = c.get(f"/api/v1/threads/{tid}").json()
        assert after == before
        assert c.get(after["versions"][1]["image_url"]).status_code == 200
        wait_for_turn(c, send(c, tid, "invert after restart")["id"])
        assert c.get(f"/api/v1/threads/{tid}").json()["head_version"] == 3


def test_interrupted_turns_are_requeued_then_failed(settings, fake_backend):
    """What a SIGKILL mid-turn leaves behind (a turn ``running``) is queued
    again at start-up; a turn interrupted for the second time fails."""
    from sqlalchemy import select

    from app.db import make_engine, make_sessionmaker, migrate
    from app.models import Thread, Turn

    with TestClient(create_app(settings)) as c:
        tid = create_from_photo(c)["id"]
        cookies = dict(c.cookies)
    migrate(settings.sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    sessions = make_sessionmaker(engine)

    def crashed_turn(attempts: int) -> str:
        with sessions() as s:
            thread = s.scalar(select(Thread).where(Thread.id == tid))
            turn = Turn(thread=thread, kind="edit", instruction=f"invert {attempts}", status="running",
                        attempts=attempts, backend="fake")
            s.add(turn)
            s.commit()
            return turn.id

    once = crashed_turn(1)
    with TestClient(create_app(settings), cookies=cookies) as c:
        assert wait_for_turn(c, once)["status"] == "succeeded"
    twice = crashed_turn(2)
    with TestClient(create_app(settings), cookies=cookies) as c:
        t = c.get(f"/api/v1/turns/{twice}").json()
        assert t["status"] == "failed" and t["error"] == "interrupted"
        assert c.get(f"/api/v1/threads/{tid}").json()["head_version"] == 2
    engine.dispose()


def test_turn_validation(client):
    tid = create_from_photo(client, png_bytes((20, 20)))["id"]
    post = lambda **kw: client.post(f"/api/v1/threads/{tid}/turns", **kw)  # noqa: E731
    assert post(data={"instruction": ""}).status_code == 422
    assert post(data={"instruction": "x" * 4001}).status_code == 422
    assert post(data={"instruction": "ok", "size": "big"}).status_code == 422
    assert post(data={"instruction": "ok", "quality": "ultra"}).status_code == 422
    wrong = post(data={"instruction": "ok"}, files={"mask": ("m.png", png_bytes((21, 20)), "image/png")})
    assert wrong.status_code == 422 and "same size" in wrong.json()["detail"]
    jpeg = post(data={"instruction": "ok"}, files={"mask": ("m.jpg", png_bytes((20, 20), fmt="JPEG"), "image/jpeg")})
    assert jpeg.status_code == 415 and "PNG" in jpeg.json()["detail"]
    empty = post(data={"instruction": "ok"}, files={"mask": ("m.png", png_bytes((20, 20), (0, 0, 0)), "image/png")})
    assert empty.status_code == 422
    thread = client.get(f"/api/v1/threads/{tid}").json()
    assert len(thread["turns"]) == 1  # nothing was queued


def test_cross_site_posts_are_refused(client):
    assert client.post("/api/v1/threads", json={"prompt": "x"}, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.post("/api/v1/threads", json={"prompt": "x"}, headers={"Sec-Fetch-Site": "same-site"}).status_code == 403
    assert client.post("/api/v1/threads", json={"prompt": "x"}, headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.post("/api/v1/threads", json={"prompt": "x"}, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 201
    assert client.post("/api/v1/threads", json={"prompt": "x"}, headers={"Origin": "http://testserver"}).status_code == 201
    assert client.post("/api/v1/threads", json={"prompt": "x"}).status_code == 201  # a script: no browser headers
    assert client.get("/api/v1/threads", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200


def test_owner_cookie_is_signed_httponly_lax(client):
    r = client.get("/")
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    tid = create_from_photo(client)["id"]
    forged = TestClient(client.app, cookies={"retouch_owner": "forged.value"})
    assert forged.get(f"/api/v1/threads/{tid}").status_code == 404


def test_revert_while_a_turn_runs_is_well_defined(client, fake_backend):
    """The running turn keeps its base and its result becomes the head;
    a turn queued behind it starts from whatever the head is then."""
    tid = create_from_photo(client)["id"]
    wait_for_turn(client, send(client, tid, "invert")["id"])  # v2
    fake_backend.gate.clear()
    running = send(client, tid, "slow invert")
    while client.get(f"/api/v1/turns/{running['id']}").json()["status"] != "running":
        pass
    assert client.post(f"/api/v1/threads/{tid}/revert", json={"version": 1}).json()["head_version"] == 1
    queued = send(client, tid, "invert after revert")
    fake_backend.gate.set()
    done = wait_for_turn(client, running["id"])
    assert (done["base_version"], done["result_version"]) == (2, 3)
    after = wait_for_turn(client, queued["id"])
    assert (after["base_version"], after["result_version"]) == (3, 4)
    thread = client.get(f"/api/v1/threads/{tid}").json()
    assert [v["parent"] for v in thread["versions"]] == [None, 1, 2, 3]
    assert thread["head_version"] == 4


def test_default_backend_follows_the_settings(tmp_path):
    from app.backends import default_backend_name
    from app.config import Settings

    assert default_backend_name(Settings(data_dir=tmp_path, OPENAI_API_KEY=None, backend=None)) == "local"
    assert default_backend_name(Settings(data_dir=tmp_path, OPENAI_API_KEY="sk-x", backend=None)) == "openai"
    assert default_backend_name(Settings(data_dir=tmp_path, OPENAI_API_KEY="sk-x", backend="local")) == "local"
