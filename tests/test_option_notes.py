"""Honest options (app/option_notes.py): a turn says when its backend ignored
or changed a size, quality, background or model it was asked for. Unit
tests for each backend's declared flags, then the whole path through the
local backend, the JSON API (``notes``) and the turn's footer on the page."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from app.backends.diffusers_backend import DiffusersBackend
from app.backends.local import LocalBackend
from app.backends.openai_backend import OpenAIBackend
from app.backends.openai_chat import OpenAIChatBackend
from app.main import create_app
from app.option_notes import option_notes
from tests.conftest import make_settings, png_bytes, wait_for_turn


def turn(**kw):
    base = dict(kind="edit", status="succeeded", size=None, quality=None, background=None, model=None,
                output=None, mask_sha256=None)
    return SimpleNamespace(**{**base, **kw})


def version(w, h):
    return SimpleNamespace(width=w, height=h)


LOCAL = LocalBackend()
OPENAI = OpenAIBackend(api_key="sk-test")
CHAT = OpenAIChatBackend(api_key="sk-test")
DIFFUSERS = DiffusersBackend(model="")


def test_each_backend_declares_which_options_it_takes():
    assert not any((LOCAL.takes_size, LOCAL.takes_quality, LOCAL.takes_background, LOCAL.takes_model))
    for b in (OPENAI, CHAT, DIFFUSERS):
        assert b.takes_size and b.takes_quality and b.takes_background and b.takes_model, b.name


# --------------------------------------------------------------------------- local


def test_local_edit_asked_for_a_size_and_quality_says_both_were_ignored():
    notes = option_notes(turn(size="1536x1024", quality="high"), version(512, 512), LOCAL)
    assert notes == ["Asked for 1536×1024 at high quality; the offline editor ignores the size setting "
                     "(the result is 512×512) and has no quality setting."]


def test_local_quality_alone_is_noted():
    assert option_notes(turn(quality="low"), version(640, 480), LOCAL) == [
        "Asked for low quality; the offline editor has no quality setting."]


def test_local_size_that_happened_to_match_is_not_noted():
    # a canvas made at the size asked for (make_canvas uses request.size when the words name none)
    assert option_notes(turn(kind="generate", size="1024x1024"), version(1024, 1024), LOCAL) == []


def test_local_generation_whose_words_named_another_size():
    notes = option_notes(turn(kind="generate", size="1536x1024"), version(800, 600), LOCAL)
    assert notes == ["Asked for 1536×1024; the offline editor made 800×600."]


def test_local_with_nothing_asked_has_no_notes():
    assert option_notes(turn(), version(512, 512), LOCAL) == []
    assert option_notes(turn(size="auto", quality="auto", background="auto"), version(512, 512), LOCAL) == []


def test_local_model_and_background_have_no_setting():
    notes = option_notes(turn(model="gpt-image-1", background="opaque"), version(10, 10), LOCAL)
    assert notes == ["Asked for an opaque background; the offline editor has no background setting.",
                     "Asked for the model gpt-image-1; the offline editor has no choice of model."]


def test_only_finished_turns_that_made_something_get_notes():
    for status in ("queued", "running", "declined", "failed", "cancelled"):
        assert option_notes(turn(status=status, size="1536x1024", quality="high"), None, LOCAL) == []
    assert option_notes(turn(kind="upload", quality="high"), version(5, 5), LOCAL) == []
    assert option_notes(turn(quality="high"), version(5, 5), None) == []


# --------------------------------------------------------------------------- openai


def test_openai_that_made_what_was_asked_has_no_notes():
    out = {"model": "gpt-image-1", "size": "1536x1024", "quality": "high", "background": "opaque"}
    t = turn(size="1536x1024", quality="high", background="opaque", model="gpt-image-1", output=out)
    assert option_notes(t, version(1536, 1024), OPENAI) == []
    assert option_notes(t, version(1536, 1024), CHAT) == []


def test_openai_that_changed_size_quality_and_model_says_what_it_made():
    out = {"model": "gpt-image-1-mini", "size": "1024x1024", "quality": "medium", "background": "opaque"}
    t = turn(kind="generate", size="1536x1024", quality="high", model="gpt-image-1", output=out)
    assert option_notes(t, version(1024, 1024), OPENAI) == [
        "Asked for 1536×1024 at high quality; OpenAI made 1024×1024 instead and used medium quality.",
        "Asked for the model gpt-image-1; OpenAI used gpt-image-1-mini.",
    ]


def test_openai_auto_quality_reported_back_is_not_a_change():
    out = {"quality": "high", "size": "1024x1024"}
    assert option_notes(turn(quality="auto", output=out), version(1024, 1024), OPENAI) == []


def test_openai_background_changed():
    out = {"background": "opaque"}
    assert option_notes(turn(background="transparent", output=out), version(64, 64), OPENAI) == [
        "Asked for a transparent background; OpenAI made it opaque."]


def test_a_region_edit_keeps_the_photo_size_and_says_so():
    t = turn(size="1536x1024", mask_sha256="ab" * 32, output={"size": "1536x1024"})
    assert option_notes(t, version(640, 480), OPENAI) == [
        "Asked for 1536×1024; OpenAI kept the photo's size (640×480), as every region edit does."]


def test_an_answered_turn_notes_only_the_model():
    t = turn(status="answered", size="1536x1024", model="gpt-image-1", output={"model": "gpt-image-1.5"})
    assert option_notes(t, None, CHAT) == ["Asked for the model gpt-image-1; OpenAI used gpt-image-1.5."]


# --------------------------------------------------------------------------- diffusers


def test_diffusers_makes_the_size_and_quality_asked_for():
    out = {"model": "m", "size": "1024x768", "quality": "high", "background": None}
    t = turn(size="1024x768", quality="high", model="m", output=out)
    assert option_notes(t, version(1024, 768), DIFFUSERS) == []


def test_diffusers_result_of_another_size_is_noted():
    t = turn(size="1024x768", output={"size": "1024x768"})
    assert option_notes(t, version(1024, 512), DIFFUSERS) == [
        "Asked for 1024×768; the open-weights model made 1024×512 instead."]


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def local_client(tmp_path, sqlite_url):
    with TestClient(create_app(make_settings(tmp_path / "data", sqlite_url, backend="local"))) as c:
        yield c


def test_a_local_turn_asked_for_1536x1024_high_says_so_in_json_and_page(local_client):
    c = local_client
    r = c.post("/api/v1/threads", files={"image": ("photo.png", png_bytes((512, 512)), "image/png")})
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    r = c.post(f"/api/v1/threads/{tid}/turns",
               data={"instruction": "make it black and white", "size": "1536x1024", "quality": "high"})
    assert r.status_code == 202, r.text
    done = wait_for_turn(c, r.json()["id"])
    assert done["status"] == "succeeded", done
    expected = ("Asked for 1536×1024 at high quality; the offline editor ignores the size setting "
                "(the result is 512×512) and has no quality setting.")
    assert done["notes"] == [expected]
    thread = c.get(f"/api/v1/threads/{tid}").json()
    assert [t["notes"] for t in thread["turns"]] == [[], [expected]]
    page = c.get(f"/t/{tid}").text
    assert 'class="option-note"' in page and "ignores the size setting (the result is 512×512)" in page


# --------------------------------------------------------------------------- home page starters


def test_every_local_starter_prompt_makes_an_image_offline():
    from app.backends.base import EditRequest
    from app.pages import LOCAL_STARTERS, starters_for

    assert starters_for("local") == LOCAL_STARTERS
    for label, text in LOCAL_STARTERS:
        result = LOCAL.edit(EditRequest(instruction=text))
        assert result.image is not None and result.image.width >= 256, label
