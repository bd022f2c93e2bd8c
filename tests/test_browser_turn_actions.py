"""Turn actions in real Chromium (see ``tests/test_browser.py`` for the
set-up): Stop on a slow turn, Edit and resend making a branch in the version
tree, and a decline's suggestion filling the composer. Screenshots go to
``tests/artifacts/browser/turn-actions-*.png``."""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.server import RunningServer, free_port
from tests.test_browser import (  # noqa: F401 - fixtures
    ROOT,
    UI,
    api_thread,
    browser,
    browser_test,
    busy_false,
    expect_version,
    new_thread,
    photo,
    send,
    server,
    shot,
    submit,
    ui,
    version_node,
)

from playwright.sync_api import expect  # noqa: E402 - test_browser skips the module without it


@contextlib.contextmanager
def slow_server(base: Path) -> Iterator[RunningServer]:
    """``retouch serve`` with the slow test backend (``tests/slow_backend.py``,
    each run sleeps ``RETOUCH_TEST_SLOW_SECONDS``), SQLite."""
    port = free_port()
    data = base / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RETOUCH_", "OPENAI_"))}
    env.update(RETOUCH_DATA_DIR=str(data), RETOUCH_BACKEND="slow-test", RETOUCH_TEST_SLOW_SECONDS="6",
               RETOUCH_TURN_RATE_LIMIT="1000/minute", PYTHONUNBUFFERED="1")
    log = base / f"server-{port}.log"
    code = ("import tests.slow_backend; from app.cli import main; "
            f"raise SystemExit(main(['serve', '--host', '127.0.0.1', '--port', '{port}']))")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    srv = RunningServer(f"http://127.0.0.1:{port}", port, proc, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the slow server exited:\n{srv.log_tail()}")
            try:
                with urllib.request.urlopen(f"{srv.url}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the slow server did not start:\n{srv.log_tail()}")
            time.sleep(0.2)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def slow(tmp_path_factory) -> RunningServer:
    with slow_server(tmp_path_factory.mktemp("slow-server")) as srv:
        yield srv


@pytest.fixture
def slow_ui(browser, slow, request) -> UI:  # noqa: F811
    u = UI(browser, slow, request.node.name)
    yield u
    u.close()


def test_stop_a_slow_turn(slow_ui, photo):  # noqa: F811
    browser_test(stop_a_slow_turn)(ui=slow_ui, photo=photo)


def stop_a_slow_turn(ui, photo):  # noqa: F811
    page = ui.page()
    tid = new_thread(page, photo)
    box = page.locator("form#composer textarea#instruction")
    box.fill("make it black and white")
    page.locator("button#send").click()
    stop = page.locator(".bubble.assistant form.stop-turn button")
    expect(stop).to_be_visible()
    expect(page.locator(".bubble.assistant .pending")).to_contain_text("Working on it")
    shot(page, "turn-actions-pending-stop")
    stop.click()
    stopped = page.locator(".bubble.assistant p.cancelled")
    expect(stopped).to_contain_text("Stopped.")
    expect(stopped).to_contain_text("no version was made")
    busy_false(page)
    shot(page, "turn-actions-stopped")
    time.sleep(7)  # the slow run ends meanwhile: its result must not appear
    thread = api_thread(page, tid)
    assert [v["number"] for v in thread["versions"]] == [1]
    assert thread["turns"][-1]["status"] == "cancelled"
    page.reload()
    expect(page.locator(".bubble.assistant p.cancelled")).to_contain_text("Stopped.")
    expect(page.locator("section#conversation figure.version")).to_have_count(1)


@browser_test
def test_edit_and_resend_makes_a_branch(ui, photo):  # noqa: F811
    page = ui.page()
    tid = new_thread(page, photo)
    send(page, tid, "make it black and white")
    send(page, tid, "increase the contrast")
    turn = page.locator("section#conversation li.turn").filter(has_text="make it black and white")
    turn.locator("button.edit-turn").click()
    box = page.locator("form.edit-instruction textarea")
    expect(box).to_be_focused()
    expect(box).to_have_value("make it black and white")
    # Escape gives the bubble back unchanged
    page.keyboard.press("Escape")
    expect(page.locator("form.edit-instruction")).to_have_count(0)
    expect(turn.locator("p.instruction")).to_have_text("make it black and white")
    turn.locator("button.edit-turn").click()
    box = page.locator("form.edit-instruction textarea")
    expect(box).to_be_focused()  # focused (by static/turn_actions.js) before typing, as a person sees it
    box.fill("make it sepia")
    expect(box).to_have_value("make it sepia")
    shot(page, "turn-actions-edit-form")
    page.locator("form.edit-instruction button[type=submit]").click()
    expect_version(page, 4)
    thread = api_thread(page, tid)
    parents = {v["number"]: v["parent"] for v in thread["versions"]}
    assert parents == {1: None, 2: 1, 3: 2, 4: 1}
    expect(version_node(page, 4)).to_be_visible()
    expect(page.locator('nav#version-tree ol.lane[data-from="1"]')).to_have_count(1)
    expect(page.locator("nav#version-tree .tree-title")).to_contain_text("1 branch")
    # the original instruction is still there
    expect(page.locator("section#conversation p.instruction", has_text="make it black and white")).to_have_count(1)
    # local is deterministic: no Regenerate
    expect(page.locator("form.regenerate-turn")).to_have_count(0)
    shot(page, "turn-actions-branch")


@browser_test
def test_decline_suggestion_fills_the_composer(ui, photo):  # noqa: F811
    page = ui.page()
    tid = new_thread(page, photo)
    submit(page, "draw a dragon on the roof")
    busy_false(page)
    declined = page.locator(".bubble.assistant p.declined")
    expect(declined).to_contain_text("Can't do that")
    expect(declined).not_to_contain_text("Things I can do instead")
    buttons = page.locator(".suggestions button.suggestion")
    expect(buttons).to_have_count(3)
    shot(page, "turn-actions-suggestions")
    buttons.filter(has_text="make it black and white").click()
    box = page.locator("form#composer textarea#instruction")
    expect(box).to_have_value("make it black and white")
    expect(box).to_be_focused()
    page.locator("button#send").click()
    expect_version(page, 2)
    assert api_thread(page, tid)["turns"][-1]["instruction"] == "make it black and white"
