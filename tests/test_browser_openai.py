"""Real-browser tests of the OpenAI features: a real ``retouch serve``
subprocess with the ``openai`` backend, pointed at the validating fake OpenAI
server (tests/fake_openai.py) running in this process, driven by Debian's
Chromium through Playwright.

- Streamed partial images arrive in the pending bubble before the final
  image, with the fake pacing its events.
- The model picker shows only what the chosen model takes, and "Draw to
  guide" (markup) works for models that take it and is disabled, with the
  reason, for those that do not.

Screenshots go to ``tests/artifacts/browser/`` (openai-*.png).
"""
from __future__ import annotations

import io
import math

import pytest
from PIL import Image

from tests.fake_openai import FakeOpenAI
from tests.test_browser import (  # noqa: F401 (fixtures)
    PHONE,
    Server,
    _painted_pixels,
    _zigzag,
    browser,
    browser_test,
    busy_false,
    expect,
    expect_loaded,
    expect_version,
    new_thread,
    next_version,
    photo,
    serve,
    shot,
    submit,
    ui,
    version_figure,
)

#: Seconds the fake waits before each streamed event: partial image 1, 2, then the final one.
EVENT_DELAY = 2.0


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI(image_size=(640, 480)) as f:
        yield f


@pytest.fixture(scope="module")
def server(tmp_path_factory, fake) -> Server:
    """``retouch serve`` with the openai backend against the fake (SQLite)."""
    with serve(tmp_path_factory.mktemp("browser-openai-server"), RETOUCH_BACKEND="openai",
               OPENAI_API_KEY="sk-test-browser", OPENAI_BASE_URL=fake.base_url, RETOUCH_OPENAI_TIMEOUT="60") as srv:
        yield srv


@browser_test
def test_partial_images_arrive_before_the_final_image(ui, photo, fake):
    fake.event_delay = EVENT_DELAY
    try:
        page = ui.page()
        tid = new_thread(page, photo)
        n = next_version(page, tid)
        submit(page, "add a red kite in the sky")
        partial = page.locator("section#conversation figure.version.partial img")
        expect(partial).to_be_visible(timeout=EVENT_DELAY * 1000 + 15000)
        expect_loaded(partial)
        assert version_figure(page, n).count() == 0, "the final image came before any partial image"
        first_index = int(page.locator("figure.version.partial").get_attribute("data-partial"))
        expect(page.locator(".bubble.assistant .pending")).to_contain_text(f"Partial image {first_index + 1}")
        # The frame shown is the fake's partial colour, not the final colour.
        png = page.locator("figure.version.partial img").screenshot()
        shown = Image.open(io.BytesIO(png)).convert("RGB")
        px = shown.getpixel((shown.width // 2, shown.height // 2))
        expected = fake.partial_colors[first_index]
        assert max(abs(a - b) for a, b in zip(px, expected)) < 40, (px, expected)
        shot(page, "openai-01-partial-image")
        expect_version(page, n)
        expect(page.locator("figure.version.partial")).to_have_count(0)
        shot(page, "openai-02-final-image")
        req = fake.requests[-1]
        assert req.param("stream") == "true" and req.param("partial_images") == "2"
    finally:
        fake.event_delay = 0.0


@browser_test
def test_model_picker_and_draw_to_guide(ui, photo, fake):
    page = ui.page()
    tid = new_thread(page, photo)
    page.locator("details#options summary").click()
    model = page.locator("select#model")
    expect(model).to_have_value("gpt-image-2.5-sunburst")
    assert model.locator("option").all_inner_texts() == ["gpt-image-2.5-sunburst", "gpt-image-2.5-flare",
                                                         "gpt-image-2"]
    size = page.locator("select#size")
    expect(size).to_have_value("")  # "match the image", the default for edits
    expect(size.locator("option").first).to_have_text("match the image")
    quality = page.locator("select#quality")
    expect(quality.locator('option:text-is("max")')).to_be_enabled()
    shot(page, "openai-03-options")

    # gpt-image-2: no xhigh/max, no markup (the draw mode says why).
    model.select_option("gpt-image-2")
    expect(quality.locator('option:text-is("max")')).to_be_disabled()
    expect(quality.locator('option:text-is("high")')).to_be_enabled()
    page.locator("button#mask-toggle").click()
    draw = page.locator("button#mode-draw")
    expect(draw).to_be_disabled()
    assert "does not take drawings" in draw.get_attribute("title")

    # Back to Sunburst: draw a circle to guide the edit (Options closed, so the composer covers less).
    model.select_option("gpt-image-2.5-sunburst")
    page.locator("details#options summary").click()
    expect(draw).to_be_enabled()
    draw.click()
    expect(draw).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#mask-editor-title")).to_have_text("Draw to guide the edit")
    canvas = page.locator("canvas#mask-canvas")
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    cx, cy, r = box["x"] + box["width"] * .3, box["y"] + box["height"] * .4, box["width"] * .08
    _zigzag(page, [(cx + r * math.cos(t / 12 * 2 * math.pi), cy + r * math.sin(t / 12 * 2 * math.pi))
                   for t in range(13)])
    assert _painted_pixels(canvas) > 0
    expect(page.locator("#mask-status")).to_contain_text("Drawing added")
    shot(page, "openai-04-draw-to-guide")
    n = next_version(page, tid)
    submit(page, "put a hat here")
    expect_version(page, n)
    req = fake.requests[-1]
    assert req.markup is not None and req.mask is None and req.param("model") == "gpt-image-2.5-sunburst"
    markup = Image.open(io.BytesIO(req.markup.data))
    assert markup.mode == "RGBA" and markup.size == (640, 480)
    alpha = markup.getchannel("A")
    assert alpha.getextrema() == (0, 255)
    # The user bubble shows the drawing that was sent.
    expect(page.locator('.turn-attachments img[alt="Drawing that guided the edit"]')).to_be_visible()
    shot(page, "openai-05-after-markup")


@browser_test
def test_options_on_a_phone_in_dark_mode(ui, photo):
    page = ui.page(viewport=PHONE, color_scheme="dark")
    new_thread(page, photo)
    page.locator("details#options summary").click()
    expect(page.locator("select#model")).to_be_visible()
    page.locator("button#mask-toggle").click()
    expect(page.locator("button#mode-draw")).to_be_visible()
    busy_false(page)
    shot(page, "openai-06-phone-dark")
