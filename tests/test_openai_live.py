"""Opt-in contract test against the real OpenAI API.

Skipped unless ``RETOUCH_LIVE_OPENAI_KEY`` holds an API key. It runs one
generate, one edit, one masked edit and one streamed edit through the real
backend, with the cheapest settings: ``quality="low"`` on
``RETOUCH_LIVE_OPENAI_MODEL`` (default ``gpt-image-2.5-flare``, the speed
tier of the SDK's recommended replacement for gpt-image-1; OpenAI's token
prices are the same for Flare and Sunburst). It costs four low-quality
images. Run it with::

    RETOUCH_LIVE_OPENAI_KEY=sk-... .venv/bin/pytest -q tests/test_openai_live.py

What it proves that the fake cannot: that the real API accepts exactly what
Retouch sends (model, the image's own shape as size, the mask convention,
``stream``/``partial_images``, ``safety_identifier``) and answers in the
shapes Retouch reads.
"""
from __future__ import annotations

import os

import pytest
from PIL import Image

from app.backends.base import EditRequest
from app.backends.openai_backend import OpenAIBackend
from app.backends.openai_models import parse_size

KEY = os.environ.get("RETOUCH_LIVE_OPENAI_KEY")
MODEL = os.environ.get("RETOUCH_LIVE_OPENAI_MODEL", "gpt-image-2.5-flare")

pytestmark = pytest.mark.skipif(not KEY, reason="set RETOUCH_LIVE_OPENAI_KEY to run the live OpenAI contract test")


@pytest.fixture(scope="module")
def backend() -> OpenAIBackend:
    return OpenAIBackend(api_key=KEY, base_url=os.environ.get("RETOUCH_LIVE_OPENAI_BASE_URL"), model=MODEL,
                         models=[MODEL], partial_images=1, timeout=300, max_retries=1)


def photo() -> Image.Image:
    im = Image.new("RGB", (1024, 768), (120, 170, 230))
    im.paste((40, 130, 60), (0, 500, 1024, 768))
    im.paste((250, 210, 60), (760, 80, 900, 220))
    return im


def test_generate(backend):
    result = backend.edit(EditRequest("A small red apple on a white table, photo", quality="low",
                                      size="1024x1024", safety_identifier="retouch-live-test"))
    assert result.image.size == (1024, 1024)
    assert result.usage and result.usage["total_tokens"] > 0
    assert result.output["model"] == MODEL and result.output["quality"] == "low"


def test_edit_keeps_the_shape(backend):
    result = backend.edit(EditRequest("Make the sky a warm sunset", image=photo(), quality="low"))
    w, h = result.image.size
    assert abs(w / h - 4 / 3) < 0.03
    assert parse_size(result.output["size"]) == (w, h)


def test_masked_edit_keeps_outside_pixels(backend):
    image = photo()
    mask = Image.new("L", image.size, 0)
    mask.paste(255, (700, 40, 960, 260))
    result = backend.edit(EditRequest("Replace the sun with a crescent moon", image=image, mask=mask, quality="low"))
    assert result.image.size == image.size
    assert result.image.convert("RGB").getpixel((10, 10)) == image.getpixel((10, 10))


def test_streamed_edit_sends_partial_images(backend):
    frames: list[int] = []
    result = backend.edit(EditRequest("Add a kite in the sky", image=photo(), quality="low",
                                      on_partial=lambda i, frame: frames.append(i)))
    assert result.image.width > 0
    assert frames == [0] or frames == []  # "the final image may be sent before the full number of partial images"
