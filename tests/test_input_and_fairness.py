"""Text input that a database cannot store, and fairness between owners:
control characters and odd sizes get 422 (on SQLite and PostgreSQL alike),
a client without a cookie is rate limited by address, forks are rate
limited, an owner's waiting turns are capped (429) and their stored images
can be given a quota (507), and the worker takes owners in turn."""
from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.conftest import another_owner, make_settings, png_bytes, wait_for_thread

BAD_TEXT = ["a\x00b", "tab\x01", "esc\x1b[31m", "del\x7f"]


def counts(client: TestClient) -> tuple[int, int]:
    threads = client.get("/api/v1/threads").json()["threads"]
    turns = sum(len(client.get(f"/api/v1/threads/{t['id']}").json()["turns"]) for t in threads)
    return len(threads), turns


@pytest.mark.parametrize("text", BAD_TEXT)
def test_control_characters_in_text_fields_get_422(client, text):
    thread = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()
    before = counts(client)
    r = client.post("/api/v1/threads", json={"prompt": f"make it {text}"})
    assert r.status_code == 422 and "control character" in r.json()["detail"]
    r = client.post("/api/v1/threads", json={"prompt": "a cat", "title": text})
    assert r.status_code == 422
    r = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": text})
    assert r.status_code == 422
    r = client.patch(f"/api/v1/threads/{thread['id']}", json={"title": text})
    assert r.status_code == 422
    r = client.post(f"/t/{thread['id']}/turns", data={"instruction": text})
    assert r.status_code == 422
    assert counts(client) == before
    assert client.get("/healthz").status_code == 200


def test_newlines_and_tabs_stay_in_instructions(client):
    thread = client.post("/api/v1/threads", json={"prompt": "line one\n\tline two"}).json()
    assert thread["turns"][0]["instruction"] == "line one\n\tline two"


def test_a_lone_surrogate_gets_422(client):
    body = '{"prompt": "a cat \\ud800"}'
    r = client.post("/api/v1/threads", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_a_filename_with_control_characters_is_cleaned(client):
    # Raw bytes in the part header, as an attacker sends them (clients percent-encode them).
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"bad\x00na\x1fme.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + png_bytes() + b"\r\n--XyZ--\r\n")
    r = client.post("/api/v1/threads", content=body, headers={"content-type": "multipart/form-data; boundary=XyZ"})
    assert r.status_code == 201, r.text
    thread = r.json()
    assert thread["title"] == "badname" and thread["turns"][0]["instruction"] == "badname.png"


@pytest.mark.parametrize("size", ["²x²", "0000000000000000000016x16", "١٠٢٤x١٠٢٤", "16x16x16", "-16x16"])
def test_sizes_take_ascii_digits_only(client, size):
    thread = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()
    r = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "invert", "size": size})
    assert r.status_code == 422, r.text
    assert len(client.get(f"/api/v1/threads/{thread['id']}").json()["turns"]) == 1


# ------------------------------------------------------------------ limits


@pytest.fixture
def limited(tmp_path, database_url, fake_backend):
    def build(**options) -> TestClient:
        settings = make_settings(tmp_path / "data", database_url, **options)
        c = TestClient(create_app(settings))
        c.__enter__()
        made.append(c)
        return c

    made: list[TestClient] = []
    yield build
    for c in made:
        c.__exit__(None, None, None)


def test_a_client_without_a_cookie_is_limited_by_address(limited):
    client = limited(turn_rate_limit="1000/minute", anonymous_rate_limit="3/minute")
    statuses = []
    for _ in range(4):
        client.cookies.clear()  # a client that drops its cookie
        statuses.append(client.post("/api/v1/threads", json={"prompt": "a cat"}).status_code)
    assert statuses == [201, 201, 201, 429]
    # A person with their cookie is not affected by the address limit.
    with another_owner(client) as person:
        assert person.get("/api/v1/threads").status_code == 200  # gets a cookie
        assert person.post("/api/v1/threads", json={"prompt": "a dog"}).status_code == 201


def test_forks_are_rate_limited_like_turns(limited):
    client = limited(turn_rate_limit="2/minute", anonymous_rate_limit="0")
    thread = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()
    token = client.post(f"/api/v1/threads/{thread['id']}/share").json()["token"]
    with another_owner(client) as other:
        statuses = [other.post(f"/api/v1/shared/{token}/fork").status_code for _ in range(3)]
        assert statuses == [201, 201, 429]
        assert len(other.get("/api/v1/threads").json()["threads"]) == 2


def test_waiting_turns_per_owner_are_capped(limited, fake_backend):
    fake_backend.gate.clear()  # "slow" turns wait here
    client = limited(max_queued_turns=2, turn_rate_limit="0")
    thread = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()
    for _ in range(2):
        assert client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "slow"}).status_code == 202
    r = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "slow"})
    assert r.status_code == 429 and "2 turns waiting or running" in r.json()["detail"]
    assert client.post("/api/v1/threads", json={"prompt": "slow"}).status_code == 429
    with another_owner(client) as other:  # another person is not affected
        assert other.post("/api/v1/threads", json={"prompt": "a cat"}).status_code == 201
    fake_backend.gate.set()
    wait_for_thread(client, thread["id"])
    assert client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "invert"}).status_code == 202


def noisy_png(size=(100, 100)) -> bytes:
    """A PNG that does not compress: about 3 bytes a pixel."""
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_a_disk_quota_per_owner_answers_507_and_stores_nothing(limited, tmp_path):
    client = limited(owner_quota_bytes=20_000, turn_rate_limit="0")
    first = client.post("/api/v1/threads", files={"image": ("p.png", noisy_png(), "image/png")})
    assert first.status_code == 201  # 0 bytes used before it; ~30 KB after
    blobs = sorted(p for p in (tmp_path / "data" / "blobs").rglob("*") if p.is_file())
    r = client.post("/api/v1/threads", files={"image": ("q.png", png_bytes(), "image/png")})
    assert r.status_code == 507, r.text
    assert "MB" in r.json()["detail"]
    r = client.post(f"/api/v1/threads/{first.json()['id']}/turns", data={"instruction": "invert"})
    assert r.status_code == 507
    assert sorted(p for p in (tmp_path / "data" / "blobs").rglob("*") if p.is_file()) == blobs
    assert len(client.get("/api/v1/threads").json()["threads"]) == 1
    with another_owner(client) as other:  # the quota is per owner
        assert other.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).status_code == 201


def test_owners_take_turns(tmp_path, database_url, fake_backend):
    """One owner queues five turns, another one turn later: with one worker,
    the second owner's turn starts second, not sixth."""
    fake_backend.gate.clear()
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, backend="fake",
                        secret_key="test-secret", workers=1, turn_rate_limit="0")
    with TestClient(create_app(settings)) as a:
        a_threads = [a.post("/api/v1/threads", json={"prompt": f"slow {i}"}).json()["id"] for i in range(5)]
        with another_owner(a) as b:
            b_thread = b.post("/api/v1/threads", json={"prompt": "slow b"}).json()["id"]
            fake_backend.gate.set()
            for tid in a_threads:
                wait_for_thread(a, tid)
            wait_for_thread(b, b_thread)
    started = [r.instruction for r in fake_backend.requests]
    assert started[0] == "slow 0" and started[1] == "slow b", started
    assert started[2:] == ["slow 1", "slow 2", "slow 3", "slow 4"]


def test_the_settings_are_documented():
    readme = open("README.md").read()
    for name in ("RETOUCH_ANONYMOUS_RATE_LIMIT", "RETOUCH_MAX_QUEUED_TURNS", "RETOUCH_OWNER_QUOTA_BYTES"):
        assert name in readme
    assert json is not None
