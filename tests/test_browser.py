"""Real-browser tests: a real ``retouch serve`` subprocess (SQLite, local
backend) driven by Debian's Chromium through Playwright.

Every flow of the web UI is exercised the way a person uses it: upload a
photo, chat edits, watch results arrive without a reload, open versions,
revert and branch, paint a region and edit only it, compare, share, fork,
revoke, keyboard-only sending, a phone viewport and the dark colour scheme.
Every test also fails on any console error or uncaught page error (the
strict Content-Security-Policy reports violations there).

Screenshots of the main screens go to ``tests/artifacts/browser/`` (git-ignored).
The module is skipped when Chromium or Playwright is missing, except under
``CI=true``, where that is an error.
"""
from __future__ import annotations

import contextlib
import functools
import io
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from bench.server import RunningServer, ServerDidNotStart, running_server
from tests.axe import check_axe_both_schemes
from tests.conftest import IN_CI

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "browser"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 375, "height": 812}
TIMEOUT_MS = 30_000  # the box is slow; local edits take 0.1-2 s, polling adds ~1 s

try:
    from playwright.sync_api import BrowserContext, Page, expect, sync_playwright
except ImportError as exc:  # pragma: no cover - depends on the machine
    _missing = f"playwright is not installed: {exc}"
else:
    _missing = None if CHROMIUM.exists() else f"{CHROMIUM} is missing"

if _missing:  # pragma: no cover - depends on the machine
    if IN_CI:
        pytest.fail(f"the browser tests need Chromium and Playwright under CI=true: {_missing}", pytrace=False)
    pytest.skip(_missing, allow_module_level=True)


# --------------------------------------------------------------------------- fixtures


Server = RunningServer  # the url, process and log of a running server


@contextlib.contextmanager
def serve(base: Path, **env_extra: str) -> Iterator[Server]:
    """``retouch serve`` with its own data dir under ``base`` (SQLite) and
    ``env_extra`` (:func:`bench.server.running_server`); a failed start
    fails the test with the server's log."""
    try:
        with running_server(base / "data", {"RETOUCH_TURN_RATE_LIMIT": "1000/minute", **env_extra},
                            stop_timeout=15) as srv:
            yield srv
    except ServerDidNotStart as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    """``retouch serve`` with the local backend."""
    with serve(tmp_path_factory.mktemp("browser-server"), RETOUCH_BACKEND="local") as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def make_photo(path: Path, w: int = 640, h: int = 480, seed: int = 1234) -> Path:
    """A photo-like JPEG: a gradient sky, hills, a sun, a house and noise, so
    colour edits visibly change it."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h)[:, None]
    sky = np.zeros((h, w, 3), dtype=np.float32)
    sky[..., 0] = 70 + 110 * y
    sky[..., 1] = 130 + 80 * y
    sky[..., 2] = 235 - 40 * y
    im = Image.fromarray(sky.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    d.polygon([(0, h), (0, int(h * .62)), (w * .3, h * .45), (w * .55, h * .6), (w * .8, h * .5), (w, h * .58), (w, h)],
              fill=(46, 120, 52))
    d.ellipse((w * .72, h * .08, w * .86, h * .27), fill=(255, 214, 60))
    d.rectangle((w * .18, h * .55, w * .36, h * .82), fill=(190, 60, 45))
    d.polygon([(w * .16, h * .56), (w * .27, h * .42), (w * .38, h * .56)], fill=(120, 40, 30))
    d.rectangle((w * .25, h * .68, w * .29, h * .82), fill=(80, 50, 30))
    d.ellipse((w * .52, h * .62, w * .68, h * .9), fill=(230, 120, 200))
    im = im.filter(ImageFilter.GaussianBlur(1.2))
    noisy = np.asarray(im).astype(np.int16) + rng.integers(-12, 13, (h, w, 3))
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)
    return path


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    return make_photo(tmp_path_factory.mktemp("browser-photo") / "holiday.jpg")


class UI:
    """Browser contexts of one test, with their console errors collected."""

    def __init__(self, browser, server: Server, name: str) -> None:
        self.browser, self.server, self.name = browser, server, name
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []
        self.allowed: list[re.Pattern] = []

    def context(self, **kwargs) -> BrowserContext:
        kwargs.setdefault("viewport", DESKTOP)
        ctx = self.browser.new_context(base_url=self.server.url, accept_downloads=True, **kwargs)
        ctx.set_default_timeout(TIMEOUT_MS)
        ctx.set_default_navigation_timeout(TIMEOUT_MS)
        ctx.on("console", lambda msg: msg.type == "error" and self.errors.append(
            f"console error on {msg.page.url if msg.page else '?'}: {msg.text} {msg.location}"))
        ctx.on("weberror", lambda err: self.errors.append(
            f"uncaught error on {err.page.url if err.page else '?'}: {err.error}"))
        # A confirm() before a destructive action (revoke) is answered "OK", like a person would.
        ctx.on("page", lambda page: page.on("dialog", lambda dialog: dialog.accept()))
        self.contexts.append(ctx)
        return ctx

    def page(self, **kwargs) -> Page:
        return self.context(**kwargs).new_page()

    def allow_console_error(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]

    def dump_failure(self) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for i, ctx in enumerate(self.contexts):
            for j, page in enumerate(ctx.pages):
                try:
                    path = ARTIFACTS / f"FAILED-{self.name}-{i}{j}.png"
                    page.screenshot(path=str(path), full_page=True, caret="initial")
                    print(f"screenshot of {page.url}: {path}")
                except Exception as exc:  # noqa: BLE001 - best effort diagnostics
                    print(f"(no screenshot of context {i} page {j}: {exc})")
        if self.errors:
            print("console errors:\n  " + "\n  ".join(self.errors))
        print(f"--- server log (last lines) ---\n{self.server.log_tail()}")

    def close(self) -> None:
        for ctx in self.contexts:
            try:
                ctx.close()
            except Exception:  # noqa: BLE001
                pass


@pytest.fixture
def ui(browser, server, request) -> UI:
    u = UI(browser, server, request.node.name)
    yield u
    u.close()


def browser_test(fn):
    """Run a test that uses ``ui``: on failure print the server log tail,
    console errors and screenshots; on success assert no console errors."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        u: UI = kwargs["ui"]
        try:
            fn(*args, **kwargs)
            errors = u.unexpected_errors()
            assert not errors, "console errors:\n" + "\n".join(errors)
        except BaseException:
            u.dump_failure()
            raise

    return wrapper


# --------------------------------------------------------------------------- helpers


def shot(page: Page, name: str, full_page: bool = False) -> None:
    """Save what the viewport shows (full-page shots misplace the sticky top bar and composer)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # caret="initial": hiding the caret leaves style="" on the focused element, and htmx's settle
    # step then copies that attribute with setAttribute, which the CSP reports as a violation.
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page, caret="initial")
    # Every screenshotted state must also pass axe-core's WCAG 2.1 A/AA rules, light and dark (tests/axe.py).
    check_axe_both_schemes(page, f"screenshot {name}")


def expect_loaded(img) -> None:
    """The <img> has finished loading a real image."""
    expect(img).to_have_js_property("complete", True)
    assert img.evaluate("e => e.naturalWidth") > 0, f"image failed to load: {img.get_attribute('src')}"


def thread_url(tid: str) -> re.Pattern:
    return re.compile(rf"/t/{re.escape(tid)}/?$")


def busy_false(page: Page) -> None:
    expect(page.locator("section#conversation")).to_have_attribute("aria-busy", "false")


def new_thread(page: Page, photo: Path, prompt: str = "") -> str:
    """Start a thread from ``photo`` on the home page; return its id."""
    page.goto("/")
    if prompt:
        page.locator("textarea#prompt").fill(prompt)
    page.set_input_files("input#image", str(photo))
    page.locator("#new-thread button[type=submit]").click()
    page.wait_for_url(re.compile(r"/t/[^/?#]+/?$"))
    tid = urlsplit(page.url).path.rstrip("/").rsplit("/", 1)[1]
    busy_false(page)
    expect(version_figure(page, 1)).to_be_visible()
    return tid


def api_thread(page_or_ctx, tid: str) -> dict:
    resp = page_or_ctx.request.get(f"/api/v1/threads/{tid}")
    assert resp.status == 200, f"GET /api/v1/threads/{tid}: {resp.status} {resp.text()[:300]}"
    return resp.json()


def api_image(page_or_ctx, tid: str, n: int) -> Image.Image:
    resp = page_or_ctx.request.get(f"/api/v1/threads/{tid}/versions/{n}/image")
    assert resp.status == 200, f"version {n} image: {resp.status}"
    im = Image.open(io.BytesIO(resp.body()))
    im.load()
    return im


def version_figure(page: Page, n: int):
    return page.locator(f'section#conversation figure.version[data-version="{n}"]')


def expect_version(page: Page, n: int) -> None:
    """Version ``n`` is shown as a result in the conversation and nothing is pending."""
    img = version_figure(page, n).locator("img")
    expect(img).to_have_attribute("alt", re.compile(rf"^Version {n}\b"))
    busy_false(page)
    expect_loaded(version_figure(page, n).locator("img"))


def next_version(page: Page, tid: str) -> int:
    return max((v["number"] for v in api_thread(page, tid)["versions"]), default=0) + 1


def submit(page: Page, instruction: str) -> None:
    """Type ``instruction`` into the composer and send it; wait until the
    new turn is on the page and the composer is cleared."""
    busy_false(page)
    turns = page.locator("section#conversation li.turn")
    before = turns.count()
    box = page.locator("form#composer textarea#instruction")
    box.fill(instruction)
    page.locator("button#send").click()
    expect(turns).to_have_count(before + 1)
    expect(box).to_have_value("")


def send(page: Page, tid: str, instruction: str) -> int:
    """Send an edit and wait for its result; return the new version number."""
    n = next_version(page, tid)
    submit(page, instruction)
    expect_version(page, n)
    return n


def pending_or_result(page: Page, n: int) -> bool:
    """Wait for the pending bubble (with its elapsed time) or, when the edit
    was quicker than we looked, the result. True when pending was seen."""
    pending = page.locator(".bubble.assistant .pending")
    either = pending.locator(".elapsed").or_(version_figure(page, n))
    expect(either.first).to_be_visible()
    # Checked in one go, as the result may replace the bubble at any moment.
    busy = page.evaluate("""() => document.querySelector('.bubble.assistant .pending') ?
        document.querySelector('section#conversation').getAttribute('aria-busy') : null""")
    if busy is None:
        return False
    assert busy == "true", f"a turn is pending but #conversation has aria-busy={busy!r}"
    try:
        expect(pending.locator(".elapsed").first).to_have_text(re.compile(r"^\s*\d+\s*s\s*$"), timeout=3000)
    except AssertionError:
        if pending.count():  # still pending, but the elapsed time does not read "N s"
            raise
    return True


def no_horizontal_scroll(page: Page) -> None:
    sw, iw = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if sw > iw:
        wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
            .slice(0, 8).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
                (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\\s+/).join('.') : '') +
                ' right=' + Math.round(e.getBoundingClientRect().right))""")
        pytest.fail(f"{page.url}: horizontal scroll, scrollWidth {sw} > innerWidth {iw}; too wide: {wide}")


def version_node(page: Page, n: int):
    return page.locator(f'nav#version-tree a.version-node[data-version="{n}"]')


def open_version_page(page: Page, n: int) -> None:
    """Go to version ``n``'s page the way a person does: a click on its tree node opens the lightbox
    (static/lightbox.js), whose "Version page" link navigates (htmx, pushed URL)."""
    version_node(page, n).click()
    expect(page.locator("dialog#lightbox")).to_have_attribute("data-version", str(n))
    page.locator("dialog#lightbox a#lightbox-page").click()
    expect(page.locator("dialog#lightbox")).not_to_be_visible()


def set_marker(page: Page) -> None:
    page.evaluate("window.__marker = 1")


def assert_marker(page: Page) -> None:
    assert page.evaluate("window.__marker") == 1, "the page reloaded (window.__marker is gone)"


# --------------------------------------------------------------------------- flows


@browser_test
def test_create_thread_from_photo(ui, photo):
    """Flow 1: upload a photo; version 1 appears; the sidebar lists the thread
    with a thumbnail and a title; "New thread" goes home."""
    page = ui.page()
    page.goto("/")
    expect(page.locator("form#new-thread")).to_be_visible()
    expect(page.locator("form#new-thread textarea#prompt")).to_be_visible()
    expect(page.locator("form#new-thread input#image")).to_have_attribute("type", "file")
    expect(page.locator("#new-thread button[type=submit]")).to_have_text(re.compile(r"^\s*Start\s*$"))
    shot(page, "01-home")

    tid = new_thread(page, photo)
    expect_version(page, 1)
    thread = api_thread(page, tid)
    assert thread["head_version"] == 1
    assert [(v["number"], v["width"], v["height"]) for v in thread["versions"]] == [(1, 640, 480)]

    # The title defaults to the file name.
    expect(page.locator("input#thread-title")).to_have_value(re.compile(r"holiday"))
    assert "holiday" in thread["title"]

    entry = page.locator(f'nav#thread-list a.thread-link[href$="/t/{tid}"]')
    expect(entry).to_have_count(1)
    expect(entry.locator(".thread-title")).to_have_text(thread["title"])
    thumb = entry.locator("img")
    expect(thumb).to_have_count(1)
    expect(thumb).to_be_visible()
    expect_loaded(thumb)
    expect(version_node(page, 1).locator("img")).to_have_count(1)
    expect(page.locator("button#send")).to_have_text(re.compile(r"Send"))
    expect(page.locator("button#mask-toggle")).to_have_text(re.compile(r"Select region"))
    shot(page, "02-thread-after-upload")

    expect(page.locator("a#new-thread-link")).to_have_text(re.compile(r"New thread"))
    page.locator("a#new-thread-link").click()
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator("form#new-thread")).to_be_visible()
    expect(page.locator(f'nav#thread-list a.thread-link[href$="/t/{tid}"] img')).to_have_count(1)


@browser_test
def test_three_edits_arrive_without_reload(ui, photo):
    """Flows 2 and 3: three instructions, each result appears by itself,
    pending bubble first, and the page never reloads."""
    page = ui.page()
    streams = []  # the open page listens to the thread's server-sent events (static/live.js)
    page.on("request", lambda r: r.url.endswith("/events") and streams.append((r.url, r.resource_type)))
    tid = new_thread(page, photo)
    set_marker(page)
    instructions = ["make it black and white", "increase the contrast", "rotate it 90 degrees clockwise"]
    saw_pending = False
    for i, instruction in enumerate(instructions):
        n = i + 2
        submit(page, instruction)
        if pending_or_result(page, n):
            if not saw_pending:
                shot(page, "03-pending-turn")
            saw_pending = True
        expect_version(page, n)
        last = page.locator("section#conversation li.turn").last
        expect(last.locator(".bubble.user .instruction")).to_have_text(instruction)
        expect(last.locator(f'figure.version[data-version="{n}"]')).to_be_visible()
        assert_marker(page)
    assert saw_pending, "no pending bubble (.bubble.assistant .pending .elapsed) was ever shown"
    # One stream, opened with the page and kept open through all three turns.
    assert [(u.rsplit("/", 3)[-3:], t) for u, t in streams] == [(["t", tid, "events"], "eventsource")], streams
    shot(page, "04-three-turns-done")

    thread = api_thread(page, tid)
    assert thread["head_version"] == 4
    assert [(v["number"], v["parent"]) for v in thread["versions"]] == [(1, None), (2, 1), (3, 2), (4, 3)]
    v4 = thread["versions"][3]
    assert (v4["width"], v4["height"]) == (480, 640), "rotating should swap the sides"
    bw = np.asarray(api_image(page, tid, 2).convert("RGB")).astype(int)
    assert (bw[..., 0] == bw[..., 1]).all() and (bw[..., 1] == bw[..., 2]).all(), "version 2 is not grey"
    expect(page.locator("nav#version-tree a.version-node")).to_have_count(4)
    expect(version_node(page, 4)).to_have_class(re.compile(r"\bis-head\b"))
    expect(version_node(page, 4)).to_have_attribute("aria-current", "true")


@browser_test
def test_declined_turn_offers_try_again_and_attachments(ui, photo, tmp_path):
    """A decline is shown with "Try again"; attachments show chips (and
    clear after sending); the options exist."""
    page = ui.page()
    tid = new_thread(page, photo)
    reference = make_photo(tmp_path / "reference.jpg", 320, 240, seed=7)
    with page.expect_file_chooser() as chooser:
        page.locator("button#attach").click()
    assert chooser.value.element.evaluate("e => e.id") == "attach-input"
    assert chooser.value.is_multiple()
    page.set_input_files("#attach-input", [str(photo), str(reference)])
    chips = page.locator("ul#attachments li")
    expect(chips).to_have_count(2)
    chips.filter(has_text="holiday").get_by_role("button").click()  # its remove button
    expect(chips).to_have_count(1)
    expect(chips).to_contain_text("reference")
    page.locator("details#options summary").click()
    expect(page.locator("details#options select#size")).to_be_visible()
    expect(page.locator("details#options select#quality")).to_be_visible()

    submit(page, "add a dragon")
    busy_false(page)
    last = page.locator("section#conversation li.turn").last
    expect(last.locator(".declined")).to_be_visible()
    expect(chips).to_have_count(0)
    retry = last.get_by_role("button", name="Try again")
    expect(retry).to_be_visible()
    turns = page.locator("section#conversation li.turn")
    before = turns.count()
    retry.click()
    expect(turns).to_have_count(before + 1)
    busy_false(page)
    expect(turns.last.locator(".declined")).to_be_visible()
    thread = api_thread(page, tid)
    assert [t["status"] for t in thread["turns"]][-2:] == ["declined", "declined"]
    assert thread["turns"][-2]["reference_count"] == 1
    assert thread["head_version"] == 1


@browser_test
def test_viewer_history_revert_and_branch(ui, photo):
    """Flows 4 and 5, plus back/forward: open version 1 from the tree, go
    back and forward, download it, continue from it, then edit: a branch."""
    page = ui.page()
    tid = new_thread(page, photo)
    send(page, tid, "make it black and white")
    send(page, tid, "increase the contrast")

    open_version_page(page, 1)
    page.wait_for_url(re.compile(rf"/t/{tid}/versions/1$"))
    expect(page.locator("section#viewer")).to_be_visible()
    expect_loaded(page.locator("section#viewer img#viewer-image"))
    expect(page.locator("button#continue-here")).to_have_text(re.compile(r"Continue from here"))
    shot(page, "05-version-viewer")

    page.go_back()
    page.wait_for_url(thread_url(tid))
    expect(page.locator("section#conversation")).to_be_visible()
    expect_version(page, 3)
    page.go_forward()
    page.wait_for_url(re.compile(rf"/t/{tid}/versions/1$"))
    expect(page.locator("section#viewer")).to_be_visible()
    expect_loaded(page.locator("img#viewer-image"))

    download = page.locator("a#download")
    expect(download).to_have_attribute("href", re.compile(r"\?download=1$"))
    with page.expect_download() as info:
        download.click()
    assert info.value.suggested_filename.endswith("-v1.png"), info.value.suggested_filename
    saved = info.value.path()
    original = page.request.get(f"/api/v1/threads/{tid}/versions/1/image").body()
    # the download carries C2PA Content Credentials (app/provenance.py): the same pixels, signed
    downloaded = Path(saved).read_bytes()
    assert b"caBX" in downloaded
    assert Image.open(io.BytesIO(downloaded)).tobytes() == Image.open(io.BytesIO(original)).tobytes()

    page.locator("button#continue-here").click()
    page.wait_for_url(thread_url(tid))
    busy_false(page)
    head = version_node(page, 1)
    expect(head).to_have_class(re.compile(r"\bis-head\b"))
    expect(head).to_have_attribute("aria-current", "true")
    expect(version_node(page, 3)).not_to_have_class(re.compile(r"\bis-head\b"))
    assert api_thread(page, tid)["head_version"] == 1
    shot(page, "06-after-revert")

    # The head version's viewer offers no "Continue from here".
    page.goto(f"/t/{tid}/versions/1")
    expect(page.locator("section#viewer")).to_be_visible()
    expect(page.locator("button#continue-here")).to_have_count(0)
    page.goto(f"/t/{tid}")

    n = send(page, tid, "make it sepia")
    assert n == 4
    thread = api_thread(page, tid)
    assert thread["head_version"] == 4
    assert {v["number"]: v["parent"] for v in thread["versions"]}[4] == 1
    lanes = page.locator("nav#version-tree ol.lane")
    expect(lanes).to_have_count(2)
    branch = page.locator('nav#version-tree ol.lane[data-from="1"]')
    expect(branch).to_have_count(1)
    expect(branch.locator('a.version-node[data-version="4"]')).to_have_count(1)
    expect(lanes.first.locator('a.version-node[data-version="3"]')).to_have_count(1)
    expect(version_node(page, 4)).to_have_class(re.compile(r"\bis-head\b"))
    shot(page, "07-version-tree-branch")


def _painted_pixels(canvas) -> int:
    return canvas.evaluate("""c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
        return n;
    }""")


def _zigzag(page: Page, points: list[tuple[float, float]]) -> None:
    """One brush stroke through ``points`` (page coordinates)."""
    page.mouse.move(*points[0])
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*p, steps=12)
    page.mouse.up()


@browser_test
def test_masked_edit_changes_only_the_painted_region(ui, photo):
    """Flow 6: paint a region, edit it, and check pixel by pixel that
    nothing outside the painted box changed while the inside did."""
    page = ui.page()
    tid = new_thread(page, photo)
    page.locator("button#mask-toggle").click()
    editor = page.locator("#mask-editor")
    expect(editor).to_be_visible()
    img = page.locator("#mask-editor img#mask-image")
    canvas = page.locator("#mask-editor canvas#mask-canvas")
    expect(canvas).to_be_visible()
    expect_loaded(img)
    natural = img.evaluate("e => [e.naturalWidth, e.naturalHeight]")
    assert natural == [640, 480]
    ib, cb = img.bounding_box(), canvas.bounding_box()
    for key in ("x", "y", "width", "height"):
        assert abs(ib[key] - cb[key]) <= 2, f"the canvas does not cover the image: image {ib}, canvas {cb}"
    scale = natural[0] / ib["width"]  # image pixels per CSS pixel
    brush = float(page.locator("input#brush-size").input_value())
    assert brush > 0

    # Eraser toggles, undo and clear work.
    eraser = page.locator("button#mask-eraser")
    expect(eraser).to_have_attribute("aria-pressed", "false")
    eraser.click()
    expect(eraser).to_have_attribute("aria-pressed", "true")
    eraser.click()
    expect(eraser).to_have_attribute("aria-pressed", "false")
    cx, cy = cb["x"], cb["y"]
    _zigzag(page, [(cx + cb["width"] * .1, cy + cb["height"] * .8), (cx + cb["width"] * .3, cy + cb["height"] * .8)])
    assert _painted_pixels(canvas) > 0
    page.locator("button#mask-undo").click()
    assert _painted_pixels(canvas) == 0, "undo did not remove the only stroke"
    _zigzag(page, [(cx + cb["width"] * .1, cy + cb["height"] * .8), (cx + cb["width"] * .3, cy + cb["height"] * .8)])
    page.locator("button#mask-clear").click()
    assert _painted_pixels(canvas) == 0, "clear left paint on the canvas"

    # The region: around the sun and the sky next to it.
    fx0, fx1, fy0, fy1 = .45, .80, .10, .35
    step = max(2.0, brush / max(scale, 1.0) * 0.6)  # rows closer than the thinnest reading of the brush
    rows, y = [], cy + cb["height"] * fy0
    while y <= cy + cb["height"] * fy1:
        rows.append(y)
        y += step
    points, left = [], True
    for y in rows:
        xs = (cx + cb["width"] * fx0, cx + cb["width"] * fx1)
        points += [(xs[0], y), (xs[1], y)] if left else [(xs[1], y), (xs[0], y)]
        left = not left
    _zigzag(page, points)
    assert _painted_pixels(canvas) > 0
    expect(page.locator("#mask-status")).to_be_visible()
    expect(page.locator("#mask-status")).to_contain_text(re.compile(r"region", re.I))
    shot(page, "08-mask-editor")

    n = next_version(page, tid)
    submit(page, "make it black and white")
    expect_version(page, n)
    expect(editor).to_be_hidden()
    expect(page.locator("#mask-status")).to_be_hidden()
    shot(page, "09-masked-edit-result")
    page.locator("button#mask-toggle").click()  # the mask was reset after sending
    expect(editor).to_be_visible()
    expect(canvas).to_be_visible()
    assert _painted_pixels(canvas) == 0, "the painted region survived the send"
    page.locator("button#mask-toggle").click()
    expect(editor).to_be_hidden()

    thread = api_thread(page, tid)
    turn = thread["turns"][-1]
    assert turn["status"] == "succeeded" and turn["has_mask"], turn
    before = np.asarray(api_image(page, tid, 1).convert("RGBA"))
    after = np.asarray(api_image(page, tid, n).convert("RGBA"))
    assert before.shape == after.shape == (480, 640, 4)
    changed = (before != after).any(axis=2)

    def to_image(px: float, py: float) -> tuple[float, float]:
        return (px - ib["x"]) * scale, (py - ib["y"]) * scale

    margin = brush * max(scale, 1.0) + 4  # the brush value read as a radius in either unit, plus antialiasing
    x0, y0 = to_image(cx + cb["width"] * fx0, rows[0])
    x1, y1 = to_image(cx + cb["width"] * fx1, rows[-1])
    allowed = np.zeros(changed.shape, dtype=bool)
    allowed[max(0, int(y0 - margin)):int(y1 + margin) + 1, max(0, int(x0 - margin)):int(x1 + margin) + 1] = True
    outside = changed & ~allowed
    if outside.any():
        ys, xs = np.nonzero(outside)
        pytest.fail(f"{outside.sum()} pixels outside the painted box changed (box {x0:.0f},{y0:.0f}-{x1:.0f},"
                    f"{y1:.0f} +{margin:.0f}; changes span x {xs.min()}-{xs.max()}, y {ys.min()}-{ys.max()})")

    # Along the brush's path every pixel changed, to grey.
    samples = []
    for y in rows:
        for t in np.linspace(0.05, 0.95, 15):
            ix, iy = to_image(cx + cb["width"] * (fx0 + (fx1 - fx0) * t), y)
            samples.append((min(639, int(ix)), min(479, int(iy))))
    hit = [changed[py, px] for px, py in samples]
    grey = [after[py, px, 0] == after[py, px, 1] == after[py, px, 2] for px, py in samples]
    assert sum(hit) >= 0.95 * len(samples), f"only {sum(hit)}/{len(samples)} painted pixels changed"
    assert sum(grey) >= 0.95 * len(samples), f"only {sum(grey)}/{len(samples)} painted pixels are grey"
    assert changed.sum() > 0.5 * (x1 - x0) * (y1 - y0), "much less than the painted box changed"


@browser_test
def test_compare_two_versions(ui, photo):
    """Flow 7: the viewer's compare link, the keyboard-driven slider and
    switching the "before" version."""
    page = ui.page()
    tid = new_thread(page, photo)
    send(page, tid, "make it black and white")
    send(page, tid, "make it look like an oil painting")

    open_version_page(page, 3)
    page.wait_for_url(re.compile(rf"/t/{tid}/versions/3$"))
    link = page.locator("a#compare-link")
    expect(link).to_have_text(re.compile(r"Compare with version 2"))
    link.click()

    def compare_url(before: str, after: str):
        def match(url: str) -> bool:
            parts = urlsplit(url)
            q = parse_qs(parts.query)
            return parts.path.rstrip("/") == f"/t/{tid}/compare" and q.get("before") == [before] \
                and q.get("after") == [after]
        return match

    page.wait_for_url(compare_url("2", "3"))
    expect(page.locator("section#compare")).to_be_visible()
    expect(page.locator("form#compare-form select#before")).to_have_value("2")
    expect(page.locator("form#compare-form select#after")).to_have_value("3")
    slider = page.locator(".compare-slider")
    before_img, after_img = slider.locator("img.compare-before"), slider.locator("img.compare-after")
    expect_loaded(before_img)
    expect_loaded(after_img)
    assert "/versions/2/" in before_img.get_attribute("src") and "/versions/3/" in after_img.get_attribute("src")

    split = "e => e.style.getPropertyValue('--split').trim() || getComputedStyle(e).getPropertyValue('--split').trim()"
    rng = page.locator("input#compare-range")
    expect(rng).to_have_attribute("type", "range")
    start = float(rng.input_value())
    rng.focus()
    for _ in range(5):
        page.keyboard.press("ArrowLeft")
    value = float(rng.input_value())
    assert value < start, f"the arrow keys did not move the slider ({start} -> {value})"
    assert slider.evaluate(split) == f"{value:g}%"
    page.keyboard.press("Home")
    assert float(rng.input_value()) == 0
    assert slider.evaluate(split) == "0%"
    for _ in range(30):
        page.keyboard.press("ArrowRight")
    value = float(rng.input_value())
    assert slider.evaluate(split) == f"{value:g}%"
    shot(page, "10-compare-slider")

    old_src = before_img.get_attribute("src")
    page.locator("select#before").select_option("1")
    expect(page.locator("section#compare .compare-slider img.compare-before")).not_to_have_attribute("src", old_src)
    before_img = page.locator("section#compare .compare-slider img.compare-before")
    assert "/versions/1/" in before_img.get_attribute("src")
    expect_loaded(before_img)
    expect(page.locator("select#before")).to_have_value("1")

    old_after = page.locator("img.compare-after").get_attribute("src")
    page.locator("select#after").select_option("2")
    expect(page.locator("section#compare img.compare-after")).not_to_have_attribute("src", old_after)
    assert "/versions/2/" in page.locator("img.compare-after").get_attribute("src")
    expect_loaded(page.locator("img.compare-after"))


@browser_test
def test_share_fork_and_revoke(ui, photo):
    """Flows 8 and 9 (and the phone viewport for the shared page and the
    fork): share, copy, open the link as someone else, fork, edit the fork,
    revoke, and the link answers 404."""
    owner_ctx = ui.context(permissions=["clipboard-read", "clipboard-write"])
    page = owner_ctx.new_page()
    tid = new_thread(page, photo)
    send(page, tid, "make it black and white")
    title = api_thread(page, tid)["title"]

    page.locator("button#share-open").click()
    dialog = page.locator("dialog#share-dialog")
    expect(dialog).to_be_visible()
    assert dialog.evaluate("d => d.open && d.matches(':modal')"), "the share dialog is not modal"
    expect(page.locator("button#share-create")).to_have_text(re.compile(r"Create share link"))
    page.locator("button#share-create").click()
    url_box = page.locator("dialog#share-dialog input#share-url")
    expect(url_box).to_have_value(re.compile(rf"^{re.escape(ui.server.url)}/s/[A-Za-z0-9_-]+$"))
    expect(url_box).to_have_js_property("readOnly", True)
    link = url_box.input_value()
    assert api_thread(page, tid)["share_url"] == link
    expect(page.locator("button#share-copy")).to_have_text(re.compile(r"Copy link"))
    expect(page.locator("button#share-revoke")).to_have_text(re.compile(r"Revoke link"))
    page.locator("button#share-copy").click()
    expect(page.locator("#share-status")).to_contain_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == link
    shot(page, "11-share-dialog")
    page.locator("button#share-close").click()
    expect(dialog).to_be_hidden()

    # Someone else, on a phone, without cookies.
    other_ctx = ui.context(viewport=PHONE)
    other = other_ctx.new_page()
    resp = other.goto(link)
    assert resp is not None and resp.status == 200
    expect(other.locator("section#conversation")).to_be_visible()
    expect(other.locator("#composer")).to_have_count(0)
    expect(other.locator("textarea#instruction")).to_have_count(0)
    expect(other.locator("button#share-open")).to_have_count(0)
    expect(other.locator('meta[property="og:title"]')).to_have_attribute("content", title)
    og_image = other.locator('meta[property="og:image"]').get_attribute("content")
    assert og_image and og_image.startswith(ui.server.url + "/"), og_image
    image = other_ctx.request.get(og_image)
    assert image.status == 200 and image.headers["content-type"].startswith("image/")
    expect_version(other, 2)
    fork = other.locator("button#fork")
    expect(fork).to_have_text(re.compile(r"Fork to edit"))
    no_horizontal_scroll(other)
    shot(other, "12-shared-page-phone")
    assert other_ctx.request.get(f"/api/v1/threads/{tid}").status == 404  # not the owner

    fork.click()
    other.wait_for_url(re.compile(r"/t/[^/?#]+/?$"))
    fork_id = urlsplit(other.url).path.rstrip("/").rsplit("/", 1)[1]
    assert fork_id != tid
    busy_false(other)
    forked = api_thread(other_ctx, fork_id)
    assert forked["head_version"] == 2 and len(forked["versions"]) == 2
    expect(other.locator("form#composer")).to_be_visible()
    n = send(other, fork_id, "flip it horizontally")
    assert n == 3
    assert api_thread(other_ctx, fork_id)["head_version"] == 3
    assert len(api_thread(page, tid)["versions"]) == 2, "editing the fork changed the original"
    no_horizontal_scroll(other)
    shot(other, "13-fork-phone")

    # The owner revokes; the link is gone.
    page.locator("button#share-open").click()
    expect(dialog).to_be_visible()
    expect(url_box).to_have_value(link)
    page.locator("button#share-revoke").click()
    expect(page.locator("dialog#share-dialog button#share-create")).to_be_visible()
    expect(page.locator("dialog#share-dialog input#share-url")).to_be_hidden()
    assert api_thread(page, tid)["share_url"] is None

    ui.allow_console_error(r"status of 404")  # Chromium logs the 404 document load itself
    resp = other.goto(link)
    assert resp is not None and resp.status == 404
    expect(other.locator("body")).to_contain_text(re.compile(r"not found", re.I))
    shot(other, "14-revoked-link-404")
    # The fork lives on.
    assert api_thread(other_ctx, fork_id)["head_version"] == 3


@browser_test
def test_keyboard_only_sending(ui, photo):
    """Flow 10: Tab reaches the composer; Shift+Enter adds a line; Enter sends."""
    page = ui.page()
    tid = new_thread(page, photo)
    page.goto(f"/t/{tid}")
    busy_false(page)
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == "instruction":
            break
    else:
        pytest.fail("Tab never reached textarea#instruction")
    page.keyboard.type("make it sepia")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("and flip it horizontally")
    box = page.locator("textarea#instruction")
    expect(box).to_have_value("make it sepia\nand flip it horizontally")
    expect(page.locator("section#conversation li.turn")).to_have_count(1)  # Shift+Enter did not send
    set_marker(page)
    page.keyboard.press("Enter")
    expect(page.locator("section#conversation li.turn")).to_have_count(2)
    expect(box).to_have_value("")
    pending_or_result(page, 2)
    expect_version(page, 2)
    assert_marker(page)
    last = page.locator("section#conversation li.turn").last
    expect(last.locator(".bubble.user .instruction")).to_contain_text("flip it horizontally")
    turn = api_thread(page, tid)["turns"][-1]
    # Browsers submit a textarea's line breaks as CRLF (HTML spec); either is fine here.
    assert turn["instruction"].replace("\r\n", "\n") == "make it sepia\nand flip it horizontally"
    assert turn["status"] == "succeeded"


@browser_test
def test_inline_title_edit(ui, photo):
    """The title saves on Enter and on blur, without a reload, and the
    sidebar follows; downloads are named after it."""
    page = ui.page()
    tid = new_thread(page, photo)
    set_marker(page)
    title = page.locator("input#thread-title")
    entry = page.locator(f'nav#thread-list a.thread-link[href$="/t/{tid}"] .thread-title')
    page.locator("button#title-rename").click()  # the h1's rename button shows the field
    title.fill("Sunny house")
    title.press("Enter")
    expect(entry).to_have_text("Sunny house")
    assert api_thread(page, tid)["title"] == "Sunny house"
    page.locator("button#title-rename").click()
    title.fill("Sunny house by the hill")
    page.locator("textarea#instruction").click()  # blur
    expect(entry).to_have_text("Sunny house by the hill")
    assert api_thread(page, tid)["title"] == "Sunny house by the hill"
    assert_marker(page)
    page.reload()
    expect(page.locator("input#thread-title")).to_have_value("Sunny house by the hill")
    expect(page.locator("h1#thread-heading")).to_have_text("Sunny house by the hill")

    open_version_page(page, 1)
    page.wait_for_url(re.compile(rf"/t/{tid}/versions/1$"))
    with page.expect_download() as info:
        page.locator("a#download").click()
    name = info.value.suggested_filename
    assert name.endswith("-v1.png") and name.lower().startswith("sunny"), name


@browser_test
def test_phone_layout(ui, photo):
    """Flow 11: home and a thread page fit a 375 px wide phone."""
    page = ui.page(viewport=PHONE)
    page.goto("/")
    expect(page.locator("form#new-thread")).to_be_visible()
    no_horizontal_scroll(page)
    tid = new_thread(page, photo)
    send(page, tid, "make it black and white")
    expect(page.locator("form#composer textarea#instruction")).to_be_visible()
    expect(page.locator("button#send")).to_be_visible()
    no_horizontal_scroll(page)
    shot(page, "15-phone-thread")
    page.goto("/")
    no_horizontal_scroll(page)


@browser_test
def test_dark_colour_scheme(ui, photo):
    """The thread page in the dark colour scheme has a dark background. The
    thread starts from the home page with a photo and a first instruction,
    which also becomes the title."""
    page = ui.page(color_scheme="dark")
    tid = new_thread(page, photo, prompt="increase the contrast")
    expect_version(page, 2)
    thread = api_thread(page, tid)
    assert thread["head_version"] == 2 and thread["turns"][-1]["instruction"] == "increase the contrast"
    expect(page.locator("input#thread-title")).to_have_value(re.compile(r"increase the contrast", re.I))
    assert page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    background = page.evaluate("""() => {
        for (const e of [document.body, document.documentElement]) {
            const c = getComputedStyle(e).backgroundColor;
            if (c && c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c;
        }
        return null;
    }""")
    if background is not None:
        r, g, b = (int(v) for v in re.findall(r"\d+", background)[:3])
        assert 0.2126 * r + 0.7152 * g + 0.0722 * b < 100, f"the page background is light in dark mode: {background}"
    shot(page, "16-dark-thread")
