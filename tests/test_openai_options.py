"""OpenAI as it is today, through the HTTP API and the real worker: the
model picker, per-model options refused with the rule, edits that keep their
shape, streamed partial images, markup, transparent results, the hashed
safety identifier, usage and prices. The real SDK talks to the validating
fake (tests/fake_openai.py), which refuses what OpenAI refuses."""
from __future__ import annotations

import hashlib
import io
import logging
import re
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from app import cli
from app.backends import register_backend, unregister_backend
from app.backends import openai_models as cat
from app.backends.openai_backend import OpenAIBackend
from app.main import create_app
from tests.conftest import make_settings, open_image, wait_for_turn

BACKEND = "openai-options"


def noisy_png(size=(96, 64)) -> bytes:
    """A photo-like PNG that does not compress (every pixel differs)."""
    import numpy as np

    rng = np.random.default_rng(7)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def markup_png(size=(96, 64)) -> bytes:
    im = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(im).ellipse((20, 10, 60, 50), outline=(255, 45, 85, 255), width=4)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def mask_png(size=(96, 64)) -> bytes:
    im = Image.new("L", size, 0)
    im.paste(255, (10, 10, 40, 40))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def rig(tmp_path, sqlite_url, fake_openai):
    """An app whose turns use an OpenAIBackend (defaults from the settings:
    model, offered models, 2 partial images) against the fake."""
    made: dict = {}

    def build(**options) -> TestClient:
        backend_options = {"api_key": "sk-test-options", "base_url": fake_openai.base_url, "timeout": 10,
                           "max_retries": 0, **options.pop("backend", {})}
        register_backend(BACKEND, lambda: OpenAIBackend(**backend_options))
        settings = make_settings(tmp_path / "data", sqlite_url, backend=BACKEND, **options)
        made["client"] = TestClient(create_app(settings))
        made["client"].__enter__()
        return made["client"]

    yield build
    if "client" in made:
        made["client"].__exit__(None, None, None)
    unregister_backend(BACKEND)


def start_photo_thread(client: TestClient, photo: bytes | None = None) -> dict:
    thread = client.post("/api/v1/threads", files={"image": ("p.png", photo or noisy_png(), "image/png")}).json()
    assert thread["versions"], thread
    return thread


# ------------------------------------------------------------- default settings


def test_a_turn_with_default_settings_succeeds_and_streams(rig, fake_openai):
    client = rig()
    thread = start_photo_thread(client)
    turn = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "add a red hat"}).json()
    done = wait_for_turn(client, turn["id"])
    assert done["status"] == "succeeded", done
    req = fake_openai.requests[-1]
    assert req.param("model") == cat.DEFAULT_MODEL
    assert req.param("stream") == "true" and req.param("partial_images") == "2"
    # An edit asks for the image's own shape (96x64 = 3:2), in multiples of 16.
    w, h = cat.parse_size(req.param("size"))
    assert w % 16 == 0 and h % 16 == 0 and abs(w / h - 1.5) < 0.03
    # The safety identifier is a hash, never the owner cookie.
    sid = req.param("safety_identifier")
    assert re.fullmatch(r"[0-9a-f]{64}", sid)
    assert sid not in client.cookies.get("retouch_owner", "")
    # What the API reported is stored: usage (a stream's completed event has no
    # output_tokens_details in the SDK's ImageEditCompletedEvent) and the effective settings.
    assert done["usage"]["output_tokens"] > 0 and done["usage"]["input_tokens_details"]["image_tokens"] > 0
    assert done["output"]["model"] == cat.DEFAULT_MODEL
    assert done["output"]["size"] == req.param("size") and done["output"]["quality"] and done["output"]["background"]
    assert done["partial_image_url"] is None  # frames are gone once the turn ends
    version = client.get(f"/api/v1/threads/{thread['id']}").json()["versions"][-1]
    assert (version["width"], version["height"]) == (w, h)


def test_a_generation_with_default_settings_succeeds(rig, fake_openai):
    client = rig()
    thread = client.post("/api/v1/threads", json={"prompt": "a lighthouse at dusk"}).json()
    assert wait_for_turn(client, thread["turns"][0]["id"])["status"] == "succeeded"
    req = fake_openai.requests[-1]
    assert req.path == "/v1/images/generations" and req.json["model"] == cat.DEFAULT_MODEL
    assert "size" not in req.json  # auto, for generations


def test_partial_images_are_served_while_the_turn_runs_and_never_become_versions(rig, fake_openai):
    fake_openai.event_delay = 0.6  # paced, so the test can see each frame
    client = rig()
    thread = start_photo_thread(client)
    turn = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "make it dusk"}).json()
    seen: dict[int, bytes] = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = client.get(f"/api/v1/turns/{turn['id']}").json()
        if now["status"] not in ("queued", "running"):
            break
        if now["partial_image_url"]:
            r = client.get(now["partial_image_url"], follow_redirects=False)  # 303 if the turn just ended
            if r.status_code == 200:
                assert r.headers["content-type"] == "image/webp" and r.headers["cache-control"] == "no-store"
                seen[int(r.headers["x-partial-index"])] = r.content  # the newest frame, maybe not the one named
        time.sleep(0.1)
    assert now["status"] == "succeeded"
    assert 0 in seen, "no partial image was seen while the turn ran"
    frame = open_image(seen[0]).convert("RGB")
    assert max(abs(a - b) for a, b in zip(frame.getpixel((5, 5)), fake_openai.partial_colors[0])) < 8
    # Afterwards: no frame, and only the upload and the final result are versions.
    url = f"/api/v1/threads/{thread['id']}/turns/{turn['id']}/partial?i=0"
    after = client.get(url, follow_redirects=False)  # sent on to the final image
    assert after.status_code == 303 and after.headers["location"].endswith(f"/versions/{now['result_version']}/image")
    assert len(client.get(f"/api/v1/threads/{thread['id']}").json()["versions"]) == 2


@pytest.mark.parametrize("behaviour", ["stream_break", "stream_error"])
def test_a_stream_that_breaks_after_a_partial_image_fails_and_is_not_resent(rig, fake_openai, behaviour):
    client = rig(backend={"max_retries": 2})
    thread = start_photo_thread(client)
    before = len(fake_openai.requests)
    fake_openai.fail_next(behaviour)
    turn = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "make it dusk"}).json()
    done = wait_for_turn(client, turn["id"])
    assert done["status"] == "failed"
    assert "after 1 partial image" in done["error"] and "may have billed" in done["error"]
    assert len(fake_openai.requests) == before + 1  # not resent
    assert len(client.get(f"/api/v1/threads/{thread['id']}").json()["versions"]) == 1  # nothing stored


# ------------------------------------------------------------- options and the catalogue


def test_the_models_endpoint_lists_the_offered_models_with_their_options(rig):
    client = rig()
    body = client.get("/api/v1/models").json()
    names = [m["name"] for m in body["models"]]
    assert names == ["gpt-image-2.5-sunburst", "gpt-image-2.5-flare", "gpt-image-2"]
    first = body["models"][0]
    assert "max" in first["qualities"] and first["markup"] and "transparent" in first["backgrounds"]
    assert body["models"][2]["markup"] is False and "xhigh" not in body["models"][2]["qualities"]


@pytest.mark.parametrize("data, files, words", [
    ({"size": "1000x100"}, {}, "1000x100: the ratio must be between 1:3 and 3:1."),
    ({"size": "1000x1000"}, {}, "multiples of 16"),
    ({"size": "8192x8192"}, {}, "at most 3840"),
    ({"quality": "xhigh", "model": "gpt-image-2"}, {}, "gpt-image-2 takes low, medium, high or auto"),
    ({"quality": "ultra"}, {}, "quality must be one of"),
    ({"model": "gpt-image-2.6-flare"}, {}, "not offered here"),
    ({"model": "gpt-image-1"}, {}, "not offered here"),
    ({"model": "gpt-image-2"}, {"markup": ("m.png", markup_png(), "image/png")}, "does not take drawings"),
    ({}, {"markup": ("m.png", markup_png(), "image/png"), "mask": ("k.png", mask_png(), "image/png")}, "not both"),
    ({}, {"markup": ("m.png", markup_png((40, 40)), "image/png")}, "must be the same size"),
])
def test_options_a_model_does_not_take_get_422_with_the_rule(rig, fake_openai, data, files, words):
    client = rig()
    thread = start_photo_thread(client)
    before = len(fake_openai.requests)
    r = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "edit it", **data}, files=files)
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"]
    assert len(fake_openai.requests) == before  # nothing was sent
    assert len(client.get(f"/api/v1/threads/{thread['id']}").json()["turns"]) == 1  # nothing was stored


def test_a_shut_down_default_model_is_named_at_start_up_and_refused_per_turn(rig, fake_openai, caplog):
    with caplog.at_level(logging.ERROR):
        client = rig(backend={"model": "gpt-image-1"})
    assert any("gpt-image-1" in r.getMessage() and "shut down on 2026-10-23" in r.getMessage()
               for r in caplog.records)
    r = client.post("/api/v1/threads", json={"prompt": "a cat"})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "RETOUCH_OPENAI_MODEL" in detail and "gpt-image-2.5-sunburst" in detail and "HTTP 400" not in detail
    assert fake_openai.requests == []


def test_the_thread_remembers_the_last_model_chosen(rig, fake_openai):
    client = rig()
    thread = start_photo_thread(client)
    turn = client.post(f"/api/v1/threads/{thread['id']}/turns",
                       data={"instruction": "sharper", "model": "gpt-image-2.5-flare", "quality": "max"}).json()
    assert wait_for_turn(client, turn["id"])["status"] == "succeeded"
    assert fake_openai.requests[-1].param("model") == "gpt-image-2.5-flare"
    assert fake_openai.requests[-1].param("quality") == "max"
    page = client.get(f"/t/{thread['id']}").text
    assert '<option value="gpt-image-2.5-flare" selected>' in page


def test_markup_is_sent_instead_of_a_mask_and_kept_as_an_attachment(rig, fake_openai):
    client = rig()
    thread = start_photo_thread(client)
    turn = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "put a hat here"},
                       files={"markup": ("m.png", markup_png(), "image/png")}).json()
    assert turn["has_markup"] and not turn["has_mask"]
    assert wait_for_turn(client, turn["id"])["status"] == "succeeded"
    req = fake_openai.requests[-1]
    assert req.markup is not None and req.mask is None
    sent = open_image(req.markup.data)
    assert sent.mode == "RGBA" and sent.size == (96, 64) and sent.getchannel("A").getextrema() == (0, 255)
    r = client.get(f"/api/v1/threads/{thread['id']}/turns/{turn['id']}/attachments/markup")
    assert r.status_code == 200 and open_image(r.content).mode == "RGBA"


def test_a_transparent_result_is_stored_with_its_alpha(rig, fake_openai):
    client = rig()
    thread = client.post("/api/v1/threads", json={"prompt": "a sticker of a cat"}).json()
    turn = client.post(f"/api/v1/threads/{thread['id']}/turns",
                       data={"instruction": "a logo", "background": "transparent", "size": "1024x1024"}).json()
    done = wait_for_turn(client, turn["id"])
    assert done["status"] == "succeeded" and done["output"]["background"] == "transparent"
    image = open_image(client.get(f"/api/v1/threads/{thread['id']}/versions/{done['result_version']}/image").content)
    assert image.mode == "RGBA" and image.getpixel((0, 0))[3] == 0 and image.getpixel((512, 512))[3] == 255


def test_an_input_over_the_api_limit_is_re_encoded_and_the_turn_says_so(rig, fake_openai):
    client = rig(backend={"max_image_bytes": 12_000})  # the real limit is 50 MB
    thread = start_photo_thread(client, noisy_png((96, 64)))  # ~18 KB as PNG
    turn = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "brighter"}).json()
    done = wait_for_turn(client, turn["id"])
    assert done["status"] == "succeeded", done
    sent = fake_openai.requests[-1].images[0]
    assert sent.content_type == "image/jpeg" and len(sent.data) < 12_000
    assert "over OpenAI's" in done["message"] and "JPEG" in done["message"]


def test_moderation_categories_reach_the_person(rig, fake_openai):
    client = rig()
    thread = start_photo_thread(client)
    fake_openai.moderation_categories = ["violence", "self_harm"]
    fake_openai.fail_next("moderation_blocked")
    turn = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "edit it"}).json()
    done = wait_for_turn(client, turn["id"])
    assert done["status"] == "declined"
    assert "violence" in done["message"] and "self harm" in done["message"]


def test_tokens_are_shown_and_a_cost_only_with_configured_prices(rig, fake_openai):
    prices = '{"gpt-image-2.5-sunburst": {"text_input": 5, "image_input": 8, "image_output": 30}}'
    client = rig(openai_prices=prices)
    thread = start_photo_thread(client)
    turn = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "brighter"}).json()
    done = wait_for_turn(client, turn["id"])
    usage = done["usage"]
    expected = (usage["input_tokens_details"]["text_tokens"] * 5 + usage["input_tokens_details"]["image_tokens"] * 8
                + usage["output_tokens"] * 30) / 1e6  # all output is image output without details
    assert done["cost_usd"] == pytest.approx(expected)
    page = client.get(f"/t/{thread['id']}").text
    assert f"{usage['total_tokens']:,} tokens" in page and f"${expected:.3f}" in page


def test_no_cost_without_prices(rig, fake_openai):
    client = rig()
    thread = start_photo_thread(client)
    turn = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "brighter"}).json()
    done = wait_for_turn(client, turn["id"])
    assert done["cost_usd"] is None and done["usage"]["total_tokens"] > 0
    assert "$" not in client.get(f"/t/{thread['id']}").text


def test_safety_identifier_is_the_documented_hash(rig, fake_openai):
    from app.security import safety_identifier

    owner = "0123456789abcdef0123456789abcdef"
    assert safety_identifier(owner) == hashlib.sha256(f"retouch-owner:{owner}".encode()).hexdigest()


# ------------------------------------------------------------- the CLI takes the same checks


def test_cli_checks_size_and_references_like_the_service_layer(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-cli")
    from app.config import get_settings

    get_settings.cache_clear()
    try:
        code = cli.main(["edit", "--backend", "openai", "--instruction", "x", "--size", "1000x100",
                         "--output", str(tmp_path / "o.png")])
        assert code == cli.EXIT_USAGE and "the ratio must be between 1:3 and 3:1" in capsys.readouterr().err
        ref = tmp_path / "r.png"
        ref.write_bytes(noisy_png((16, 16)))
        code = cli.main(["edit", "--backend", "openai", "--instruction", "x", "--output", str(tmp_path / "o.png"),
                         *sum((["--reference", str(ref)] for _ in range(5)), [])])
        assert code == cli.EXIT_USAGE and "at most 4 --reference" in capsys.readouterr().err
        code = cli.main(["edit", "--backend", "openai", "--instruction", "x", "--model", "gpt-image-1",
                         "--output", str(tmp_path / "o.png")])
        assert code == cli.EXIT_USAGE and "shut down on 2026-10-23" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
    assert not (tmp_path / "o.png").exists()
