"""Turns through the HTTP API with the ``openai`` backend: the real SDK talks
to the fake OpenAI server, and what arrives there is checked."""
from __future__ import annotations

import hashlib
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.backends import register_backend, unregister_backend
from app.backends.openai_backend import OpenAIBackend
from app.main import create_app
from tests.conftest import make_settings, open_image, png_bytes, wait_for_turn


@pytest.fixture
def client(tmp_path, sqlite_url, fake_openai):
    register_backend("openai-test", lambda: OpenAIBackend(
        api_key="sk-test-secret-key", base_url=fake_openai.base_url, timeout=5, max_retries=0))
    settings = make_settings(tmp_path / "data", sqlite_url, backend="openai-test")
    with TestClient(create_app(settings)) as c:
        yield c
    unregister_backend("openai-test")


def test_edit_sends_the_current_image_and_history(client, fake_openai):
    photo = png_bytes((64, 64), (10, 20, 30))
    r = client.post("/api/v1/threads", files={"image": ("p.png", photo, "image/png")},
                    data={"prompt": "make the background black"})
    thread = r.json()
    first = wait_for_turn(client, thread["turns"][1]["id"])
    assert first["status"] == "succeeded" and first["usage"]["total_tokens"] > 0
    stored_v1 = client.get(thread["versions"][0]["image_url"]).content
    edit = fake_openai.requests[-1]
    assert edit.path == "/v1/images/edits"
    assert edit.images[0].data == stored_v1  # the prior image's exact bytes
    assert "make the background black" in edit.param("prompt")
    assert edit.param("model") == "gpt-image-2.5-sunburst"  # the default: a live model

    second = client.post(f"/api/v1/threads/{thread['id']}/turns",
                         data={"instruction": "add 'SALE' at the top", "quality": "low"}).json()
    assert wait_for_turn(client, second["id"])["status"] == "succeeded"
    edit = fake_openai.requests[-1]
    stored_v2 = client.get(f"/api/v1/threads/{thread['id']}/versions/2/image").content
    assert hashlib.sha256(edit.images[0].data).hexdigest() == hashlib.sha256(stored_v2).hexdigest()
    prompt = edit.param("prompt")
    assert prompt.index("make the background black") < prompt.index("add 'SALE' at the top")
    assert edit.param("quality") == "low"


def test_generate_from_prompt(client, fake_openai):
    thread = client.post("/api/v1/threads", json={"prompt": "a lighthouse at dusk"}).json()
    assert wait_for_turn(client, thread["turns"][0]["id"])["status"] == "succeeded"
    gen = fake_openai.requests[-1]
    assert gen.path == "/v1/images/generations" and gen.json["prompt"].endswith("a lighthouse at dusk")
    v1 = client.get(f"/api/v1/threads/{thread['id']}").json()["versions"][0]
    assert (v1["width"], v1["height"]) == (1024, 1024)


def test_masked_edit_keeps_outside_pixels(client, fake_openai):
    thread = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes((32, 32), (200, 100, 50)), "image/png")}).json()
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    turn = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "put a hat here"},
                       files={"mask": ("m.png", buf.getvalue(), "image/png")}).json()
    assert wait_for_turn(client, turn["id"])["status"] == "succeeded"
    sent_mask = Image.open(io.BytesIO(fake_openai.requests[-1].mask.data))
    assert sent_mask.mode == "RGBA" and sent_mask.getpixel((10, 10))[3] == 0 and sent_mask.getpixel((0, 0))[3] == 255
    before = open_image(client.get(f"/api/v1/threads/{thread['id']}/versions/1/image").content)
    after = open_image(client.get(f"/api/v1/threads/{thread['id']}/versions/2/image").content)
    assert after.size == before.size
    outside = [(x, y) for x in range(32) for y in range(32) if not (8 <= x < 24 and 8 <= y < 24)]
    assert all(after.getpixel(p) == before.getpixel(p) for p in outside)
    assert after.getpixel((16, 16)) != before.getpixel((16, 16))


def test_faults_become_declined_or_failed_turns(client, fake_openai):
    thread = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()
    tid = thread["id"]

    def turn(text):
        t = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": text}).json()
        return wait_for_turn(client, t["id"])

    fake_openai.fail_next("moderation_blocked")
    declined = turn("something the moderation refuses")
    assert declined["status"] == "declined" and declined["message"]
    fake_openai.fail_next("429")
    limited = turn("try while rate limited")
    assert limited["status"] == "failed" and "try again" in limited["error"].lower()
    fake_openai.fail_next("401")
    bad_key = turn("with a bad key")
    assert bad_key["status"] == "failed" and "sk-test-secret-key" not in bad_key["error"]
    assert client.get(f"/api/v1/threads/{tid}").json()["head_version"] == 1
    retried = client.post(f"/api/v1/turns/{limited['id']}/retry").json()
    assert wait_for_turn(client, retried["id"])["status"] == "succeeded"
    page = client.get(f"/t/{tid}").text
    assert "Traceback" not in page and "sk-test-secret-key" not in page
