"""The fake OpenAI Images API (tests/fake_openai.py) rejects what OpenAI
rejects and answers what the SDK expects, checked with the real ``openai``
SDK over HTTP."""
from __future__ import annotations

import base64
import dataclasses
import io
import os
import time
import typing

import openai
import pytest
from openai.types import (
    ImageEditCompletedEvent,
    ImageEditPartialImageEvent,
    ImageGenCompletedEvent,
    ImageGenPartialImageEvent,
    ImagesResponse,
)
from openai.types import image_edit_params, image_generate_params
from PIL import Image

from app.backends import openai_models as catalogue
from tests.fake_openai import (
    BEHAVIOURS,
    EDIT_PARAMS,
    GENERATE_PARAMS,
    MODERATION_MESSAGE,
    FakeOpenAI,
    param_table,
)

MODEL = "gpt-image-2.5-sunburst"
SMALL = (64, 48)


@pytest.fixture(scope="module")
def _server():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def fake(_server):
    """One server for the module (fast), reset to the defaults for each test."""
    defaults = FakeOpenAI(image_size=SMALL)
    for name in ("image_size", "color", "slow_seconds", "retry_after", "partial_colors", "event_delay",
                 "moderation_categories", "c2pa"):
        setattr(_server, name, getattr(defaults, name))
    _server.reset()
    return _server


@pytest.fixture(scope="module")
def _client(_server):
    return openai.OpenAI(api_key="sk-test", base_url=_server.base_url, max_retries=0)


@pytest.fixture
def client(fake, _client):
    """The real SDK client, pointed at the (reset) fake."""
    return _client


def png(size=SMALL, mode="RGB", color=None) -> bytes:
    color = color if color is not None else ((10, 20, 30) if mode == "RGB" else (10, 20, 30, 0))
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def as_file(data: bytes, name: str = "image.png", ctype: str = "image/png"):
    return (name, data, ctype)


def noisy_rgba_png(size) -> bytes:
    """Random RGBA pixels: PNG cannot compress them, so the file is big."""
    img = Image.frombytes("RGBA", size, os.urandom(size[0] * size[1] * 4))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def half_transparent_png(size=SMALL) -> bytes:
    img = Image.new("RGBA", size, (255, 0, 0, 255))
    img.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1]))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def edit(client, **overrides):
    args = {"model": MODEL, "prompt": "Make the sky purple", "image": [as_file(png())]}
    args.update(overrides)
    return client.images.edit(**args)


def generate(client, **overrides):
    args = {"model": MODEL, "prompt": "A lighthouse at dusk"}
    args.update(overrides)
    return client.images.generate(**args)


def decode(b64: str) -> Image.Image:
    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    img.load()
    return img


# ------------------------------------------------------------------ rejections

# (id, endpoint, arguments (a function for heavy ones), SDK exception, code, param)
REJECTIONS = [
    ("shut-down model", "edit", {"model": "gpt-image-1"}, openai.NotFoundError, "model_not_found", "model"),
    ("shut-down model gen", "generate", {"model": "gpt-image-1"}, openai.NotFoundError, "model_not_found",
     "model"),
    ("shut down 2026-12-01", "generate", {"model": "gpt-image-1.5"}, openai.NotFoundError, "model_not_found",
     "model"),
    ("retired dall-e-3", "generate", {"model": "dall-e-3"}, openai.NotFoundError, "model_not_found", "model"),
    ("misspelled model", "edit", {"model": "gpt-image-2.5-sunburts"}, openai.NotFoundError,
     "model_not_found", "model"),
    ("no model", "generate", {"model": openai.omit}, openai.BadRequestError, "missing_required_parameter",
     "model"),
    ("size 16x8", "generate", {"size": "16x8"}, openai.BadRequestError, "invalid_value", "size"),
    ("size 8192x8192", "generate", {"size": "8192x8192"}, openai.BadRequestError, "invalid_value", "size"),
    ("size 1000x100 ratio", "edit", {"size": "1000x100"}, openai.BadRequestError, "invalid_value", "size"),
    ("size not WxH", "edit", {"size": "big"}, openai.BadRequestError, "invalid_value", "size"),
    ("deprecated size 256x256", "generate", {"size": "256x256"}, openai.BadRequestError, "invalid_value",
     "size"),
    ("arbitrary size on 2.6", "generate", {"model": "gpt-image-2.6-flare", "size": "1536x864"},
     openai.BadRequestError, "invalid_value", "size"),
    ("quality ultra", "edit", {"quality": "ultra"}, openai.BadRequestError, "invalid_value", "quality"),
    ("quality ultra gen", "generate", {"quality": "ultra"}, openai.BadRequestError, "invalid_value", "quality"),
    ("quality xhigh on gpt-image-2", "edit", {"model": "gpt-image-2", "quality": "xhigh"},
     openai.BadRequestError, "invalid_value", "quality"),
    ("deprecated quality standard", "edit", {"quality": "standard"}, openai.BadRequestError, "invalid_value",
     "quality"),
    ("deprecated quality hd", "generate", {"quality": "hd"}, openai.BadRequestError, "invalid_value",
     "quality"),
    ("transparent unknown on 2.6-flare", "edit", {"model": "gpt-image-2.6-flare", "background": "transparent"},
     openai.BadRequestError, "invalid_value", "background"),
    ("transparent with jpeg", "generate", {"background": "transparent", "output_format": "jpeg"},
     openai.BadRequestError, "invalid_value", "output_format"),
    ("output_format gif", "generate", {"output_format": "gif"}, openai.BadRequestError, "unsupported_value",
     "output_format"),
    ("output_format svg", "edit", {"output_format": "svg"}, openai.BadRequestError, "unsupported_value",
     "output_format"),
    ("svg object", "edit", {"svg": {"model": "some-author"}}, openai.BadRequestError, "unsupported_value", "svg"),
    ("frame_count", "generate", {"frame_count": 4}, openai.BadRequestError, "unsupported_parameter",
     "frame_count"),
    ("output_compression with png", "generate", {"output_compression": 50}, openai.BadRequestError,
     "unsupported_parameter", "output_compression"),
    ("output_compression 101", "generate", {"output_format": "webp", "output_compression": 101},
     openai.BadRequestError, "integer_above_max_value", "output_compression"),
    ("response_format", "generate", {"response_format": "b64_json"}, openai.BadRequestError,
     "unsupported_parameter", "response_format"),
    ("response_format edit", "edit", {"response_format": "url"}, openai.BadRequestError,
     "unsupported_parameter", "response_format"),
    ("style", "generate", {"style": "vivid"}, openai.BadRequestError, "unsupported_parameter", "style"),
    ("prompt of 40,000 characters", "edit", {"prompt": "a" * 40_000}, openai.BadRequestError,
     "string_above_max_length", "prompt"),
    ("17 input images", "edit", {"image": [as_file(png(), f"i{i}.png") for i in range(17)]},
     openai.BadRequestError, "array_above_max_length", "image"),
    ("image is a GIF", "edit", {"image": [as_file(b"GIF89a" + bytes(64), "i.gif", "image/gif")]},
     openai.BadRequestError, "invalid_image_format", "image"),
    ("second image is text", "edit", {"image": [as_file(png()), as_file(b"hello", "r.png")]},
     openai.BadRequestError, "invalid_image_format", "image"),
    ("no image", "edit", {"image": []}, openai.BadRequestError, "missing_required_parameter", "image"),
    ("mask of the wrong size", "edit", {"mask": as_file(png((64, 64), "RGBA"), "mask.png")},
     openai.BadRequestError, "invalid_image", "mask"),
    ("mask over 4 MB", "edit",
     lambda: {"image": [as_file(png((1100, 1000)))], "mask": as_file(noisy_rgba_png((1100, 1000)), "mask.png")},
     openai.BadRequestError, "file_too_large", "mask"),
    ("mask without alpha", "edit", {"mask": as_file(png(SMALL, "RGB"), "mask.png")}, openai.BadRequestError,
     "invalid_image", "mask"),
    ("mask not a PNG", "edit", {"mask": as_file(b"\xff\xd8\xff\xe0" + bytes(32), "mask.jpg", "image/jpeg")},
     openai.BadRequestError, "invalid_image_format", "mask"),
    ("mask and markup together", "edit",
     {"mask": as_file(png(SMALL, "RGBA"), "mask.png"), "markup": as_file(half_transparent_png(), "markup.png")},
     openai.BadRequestError, "invalid_value", "markup"),
    ("markup to gpt-image-2", "edit", {"model": "gpt-image-2", "markup": as_file(half_transparent_png())},
     openai.BadRequestError, "unsupported_parameter", "markup"),
    ("markup unknown on 2.6-sunburst", "edit",
     {"model": "gpt-image-2.6-sunburst", "markup": as_file(half_transparent_png())},
     openai.BadRequestError, "unsupported_parameter", "markup"),
    ("markup without transparency", "edit", {"markup": as_file(png(SMALL, "RGBA", (1, 2, 3, 255)))},
     openai.BadRequestError, "invalid_image", "markup"),
    ("markup of the wrong size", "edit", {"markup": as_file(half_transparent_png((32, 32)))},
     openai.BadRequestError, "invalid_image", "markup"),
    ("n=0", "edit", {"n": 0}, openai.BadRequestError, "integer_below_min_value", "n"),
    ("n=11", "edit", {"n": 11}, openai.BadRequestError, "integer_above_max_value", "n"),
    ("n=11 gen", "generate", {"n": 11}, openai.BadRequestError, "integer_above_max_value", "n"),
    ("partial_images=4", "edit", {"stream": True, "partial_images": 4}, openai.BadRequestError,
     "integer_above_max_value", "partial_images"),
    ("partial_images=-1 gen", "generate", {"partial_images": -1}, openai.BadRequestError,
     "integer_below_min_value", "partial_images"),
    ("input_fidelity to gpt-image-2", "edit", {"model": "gpt-image-2", "input_fidelity": "low"},
     openai.BadRequestError, "unsupported_parameter", "input_fidelity"),
    ("input_fidelity unknown on sunburst", "edit", {"input_fidelity": "high"}, openai.BadRequestError,
     "unsupported_parameter", "input_fidelity"),
    ("unknown parameter", "edit", {"extra_body": {"foo": 1}}, openai.BadRequestError, "unknown_parameter",
     "foo"),
    ("unknown parameter gen", "generate", {"extra_body": {"foo": 1}}, openai.BadRequestError,
     "unknown_parameter", "foo"),
    ("image field on generations", "generate", {"extra_body": {"image": "x"}}, openai.BadRequestError,
     "unknown_parameter", "image"),
    ("n not an integer (multipart)", "edit", {"extra_body": {"n": "abc"}}, openai.BadRequestError,
     "invalid_type", "n"),
    ("n a string (JSON)", "generate", {"extra_body": {"n": "3"}}, openai.BadRequestError, "invalid_type", "n"),
    ("stream not a boolean", "generate", {"extra_body": {"stream": "yes"}}, openai.BadRequestError,
     "invalid_type", "stream"),
    ("background not in Literal", "generate", {"background": "checkerboard"}, openai.BadRequestError,
     "invalid_value", "background"),
]


@pytest.mark.parametrize(("endpoint", "arguments", "exc_class", "code", "param"),
                         [pytest.param(*case[1:], id=case[0]) for case in REJECTIONS])
def test_rejects_what_openai_rejects(fake, client, endpoint, arguments, exc_class, code, param):
    arguments = arguments() if callable(arguments) else dict(arguments)
    call = edit if endpoint == "edit" else generate
    with pytest.raises(exc_class) as info:
        call(client, **arguments)
    exc = info.value
    assert exc.code == code, exc.body
    assert exc.param == param, exc.body
    assert exc.body["code"] == code and exc.body["param"] == param
    assert exc.body["type"] == "invalid_request_error"
    assert set(exc.body) == {"message", "type", "param", "code"}
    assert exc.body["message"]
    # Refusals are recorded too, with what was answered.
    assert fake.requests[-1].status == exc.status_code
    assert fake.requests[-1].error == exc.body


def test_model_not_found_message(client):
    with pytest.raises(openai.NotFoundError) as info:
        generate(client, model="gpt-image-2.5-sunburts")
    assert info.value.status_code == 404
    assert info.value.body["message"] == (
        "The model `gpt-image-2.5-sunburts` does not exist or you do not have access to it.")
    with pytest.raises(openai.NotFoundError) as info:
        generate(client, model="gpt-image-1")
    assert info.value.body["message"].startswith(
        "The model `gpt-image-1` does not exist or you do not have access to it.")
    assert "2026-10-23" in info.value.body["message"]


def test_messages_state_the_rule(client):
    with pytest.raises(openai.BadRequestError) as info:
        edit(client, quality="ultra")
    assert info.value.body["message"].startswith("Invalid value: 'ultra'. Supported values are: 'low', 'medium',")
    with pytest.raises(openai.BadRequestError) as info:
        edit(client, size="1000x100")
    assert info.value.body["message"] == catalogue.size_problem(catalogue.CATALOGUE[MODEL], "1000x100")
    with pytest.raises(openai.BadRequestError) as info:
        edit(client, mask=as_file(png((64, 64), "RGBA")))
    assert "64x64" in info.value.body["message"] and "64x48" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError) as info:
        edit(client, mask=as_file(png(SMALL, "RGBA")), markup=as_file(half_transparent_png()))
    assert "markup cannot be combined with mask" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError) as info:
        edit(client, extra_body={"foo": 1})
    assert info.value.body["message"] == "Unknown parameter: 'foo'."


def test_image_of_50_mb_is_refused(client):
    too_big = b"\x89PNG\r\n\x1a\n" + bytes(catalogue.MAX_IMAGE_BYTES)
    with pytest.raises(openai.BadRequestError) as info:
        edit(client, image=[as_file(png()), as_file(too_big, "big.png")])
    assert (info.value.code, info.value.param) == ("file_too_large", "image")


def test_missing_prompt(fake, client):
    """The SDK insists on ``prompt``; its low-level ``post`` does not."""
    with pytest.raises(openai.BadRequestError) as info:
        client.post("/images/generations", body={"model": MODEL}, cast_to=ImagesResponse)
    assert (info.value.code, info.value.param) == ("missing_required_parameter", "prompt")
    assert info.value.body["message"] == "Missing required parameter: 'prompt'."


def test_unknown_capability_is_refused(monkeypatch, client):
    """A capability the catalogue marks unknown (None) is refused like an unavailable one."""
    info = catalogue.CATALOGUE["gpt-image-2"]
    monkeypatch.setitem(catalogue.CATALOGUE, "gpt-image-2", dataclasses.replace(info, streaming=None))
    with pytest.raises(openai.BadRequestError) as exc:
        generate(client, model="gpt-image-2", stream=True)
    assert (exc.value.code, exc.value.param) == ("unsupported_value", "stream")
    assert "not documented" in exc.value.body["message"]
    monkeypatch.setitem(catalogue.CATALOGUE, "gpt-image-2", dataclasses.replace(info, streaming=False))
    with pytest.raises(openai.BadRequestError) as exc:
        generate(client, model="gpt-image-2", stream=True)
    assert exc.value.param == "stream"


def test_no_bearer_token_is_401(fake):
    client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0,
                           default_headers={"Authorization": "Basic abc"})
    with pytest.raises(openai.AuthenticationError):
        generate(client)


# ------------------------------------------------------------ the param table


@pytest.mark.parametrize(("table", "classes"), [
    (EDIT_PARAMS, (image_edit_params.ImageEditParamsBase, image_edit_params.ImageEditParamsStreaming,
                   image_edit_params.ImageEditParamsNonStreaming)),
    (GENERATE_PARAMS, (image_generate_params.ImageGenerateParamsBase,
                       image_generate_params.ImageGenerateParamsStreaming,
                       image_generate_params.ImageGenerateParamsNonStreaming)),
], ids=["edits", "generations"])
def test_param_table_comes_from_the_sdk_typeddicts(table, classes):
    base = typing.get_type_hints(classes[0], include_extras=True)
    assert set(table) == set(base) | {"stream"}
    assert table == param_table(*classes)
    quality = typing.get_args(typing.get_args(base["quality"])[0])  # Optional[Literal[...]]
    assert table["quality"].kind == "enum" and table["quality"].values == quality
    assert table["prompt"].kind == "str" and table["prompt"].required
    assert table["model"].kind == "str" and not table["model"].required  # the fake requires it anyway
    assert table["n"].kind == "int" and table["partial_images"].kind == "int"
    assert table["stream"].kind == "bool" and set(table["stream"].values) == {True, False}
    assert not table["stream"].required
    assert table["svg"].kind == "object"


def test_edit_files_come_from_filetypes():
    assert EDIT_PARAMS["image"].kind == "files" and EDIT_PARAMS["image"].required
    assert EDIT_PARAMS["mask"].kind == "file" and EDIT_PARAMS["markup"].kind == "file"
    assert "image" not in GENERATE_PARAMS and "style" in GENERATE_PARAMS and "style" not in EDIT_PARAMS


# -------------------------------------------------------------------- answers


def test_valid_edit_returns_an_images_response(fake, client):
    raw = client.images.with_raw_response.edit(model=MODEL, prompt="Make the sky purple",
                                               image=[as_file(png()), as_file(png(), "ref.png")])
    payload = raw.http_response.json()
    ImagesResponse.model_validate(payload)
    result = raw.parse()
    assert isinstance(result, ImagesResponse)
    assert (result.size, result.quality, result.background, result.output_format) == (
        "64x48", "high", "opaque", "png")
    assert result.usage.output_tokens_details is not None
    assert result.usage.output_tokens_details.image_tokens == result.usage.output_tokens
    assert result.usage.input_tokens_details.image_tokens == 2 * 323
    assert result.usage.total_tokens == result.usage.input_tokens + result.usage.output_tokens
    img = decode(result.data[0].b64_json)
    assert img.size == SMALL and img.mode == "RGB" and img.getpixel((0, 0)) == fake.color
    req = fake.requests[-1]
    assert [f.field for f in req.images] == ["image[]", "image[]"]
    assert req.param("model") == MODEL and req.status == 200 and req.error is None


def test_generate_answers_at_the_requested_size_n_times(client):
    result = generate(client, size="1024x640", quality="low", n=3, safety_identifier="user-hash")
    assert result.size == "1024x640" and len(result.data) == 3
    assert decode(result.data[2].b64_json).size == (1024, 640)
    assert result.usage.output_tokens == 3 * 272
    assert result.safety_identifier == "user-hash"


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_transparent_background_is_rgba_with_clear_corners(fake, client, fmt):
    result = edit(client, background="transparent", output_format=fmt)
    assert result.background == "transparent" and result.output_format == fmt
    img = decode(result.data[0].b64_json)
    assert img.mode == "RGBA"
    assert img.getpixel((0, 0))[3] == 0 and img.getpixel((63, 47))[3] == 0
    assert img.getpixel((32, 24)) == (*fake.color, 255)


@pytest.mark.parametrize(("fmt", "pil_format"), [("webp", "WEBP"), ("jpeg", "JPEG"), ("png", "PNG")])
def test_output_format(client, fmt, pil_format):
    result = generate(client, output_format=fmt)
    assert result.output_format == fmt
    assert decode(result.data[0].b64_json).format == pil_format


def c2pa_manifest(data: bytes, mime: str) -> dict | None:
    """The active manifest of ``data`` read with c2pa-python's Reader, or None."""
    import json

    import c2pa

    reader = c2pa.Reader.try_create(mime, io.BytesIO(data))
    if reader is None:
        return None
    with reader:
        assert reader.get_validation_state() in ("Valid", "Trusted")
        store = json.loads(reader.json())
    return store["manifests"][store["active_manifest"]]


@pytest.mark.parametrize(("fmt", "pil_format"), [("webp", "WEBP"), ("jpeg", "JPEG"), ("png", "PNG")])
def test_c2pa_signs_final_images_as_openai_does(fake, client, fmt, pil_format):
    from tests import fake_c2pa

    plain = base64.b64decode(generate(client, output_format=fmt).data[0].b64_json)
    assert c2pa_manifest(plain, f"image/{fmt}") is None  # off by default
    fake.c2pa = True
    result = generate(client, output_format=fmt)
    signed = base64.b64decode(result.data[0].b64_json)
    manifest = c2pa_manifest(signed, f"image/{fmt}")
    assert manifest["claim_generator_info"][0]["name"] == fake_c2pa.CLAIM_GENERATOR
    assert manifest["signature_info"]["common_name"] == fake_c2pa.SIGNER_NAME
    # still the image the API returns: the requested format, the same pixels
    img = decode(result.data[0].b64_json)
    assert img.format == pil_format and img.size == SMALL and img.tobytes() == decode(
        base64.b64encode(plain).decode()).tobytes()


def test_c2pa_signs_the_completed_event_not_the_partials(fake, client):
    fake.c2pa = True
    events = list(edit(client, stream=True, partial_images=1))
    assert c2pa_manifest(base64.b64decode(events[0].b64_json), "image/png") is None
    assert c2pa_manifest(base64.b64decode(events[-1].b64_json), "image/png") is not None


# ------------------------------------------------------------------ streaming


@pytest.mark.parametrize(("call", "partial_cls", "completed_cls"), [
    (edit, ImageEditPartialImageEvent, ImageEditCompletedEvent),
    (generate, ImageGenPartialImageEvent, ImageGenCompletedEvent),
], ids=["edit", "generate"])
def test_stream_sends_partials_then_completed(fake, client, call, partial_cls, completed_cls):
    events = list(call(client, stream=True, partial_images=2))
    assert [type(e) for e in events] == [partial_cls, partial_cls, completed_cls]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    for i, event in enumerate(events[:2]):
        assert decode(event.b64_json).getpixel((0, 0)) == fake.partial_colors[i]
        assert set(event.model_dump()) == set(partial_cls.model_fields)
    done = events[-1]
    assert set(done.model_dump()) == set(completed_cls.model_fields)
    assert decode(done.b64_json).getpixel((0, 0)) == fake.color
    assert done.size == "64x48" and done.quality == "high" and done.background == "opaque"
    assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens
    assert fake.requests[-1].param("stream") == ("true" if call is edit else "True")


def test_stream_without_partials_sends_only_completed(client):
    events = list(generate(client, stream=True, partial_images=0))
    assert [type(e) for e in events] == [ImageGenCompletedEvent]


def test_event_delay_paces_the_stream(fake, client):
    fake.event_delay = 0.1
    start = time.monotonic()
    stream = edit(client, stream=True, partial_images=2)
    arrivals = [time.monotonic() - start for _ in stream]
    assert len(arrivals) == 3
    assert arrivals[-1] >= 0.3
    assert arrivals[1] - arrivals[0] >= 0.05


def test_stream_break_raises_connection_error_after_one_partial(fake, client):
    fake.fail_next("stream_break")
    seen = []
    with pytest.raises(openai.APIConnectionError) as info:
        for event in edit(client, stream=True, partial_images=3):
            seen.append(event)
    assert [type(e) for e in seen] == [ImageEditPartialImageEvent]
    assert "incomplete chunked read" in str(info.value.__cause__)
    assert fake.requests[-1].behaviour == "stream_break"


def test_stream_break_without_stream_drops_the_connection(fake, client):
    fake.fail_next("stream_break")
    with pytest.raises(openai.APIConnectionError):
        generate(client)


def test_stream_error_event_raises_api_error_after_one_partial(fake, client):
    fake.fail_next("stream_error")
    seen = []
    with pytest.raises(openai.APIError) as info:
        for event in generate(client, stream=True, partial_images=2):
            seen.append(event)
    assert [type(e) for e in seen] == [ImageGenPartialImageEvent]
    assert not isinstance(info.value, openai.APIStatusError)
    assert info.value.body["code"] == "server_error" and info.value.body["type"] == "server_error"


# ----------------------------------------------------------------- behaviours


def test_moderation_blocked_with_categories(fake, client):
    fake.fail_next("moderation_blocked")
    with pytest.raises(openai.BadRequestError) as info:
        edit(client)
    assert info.value.code == "moderation_blocked" and info.value.body["message"] == MODERATION_MESSAGE
    assert "moderation_categories" not in info.value.body

    fake.moderation_categories = ["violence", "sexual"]
    fake.fail_next("moderation_blocked")
    with pytest.raises(openai.BadRequestError) as info:
        edit(client)
    assert info.value.body["message"] == f"{MODERATION_MESSAGE} safety_violations=[violence, sexual]."
    assert info.value.body["moderation_categories"] == ["violence", "sexual"]


def test_queued_behaviour_answers_before_validation(fake, client):
    fake.fail_next("503", "bad_b64")
    with pytest.raises(openai.InternalServerError):
        generate(client, model="gpt-image-1", size="3x3")
    result = generate(client, model="gpt-image-1", size="3x3")
    assert base64.b64decode(result.data[0].b64_json).startswith(b"this is not a PNG")
    with pytest.raises(openai.NotFoundError):
        generate(client, model="gpt-image-1")
    assert [(r.behaviour, r.status) for r in fake.requests] == [("503", 503), ("bad_b64", 200), (None, 404)]
    assert fake.pending == []


def test_slow_then_validates(fake, client):
    fake.slow_seconds = 0.05
    fake.fail_next("slow")
    with pytest.raises(openai.BadRequestError):
        generate(client, quality="ultra")
    fake.fail_next("slow")
    assert generate(client).size == "64x48"


def test_fail_next_knows_every_behaviour(fake):
    fake.fail_next(*BEHAVIOURS)
    assert fake.pending == list(BEHAVIOURS)
    fake.reset()
    assert fake.pending == [] and fake.requests == []
    with pytest.raises(ValueError):
        fake.fail_next("stream_explode")
