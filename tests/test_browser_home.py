"""The home page and honest options in real Chromium (issue 14).

A real ``retouch serve`` with the local backend (and an OpenAI key that is
never used, so the composer offers a backend picker): starter prompts fill
the description field, the large drop zone starts a thread from a photo
chosen with the file picker, dropped on it, or opened from the keyboard,
the newest threads are listed with thumbnails, a local turn asked for
1536×1024 at high quality says in its footer what the offline editor did
instead, and the composer names the backend and model that will run.
Screenshots: tests/artifacts/browser/home-*.png and options-*.png.
"""
from __future__ import annotations

import base64
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.test_browser import (  # noqa: F401 (fixtures)
    PHONE,
    Server,
    browser,
    browser_test,
    busy_false,
    expect,
    expect_version,
    new_thread,
    photo,
    serve,
    shot,
    submit,
    ui,
    version_figure,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    # The key is never used (no OpenAI turn runs); it only makes the composer offer a backend picker.
    with serve(tmp_path_factory.mktemp("browser-home-server"), RETOUCH_BACKEND="local",
               OPENAI_API_KEY="sk-test-home", OPENAI_BASE_URL="http://127.0.0.1:9/v1") as srv:
        yield srv


def thread_id(page) -> str:
    page.wait_for_url(re.compile(r"/t/[^/?#]+/?$"))
    return urlsplit(page.url).path.rstrip("/").rsplit("/", 1)[1]


def drop_file(page, selector: str, path: Path, mime: str = "image/jpeg") -> None:
    """Drop ``path`` on ``selector`` the way a file dragged from the desktop arrives: dragenter,
    dragover and drop events carrying a DataTransfer with the file."""
    data = base64.b64encode(path.read_bytes()).decode()
    transfer = page.evaluate_handle(
        """([data, name, type]) => {
             const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
             const dt = new DataTransfer();
             dt.items.add(new File([bytes], name, { type }));
             return dt;
           }""", [data, path.name, mime])
    zone = page.locator(selector)
    for event in ("dragenter", "dragover", "drop"):
        zone.dispatch_event(event, {"dataTransfer": transfer})


@browser_test
def test_the_home_page_starters_drop_zone_and_recent_threads(ui, photo):
    page = ui.page()
    page.goto("/")
    expect(page.locator(".home-recent")).to_contain_text("Your threads will show here")

    # A starter fills the description field (and nothing is sent).
    starter = page.locator("button.starter").first
    expect(starter).to_be_visible()
    text = starter.get_attribute("data-starter")
    starter.click()
    expect(page.locator("textarea#prompt")).to_have_value(text)
    expect(page.locator("textarea#prompt")).to_be_focused()
    assert urlsplit(page.url).path == "/"

    # Click-to-choose (the file picker) starts a thread from the photo right away.
    page.locator("textarea#prompt").fill("")
    page.set_input_files("#home-drop-input", str(photo))
    first = thread_id(page)
    busy_false(page)
    expect(version_figure(page, 1)).to_be_visible()

    # A photo dropped on the zone, with a description: version 1, then the description as the first edit.
    page.goto("/")
    page.locator("textarea#prompt").fill("make it black and white")
    drop_file(page, "#home-drop", photo)
    second = thread_id(page)
    assert second != first
    expect_version(page, 2)

    # The keyboard opens the file picker from the zone.
    page.goto("/")
    page.wait_for_load_state("load")
    with page.expect_file_chooser() as chooser:
        page.locator("#home-drop").press("Enter")  # focuses the zone and presses at once: nothing can take the focus between
    assert not chooser.value.is_multiple()

    # Recent threads: newest first, with thumbnails, linking to them.
    links = page.locator(".recent-list a.recent-link")
    expect(links).to_have_count(2)
    assert links.nth(0).get_attribute("href") == f"/t/{second}"
    assert links.nth(1).get_attribute("href") == f"/t/{first}"
    page.wait_for_function("""() => {
        const imgs = [...document.querySelectorAll('.recent-list img')];
        return imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth > 0);
    }""")
    page.locator("button.starter").nth(1).click()
    shot(page, "home-desktop")

    # At most six, newest first.
    for n in range(5):
        new_thread(page, photo)
    page.goto("/")
    expect(links).to_have_count(6)
    assert links.nth(5).get_attribute("href") != f"/t/{first}"
    links.nth(0).click()
    page.wait_for_url(re.compile(r"/t/[^/?#]+/?$"))


@browser_test
def test_the_home_page_on_a_phone_and_in_the_dark(ui, photo):
    page = ui.page(viewport=PHONE)
    page.goto("/")
    for sel in ("#home-drop", "button.starter >> nth=0", ".home-recent"):
        box = page.locator(sel).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5, (sel, box)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.locator("button.starter").first.click()
    expect(page.locator("textarea#prompt")).not_to_have_value("")
    page.locator(".home-drop-card").evaluate("e => e.scrollIntoView({block: 'center'})")
    shot(page, "home-phone")

    dark = ui.page(color_scheme="dark")
    dark.goto("/")
    bg = dark.evaluate("getComputedStyle(document.querySelector('#home-drop')).backgroundColor")
    assert bg not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"), bg
    shot(dark, "home-dark")


@browser_test
def test_a_local_turn_says_which_options_it_ignored_and_the_composer_names_the_backend(ui, photo):
    page = ui.page()
    new_thread(page, photo)
    label = page.locator("#options-model")
    expect(label).to_have_text("Local (offline)")
    page.locator("details#options summary").click()

    # The label follows the backend picker, with the model that will run.
    backend = page.locator("select#backend")
    backend.select_option("openai")
    expect(label).to_have_text(re.compile(r"^OpenAI images · gpt-image-\S+$"))
    model = page.locator("select#model")
    other = [o for o in model.locator("option").evaluate_all("os => os.filter(o => !o.disabled).map(o => o.value)")
             if o != model.input_value()]
    if other:
        model.select_option(other[0])
        expect(label).to_have_text(f"OpenAI images · {other[0]}")
    backend.select_option("local")
    expect(label).to_have_text("Local (offline)")

    # Asked for 1536×1024 at high quality: the offline editor keeps the photo's size and says so.
    page.locator("select#size").select_option("1536x1024")
    page.locator("select#quality").select_option("high")
    submit(page, "make it black and white")
    expect_version(page, 2)
    note = version_figure(page, 2).locator(".option-note")
    expect(note).to_have_text("Asked for 1536×1024 at high quality; the offline editor ignores the size setting "
                              "(the result is 640×480) and has no quality setting.")
    page.locator("details#options summary").click()  # closed, so the note and the label show
    version_figure(page, 2).scroll_into_view_if_needed()
    shot(page, "options-desktop")

    # A turn that asked for nothing the backend ignores has no note.
    page.locator("details#options summary").click()
    page.locator("select#size").select_option("")
    page.locator("select#quality").select_option("")
    submit(page, "flip it horizontally")
    expect_version(page, 3)
    expect(version_figure(page, 3).locator(".option-note")).to_have_count(0)

    # The same thread (the same owner) on a phone, then in the dark colour scheme.
    page.set_viewport_size(PHONE)
    page.reload()
    busy_false(page)
    version_figure(page, 2).locator(".option-note").evaluate("e => e.scrollIntoView({block: 'center'})")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, "options-phone")
    page.set_viewport_size({"width": 1280, "height": 860})
    page.emulate_media(color_scheme="dark")
    page.reload()
    busy_false(page)
    version_figure(page, 2).locator(".option-note").evaluate("e => e.scrollIntoView({block: 'center'})")
    shot(page, "options-dark")
