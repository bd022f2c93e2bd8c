"""The ``openai`` backend, driving the real ``openai`` SDK against a fake
OpenAI Images API server over HTTP on 127.0.0.1 (tests/fake_openai.py)."""
from __future__ import annotations

import base64
import io
import socket
import time

import openai
import pytest
from PIL import Image, ImageChops

from app.backends.base import BackendDeclined, BackendFailed, EditRequest
from app.backends.openai_backend import (
    OpenAIBackend,
    build_prompt,
    mask_to_openai_png,
    png_bytes,
    result_image,
)
from app.config import get_settings
from tests.fake_openai import MODERATION_MESSAGE, FakeOpenAI, fake_openai  # noqa: F401

API_KEY = "sk-test-Zq9secretKEY0123456789"


def make_backend(fake: FakeOpenAI, **overrides) -> OpenAIBackend:
    options = {"api_key": API_KEY, "base_url": fake.base_url, "timeout": 5.0, "max_retries": 0}
    options.update(overrides)
    return OpenAIBackend(**options)


def photo(size=(64, 48), mode="RGB") -> Image.Image:
    """A small image whose every pixel differs, so any change shows."""
    w, h = size
    im = Image.new(mode, size)
    im.putdata([
        (x * 4 % 256, y * 5 % 256, (x + y) % 256) + ((255,) if mode == "RGBA" else ())
        for y in range(h) for x in range(w)
    ])
    return im


def box_mask(size=(64, 48), box=(10, 8, 30, 24)) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


def open_png(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data), formats=["PNG"])
    im.load()
    return im


# ----------------------------------------------------------------- generate


def test_generate_sends_prompt_model_size_and_quality(fake_openai):
    backend = make_backend(fake_openai, model="gpt-image-2.5-flare")
    result = backend.edit(EditRequest("A lighthouse at dusk, oil painting", size="1536x512", quality="low"))

    assert len(fake_openai.requests) == 1
    req = fake_openai.requests[0]
    assert req.path == "/v1/images/generations"
    assert req.headers["authorization"] == f"Bearer {API_KEY}"
    assert req.json["prompt"] == "A lighthouse at dusk, oil painting"
    assert req.json["model"] == "gpt-image-2.5-flare"
    assert req.json["size"] == "1536x512"
    assert req.json["quality"] == "low"
    assert "response_format" not in req.json  # gpt-image models always return b64_json
    assert "image" not in req.json

    assert result.image.size == (1536, 512)
    assert result.image.mode == "RGB"
    assert result.image.getpixel((5, 5)) == fake_openai.color


def test_generate_omits_size_and_quality_when_not_given(fake_openai):
    fake_openai.image_size = (32, 32)
    backend = make_backend(fake_openai, model="gpt-image-2")
    result = backend.run(EditRequest("a red square"))

    body = fake_openai.requests[0].json
    assert body == {"model": "gpt-image-2", "prompt": "a red square"}
    assert result.image.size == (32, 32)


def test_usage_is_recorded_as_plain_dict(fake_openai):
    result = make_backend(fake_openai).run(EditRequest("two words", quality="high"))
    assert type(result.usage) is dict
    assert result.usage["input_tokens"] == 2
    assert result.usage["output_tokens"] == 4160
    assert result.usage["total_tokens"] == 4162
    assert result.usage["input_tokens_details"] == {"image_tokens": 0, "text_tokens": 2}


# --------------------------------------------------------------------- edit


def test_edit_uploads_current_image_first_then_references(fake_openai):
    fake_openai.image_size = (64, 48)
    image = photo()
    ref1 = photo((20, 10), mode="RGBA")
    ref2 = Image.new("RGB", (8, 8), (9, 99, 199))
    backend = make_backend(fake_openai)
    backend.run(EditRequest("Put the hat from the first reference on him", image=image, references=(ref1, ref2),
                            size="1024x1024", quality="medium"))

    req = fake_openai.requests[0]
    assert req.path == "/v1/images/edits"
    assert req.headers["content-type"].startswith("multipart/form-data")
    assert req.param("prompt") == "Put the hat from the first reference on him"
    assert req.param("model") == "gpt-image-2.5-sunburst"
    assert req.param("size") == "1024x1024"
    assert req.param("quality") == "medium"
    assert "response_format" not in req.fields
    assert req.mask is None

    images = req.images
    assert [f.content_type for f in images] == ["image/png"] * 3
    assert all(f.filename.endswith(".png") for f in images)
    # The exact PNG bytes of the current image arrive first, then the references in order.
    assert images[0].data == png_bytes(image)
    assert [f.data for f in images[1:]] == [png_bytes(ref1), png_bytes(ref2)]
    assert open_png(images[0].data).tobytes() == image.tobytes()
    assert open_png(images[1].data).mode == "RGBA"
    assert open_png(images[1].data).tobytes() == ref1.tobytes()
    assert open_png(images[2].data).getpixel((0, 0)) == (9, 99, 199)


def test_edit_sends_mask_in_openai_alpha_convention(fake_openai):
    image = photo()
    mask = box_mask()
    make_backend(fake_openai).run(EditRequest("make the box blue", image=image, mask=mask))

    sent = fake_openai.requests[0].mask
    assert sent is not None
    assert sent.content_type == "image/png"
    alpha_png = open_png(sent.data)
    assert alpha_png.mode == "RGBA"
    assert alpha_png.size == image.size
    alpha = alpha_png.getchannel("A")
    # Fully transparent exactly where Retouch's mask says "edit", opaque elsewhere.
    expected = mask.point(lambda v: 0 if v == 255 else 255)
    assert ImageChops.difference(alpha, expected).getbbox() is None
    assert alpha.getpixel((15, 12)) == 0
    assert alpha.getpixel((0, 0)) == 255
    assert set(alpha.tobytes()) == {0, 255}


def test_mask_conversion_opens_feathered_pixels_and_matches_image_size():
    mask = Image.new("L", (4, 2), 0)
    mask.putdata([0, 1, 128, 255, 0, 0, 0, 0])
    alpha = open_png(mask_to_openai_png(mask, (4, 2))).getchannel("A")
    assert list(alpha.tobytes()) == [255, 0, 0, 0, 255, 255, 255, 255]
    # A mask of another size is scaled to the image's size.
    assert open_png(mask_to_openai_png(Image.new("L", (2, 1), 255), (8, 4))).size == (8, 4)


def test_masked_result_is_composited_outside_mask_bit_identical(fake_openai):
    fake_openai.image_size = (1024, 1024)  # the API answers at its own size
    fake_openai.color = (0, 0, 255)
    image = photo()
    mask = box_mask()
    result = make_backend(fake_openai).edit(EditRequest("make the box blue", image=image, mask=mask))

    assert result.image.size == image.size
    assert result.image.mode == image.mode
    outside = Image.composite(Image.new("RGB", image.size), result.image, mask)
    original_outside = Image.composite(Image.new("RGB", image.size), image, mask)
    assert outside.tobytes() == original_outside.tobytes()
    assert result.image.getpixel((15, 12)) == (0, 0, 255)
    assert result.image.getpixel((0, 0)) == image.getpixel((0, 0))
    assert result.usage["input_tokens_details"]["image_tokens"] > 0


def test_history_appears_in_prompt(fake_openai):
    history = ("Remove the red car", "Make the sky a sunset\nwith pink clouds")
    make_backend(fake_openai).run(EditRequest("Now add a rainbow", image=photo(), history=history))

    prompt = fake_openai.requests[0].param("prompt")
    assert prompt == (
        "Earlier instructions in this conversation (already applied to the image):\n"
        "1. Remove the red car\n"
        "2. Make the sky a sunset with pink clouds\n"
        "\n"
        "Now: Now add a rainbow"
    )


def test_prompt_history_is_bounded():
    history = tuple(f"step {i}" for i in range(1, 15)) + ("x" * 1000,)
    prompt = build_prompt("final", history)
    assert "step 5\n" not in prompt and "step 6" in prompt  # last 10 only
    assert "(5 older instructions not shown)" in prompt
    assert "\n10. " + "x" * 299 + "…" in prompt  # long items are cut
    assert "x" * 300 not in prompt
    assert prompt.endswith("\n\nNow: final")
    assert len(prompt) < 1000
    assert build_prompt("  just this  ") == "just this"


def test_result_must_be_an_image_response():
    with pytest.raises(BackendFailed) as info:
        result_image("<html>not json</html>")
    assert not info.value.retryable


# ------------------------------------------------------------------- errors


def expect_failure(fake: FakeOpenAI, behaviour: str, *, image: bool = True, **overrides) -> BackendFailed:
    fake.fail_next(behaviour)
    request = EditRequest("do something", image=photo() if image else None)
    with pytest.raises(BackendFailed) as info:
        make_backend(fake, **overrides).edit(request)
    message = info.value.message
    assert API_KEY not in message
    assert "Traceback" not in message
    return info.value


def test_rate_limit_is_retryable_and_mentions_retry_after(fake_openai):
    fake_openai.retry_after = "17"
    err = expect_failure(fake_openai, "429")
    assert err.retryable
    assert "429" in err.message
    assert "17 seconds" in err.message
    assert len(fake_openai.requests) == 1


def test_insufficient_quota_is_not_retryable(fake_openai):
    err = expect_failure(fake_openai, "insufficient_quota")
    assert not err.retryable
    assert "quota" in err.message


@pytest.mark.parametrize("behaviour", ["500", "503"])
def test_server_errors_are_retryable(fake_openai, behaviour):
    err = expect_failure(fake_openai, behaviour, image=behaviour == "500")
    assert err.retryable
    assert f"HTTP {behaviour}" in err.message
    assert "try again" in err.message


def test_timeout_is_retryable(fake_openai):
    start = time.monotonic()
    err = expect_failure(fake_openai, "slow", timeout=0.5)
    assert time.monotonic() - start < 3
    assert err.retryable
    assert "0.5 seconds" in err.message


def test_connection_error_is_retryable():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = OpenAIBackend(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}/v1", timeout=2, max_retries=0)
    with pytest.raises(BackendFailed) as info:
        backend.run(EditRequest("anything"))
    assert info.value.retryable
    assert "connect" in info.value.message


def test_moderation_block_is_a_decline_with_the_reason(fake_openai):
    fake_openai.fail_next("moderation_blocked")
    with pytest.raises(BackendDeclined) as info:
        make_backend(fake_openai).edit(EditRequest("something not allowed", image=photo(), mask=box_mask()))
    assert MODERATION_MESSAGE in info.value.message
    assert "safety" in info.value.message


def test_rejected_key_is_not_retryable_and_not_shown(fake_openai):
    err = expect_failure(fake_openai, "401")
    assert not err.retryable
    assert err.message.startswith("The OpenAI API key was rejected")
    assert "OPENAI_API_KEY" in err.message
    assert "Zq9secret" not in err.message
    # The fake really did echo the key back; the backend did not pass it on.
    assert fake_openai.requests[0].headers["authorization"] == f"Bearer {API_KEY}"


def test_other_client_errors_are_not_retryable_and_carry_the_api_message(fake_openai):
    err = expect_failure(fake_openai, "400")
    assert not err.retryable
    assert "OpenAI refused the size of this request" in err.message and "Options" in err.message
    assert "Invalid value: '3x3'" in err.message


@pytest.mark.parametrize(
    ("behaviour", "words"),
    [
        ("malformed_json", "not valid JSON"),
        ("missing_b64", "URL instead of the image data"),
        ("bad_b64", "not an image"),
        ("not_base64", "not valid base64"),
    ],
)
def test_unusable_responses_fail_readably(fake_openai, behaviour, words):
    err = expect_failure(fake_openai, behaviour)
    assert not err.retryable
    assert words in err.message


def test_missing_api_key_fails_without_contacting_the_api(fake_openai):
    backend = make_backend(fake_openai, api_key=None)
    with pytest.raises(BackendFailed) as info:
        backend.edit(EditRequest("a cat"))
    assert not info.value.retryable
    assert "OPENAI_API_KEY" in info.value.message
    assert fake_openai.requests == []


# ------------------------------------------------------------------ retries


@pytest.mark.parametrize(("max_retries", "expected_requests"), [(0, 1), (1, 2)])
def test_max_retries_is_honoured(fake_openai, max_retries, expected_requests):
    fake_openai.fail_next("500", "500", "500")
    with pytest.raises(BackendFailed) as info:
        make_backend(fake_openai, max_retries=max_retries).run(EditRequest("a cat", image=photo()))
    assert info.value.retryable
    assert len(fake_openai.requests) == expected_requests
    # A retried edit uploads the same image again.
    assert {r.images[0].data for r in fake_openai.requests} == {png_bytes(photo())}


def test_one_retry_recovers_from_a_server_error(fake_openai):
    fake_openai.fail_next("503")
    result = make_backend(fake_openai, max_retries=1).run(EditRequest("a cat"))
    assert result.image.size == fake_openai.image_size
    assert [r.behaviour for r in fake_openai.requests] == ["503", None]


# ----------------------------------------------------------------- settings


@pytest.fixture
def clean_settings(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RETOUCH_OPENAI_MODEL",
                 "RETOUCH_OPENAI_TIMEOUT", "RETOUCH_OPENAI_MAX_RETRIES"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_defaults_come_from_settings(clean_settings, fake_openai):
    clean_settings.setenv("OPENAI_API_KEY", API_KEY)
    clean_settings.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    get_settings.cache_clear()
    backend = OpenAIBackend()
    assert (backend.model, backend.timeout, backend.max_retries) == ("gpt-image-2.5-sunburst", 180.0, 1)
    client = backend.client()
    assert isinstance(client, openai.OpenAI)
    assert client.timeout == 180.0
    assert client.max_retries == 1
    assert API_KEY not in repr(backend)
    backend.run(EditRequest("a cat"))
    assert fake_openai.requests[0].json["model"] == "gpt-image-2.5-sunburst"


def test_backend_without_key_can_be_built_and_explains(clean_settings):
    backend = OpenAIBackend()  # the registry builds it with no arguments
    with pytest.raises(BackendFailed) as info:
        backend.run(EditRequest("a cat"))
    assert "OPENAI_API_KEY" in info.value.message


def test_fake_server_returns_real_png(fake_openai):
    client = openai.OpenAI(api_key=API_KEY, base_url=fake_openai.base_url, max_retries=0)
    response = client.images.generate(model="gpt-image-2.5-flare", prompt="x", size="1024x640")
    im = open_png(base64.b64decode(response.data[0].b64_json))
    assert im.size == (1024, 640)
    assert response.usage.total_tokens > 0
