"""The ``diffusers`` backend end to end through the web UI: a real ``retouch
serve`` subprocess with ``RETOUCH_BACKEND=diffusers`` and
``RETOUCH_DIFFUSERS_MODEL`` pointed at a tiny InstructPix2Pix pipeline saved
in a temporary folder (tests/test_diffusers_tiny.py), driven by Debian's
Chromium through Playwright. The page shows step previews with "Step k of
n" in the pending bubble, then the final version with its seed.

Screenshots go to ``tests/artifacts/browser/`` (diffusers-*.png). Skipped
when torch or diffusers is absent (and, like every browser test, when
Chromium or Playwright is, except under ``CI=true``).
"""
from __future__ import annotations

import re

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from tests.test_browser import (  # noqa: E402,F401 (fixtures)
    Server,
    api_thread,
    browser,
    browser_test,
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
from tests.test_diffusers_tiny import build_pix2pix  # noqa: E402

#: Enough steps on the CPU (about 0.2 s each at 128x96) that previews stay up for ten seconds or more.
STEPS = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    base = tmp_path_factory.mktemp("browser-diffusers")
    model = build_pix2pix(base / "tiny-instruct-pix2pix")
    with serve(base, RETOUCH_BACKEND="diffusers", RETOUCH_DIFFUSERS_MODEL=str(model),
               RETOUCH_DIFFUSERS_DEVICE="cpu", RETOUCH_DIFFUSERS_STEPS=str(STEPS), RETOUCH_DIFFUSERS_PREVIEW_EVERY="5",
               RETOUCH_DIFFUSERS_MAX_PIXELS=str(128 * 96), HF_HUB_OFFLINE="1", HF_HOME=str(base / "hf-home"),
               OMP_NUM_THREADS="1") as srv:
        yield srv


@browser_test
def test_step_previews_then_the_final_version(ui, photo):
    page = ui.page()
    tid = new_thread(page, photo)
    n = next_version(page, tid)
    submit(page, "make it a night scene")
    partial = page.locator("section#conversation figure.version.partial img")
    expect(partial).to_be_visible(timeout=60_000)  # the first run also loads the model
    expect_loaded(partial)
    assert version_figure(page, n).count() == 0, "the final image came before any preview"
    expect(page.locator(".bubble.assistant .reply.streaming")).to_have_text(re.compile(rf"^Step \d+ of {STEPS}$"))
    expect(page.locator(".bubble.assistant .pending")).to_contain_text("Partial image")
    page.locator(".bubble.assistant .pending").last.evaluate("e => e.scrollIntoView({block: 'center'})")
    shot(page, "diffusers-01-step-preview")
    expect_version(page, n)
    expect(page.locator("figure.version.partial")).to_have_count(0)
    footer = version_figure(page, n)
    expect(footer).to_contain_text(re.compile(rf"Made in {STEPS} denoising steps on cpu with seed \d+"))
    footer.locator(".actions").scroll_into_view_if_needed()
    shot(page, "diffusers-02-final-version")
    turn = api_thread(page, tid)["turns"][-1]
    assert turn["status"] == "succeeded" and turn["backend"] == "diffusers"
    assert turn["output"]["steps"] == STEPS and isinstance(turn["output"]["seed"], int)
    version = next(v for v in api_thread(page, tid)["versions"] if v["number"] == n)
    assert (version["width"], version["height"]) == (640, 480)  # the photo's size, though it ran at 128x96
