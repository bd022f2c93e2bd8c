"""Thread management in a real Chromium (issue 14): delete with a
confirmation dialog and Undo, the undo window running out, the sidebar's
search and date groups, and the phone drawer. Screenshots:
``tests/artifacts/browser/threads-*.png``. Skipped like ``tests/test_browser.py``
when Chromium or Playwright is missing (an error under ``CI=true``)."""
from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.test_browser import (  # noqa: F401  (browser and ui are fixtures)
    PHONE, browser, browser_test, expect, make_photo, no_horizontal_scroll, serve, shot, ui)

UNDO_SECONDS = 4


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("browser-threads")


@pytest.fixture(scope="module")
def server(data_dir):
    """``retouch serve`` (local backend) with a short undo window."""
    with serve(data_dir, RETOUCH_BACKEND="local", RETOUCH_DELETE_UNDO_SECONDS=str(UNDO_SECONDS)) as srv:
        yield srv


@pytest.fixture(scope="module")
def photo_bytes(tmp_path_factory) -> bytes:
    return make_photo(tmp_path_factory.mktemp("threads-photo") / "p.jpg", 320, 240).read_bytes()


def make_thread(page, photo_bytes: bytes, title: str) -> str:
    """A thread from a photo, through the JSON API with the page's cookie."""
    if not page.url.startswith("http"):
        page.goto("/")  # the owner cookie
    r = page.request.post("/api/v1/threads", multipart={
        "image": {"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": photo_bytes}, "title": title})
    assert r.status == 201, r.text()
    return r.json()["id"]


def backdate(data_dir: Path, thread_id: str, days: int) -> None:
    """Move the thread's last activity to noon UTC ``days`` calendar days ago
    (SQLite stores naive UTC)."""
    today = datetime.now(timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0, tzinfo=None)
    moment = min(today - timedelta(days=days), datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=days))
    with sqlite3.connect(data_dir / "data" / "retouch.db") as db:
        db.execute("UPDATE threads SET updated_at = ? WHERE id = ?", (moment.isoformat(sep=" "), thread_id))


def sidebar_titles(page) -> list[str]:
    return [t.strip() for t in page.locator("#thread-results .thread-title").all_inner_texts()]


@browser_test
def test_delete_confirm_then_undo(ui, photo_bytes):
    page = ui.page()
    keep = make_thread(page, photo_bytes, "Harbour at dawn")
    tid = make_thread(page, photo_bytes, "Lighthouse in the storm")
    page.goto(f"/t/{tid}")
    dialog = page.locator("dialog#delete-dialog")
    page.locator("#delete-open").click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Lighthouse in the storm")
    shot(page, "threads-delete-dialog")
    page.locator("#delete-cancel").click()  # Cancel keeps the thread
    expect(dialog).to_be_hidden()
    assert re.search(rf"/t/{tid}$", page.url)
    page.locator("#delete-open").click()
    page.locator("#delete-confirm").click()
    page.wait_for_url(re.compile(r"/$"))  # the ?deleted= marker is dropped from the address
    notice = page.locator("#undo-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Thread deleted.")
    expect(page.locator("#thread-results")).not_to_contain_text("Lighthouse in the storm")
    assert page.request.get(f"/api/v1/threads/{tid}").status == 404
    shot(page, "threads-undo-notice")
    page.locator("#undo-delete").click()
    page.wait_for_url(re.compile(rf"/t/{tid}$"))
    expect(page.locator("input#thread-title")).to_have_value("Lighthouse in the storm")
    expect(page.locator("#thread-results")).to_contain_text("Lighthouse in the storm")
    expect(page.locator("#thread-results")).to_contain_text("Harbour at dawn")
    assert page.request.get(f"/api/v1/threads/{keep}").status == 200


@browser_test
def test_delete_then_undo_window_runs_out(ui, photo_bytes):
    page = ui.page()
    tid = make_thread(page, photo_bytes, "Gone for good")
    page.goto(f"/t/{tid}")
    page.locator("#delete-open").click()
    page.locator("#delete-confirm").click()
    notice = page.locator("#undo-notice")
    expect(notice).to_be_visible()
    expect(notice).to_have_count(0, timeout=(UNDO_SECONDS + 3) * 1000)  # it leaves with the window
    assert page.request.post(f"/api/v1/threads/{tid}/restore").status == 404
    assert page.request.get(f"/t/{tid}").status == 404
    page.goto(f"/?deleted={tid}")
    expect(page.locator("#undo-notice")).to_have_count(0)


@browser_test
def test_search_and_date_groups(ui, photo_bytes, data_dir):
    page = ui.page(timezone_id="UTC")  # the groups follow the browser's zone (cookie retouch_tz)
    long_title = ("A very long title that starts the same way as another one and goes on and on about "
                  "the sea, the harbour, the boats and the light at dusk, version A")
    ids = {
        "today": make_thread(page, photo_bytes, "Lighthouse at night"),
        "long": make_thread(page, photo_bytes, long_title),
        "yesterday": make_thread(page, photo_bytes, "Forest path"),
        "week": make_thread(page, photo_bytes, "Mountain lake"),
        "old": make_thread(page, photo_bytes, "Old town square"),
    }
    backdate(data_dir, ids["yesterday"], 1)
    backdate(data_dir, ids["week"], 4)
    backdate(data_dir, ids["old"], 40)
    page.goto("/")
    assert any(c["name"] == "retouch_tz" and c["value"] == "UTC" for c in page.context.cookies())
    groups = page.locator("#thread-results .thread-group-title")
    expect(groups).to_have_text(["Today", "Yesterday", "Previous 7 days", "Older"])
    expect(page.locator("#thread-results li")).to_have_count(5)
    meta = page.locator(f'#thread-results a[href="/t/{ids["old"]}"] .thread-meta')
    expect(meta).to_contain_text("1 version")
    long_link = page.locator(f'#thread-results a[href="/t/{ids["long"]}"]')
    expect(long_link).to_have_attribute("title", long_title)
    box = long_link.locator(".thread-title")
    line = float(box.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)"))
    assert box.bounding_box()["height"] <= 2 * line + 2, "a long title takes more than two lines"
    shot(page, "threads-desktop")

    search = page.locator("#thread-search")
    search.fill("lighth")  # a prefix; "light" alone also finds the long title's "light at dusk"
    expect(page.locator("#thread-results .thread-title")).to_have_text(["Lighthouse at night"])
    search.fill("harbour boats")
    expect(page.locator("#thread-results li")).to_have_count(1)
    search.fill('"NEAR( -*')
    expect(page.locator("#thread-results")).to_contain_text("No threads match")
    shot(page, "threads-search-empty")
    search.fill("")
    expect(page.locator("#thread-results li")).to_have_count(5)


@browser_test
def test_phone_drawer(ui, photo_bytes):
    page = ui.page(viewport=PHONE)
    tid = make_thread(page, photo_bytes, "Drawer test thread with a rather long title to wrap")
    make_thread(page, photo_bytes, "Second thread")
    page.goto(f"/t/{tid}")
    toggle = page.locator("#threads-toggle")
    sidebar = page.locator("#sidebar")
    expect(toggle).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(sidebar).not_to_be_in_viewport()
    no_horizontal_scroll(page)
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(sidebar).to_be_in_viewport()
    expect(page.locator("#thread-search")).to_be_focused()
    expect(page.locator("#thread-results li")).to_have_count(2)
    page.wait_for_timeout(300)  # the slide-in transition
    shot(page, "threads-phone-drawer")
    page.keyboard.press("Escape")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_be_focused()
    expect(sidebar).not_to_be_in_viewport()
    toggle.click()
    page.locator("#threads-close").click()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    page.mouse.click(PHONE["width"] - 10, PHONE["height"] // 2)  # the backdrop
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    page.locator("#thread-results a", has_text="Second thread").click()
    page.wait_for_url(re.compile(r"/t/[^/]+$"))
    expect(page.locator("input#thread-title")).to_have_value("Second thread")
    no_horizontal_scroll(page)


@browser_test
def test_dark_mode_threads(ui, photo_bytes, data_dir):
    page = ui.page(color_scheme="dark")
    tid = make_thread(page, photo_bytes, "Night market")
    old = make_thread(page, photo_bytes, "Snowy street, an older thread")
    backdate(data_dir, old, 3)
    page.goto(f"/t/{tid}")
    page.locator("#delete-open").click()
    page.locator("#delete-confirm").click()
    expect(page.locator("#undo-notice")).to_be_visible()
    shot(page, "threads-dark")
    page.locator("#undo-delete").click()
    page.wait_for_url(re.compile(rf"/t/{tid}$"))
    page.locator("#delete-open").click()
    expect(page.locator("dialog#delete-dialog")).to_be_visible()
    shot(page, "threads-dark-delete-dialog")
