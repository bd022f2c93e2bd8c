"""The front end split by component (static/attachments.js, painter.js, pickers.js, composer.js,
live.js, lightbox.js) in real Chromium:

- an idle, open thread page keeps its event stream while visible, so a turn queued from another
  client (the JSON API, with the same owner cookie) appears, runs and shows its result without a
  reload; hidden, the page closes the stream and catches up when shown again;
- a click (or Enter) on a version tree node opens the lightbox on that version, Escape returns
  focus to the node, and the node's href is still the version page (a middle click opens it in a
  new tab; the lightbox's "Version page" link goes there);
- after a send, each component's reset() has cleared its state (attachments, painter);
- the limits the JavaScript enforces are the server's, rendered as data- attributes: a server
  started with a smaller RETOUCH_MAX_UPLOAD_BYTES refuses a larger reference in the page.

Screenshots: tests/artifacts/browser/frontend-*.png.
"""
from __future__ import annotations

import re

import pytest

from app.main import TEMPLATE_LIMITS
from app.services import MAX_INSTRUCTION_CHARS, MAX_REFERENCES
from tests.test_browser import (  # noqa: F401 (fixtures)
    UI,
    Server,
    api_thread,
    assert_marker,
    browser,
    browser_test,
    busy_false,
    expect,
    expect_loaded,
    expect_version,
    make_photo,
    new_thread,
    photo,
    send,
    serve,
    set_marker,
    shot,
    submit,
    thread_url,
    ui,
    version_figure,
    version_node,
)

SMALL_LIMIT = 60_000  # bytes: RETOUCH_MAX_UPLOAD_BYTES of the second server


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    with serve(tmp_path_factory.mktemp("browser-frontend"), RETOUCH_BACKEND="local") as srv:
        yield srv


@pytest.fixture(scope="module")
def small_server(tmp_path_factory) -> Server:
    with serve(tmp_path_factory.mktemp("browser-frontend-small"), RETOUCH_BACKEND="local",
               RETOUCH_MAX_UPLOAD_BYTES=str(SMALL_LIMIT)) as srv:
        yield srv


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    d = tmp_path_factory.mktemp("frontend-refs")
    return [make_photo(d / f"ref{i}.jpg", 200, 150, seed=40 + i) for i in range(MAX_REFERENCES + 1)]


def live_state(page) -> str:
    return page.evaluate("window.Retouch.live.state()")


# --------------------------------------------------------------------------- live updates


def idle_thread_page(ui, photo):
    """(page, thread id): a new thread's page, its first version shown, nothing pending, and its
    event stream open; and a second client with the same owner cookie (another device, a script)."""
    page = ui.page()
    tid = new_thread(page, photo)
    expect_version(page, 1)
    busy_false(page)
    page.wait_for_function("() => window.Retouch.live.state() === 'open'")
    other = ui.context()
    other.add_cookies(page.context.cookies())
    return page, tid, other


def queue_turn(other, tid: str, instruction: str) -> dict:
    resp = other.request.post(f"/api/v1/threads/{tid}/turns", multipart={"instruction": instruction})
    assert resp.status == 202, resp.text()
    return resp.json()


@browser_test
def test_turn_from_another_client_shows_on_an_idle_page(ui, photo):
    # Idle, and still listening: the stream is open though nothing is pending.
    page, tid, other = idle_thread_page(ui, photo)
    assert page.locator("#live[hx-trigger]").count() == 0  # no polling while idle
    set_marker(page)

    # Another client queues a turn.
    turn = queue_turn(other, tid, "make it black and white")

    # It appears, runs and finishes on the open page, without a reload.
    turn_li = page.locator("section#conversation li.turn").filter(has_text="make it black and white")
    expect(turn_li).to_have_count(1)
    expect_version(page, 2)
    expect(version_figure(page, 2).locator("img")).to_be_visible()
    assert_marker(page)
    assert api_thread(page, tid)["head_version"] == 2
    assert turn["instruction"] == "make it black and white"
    # The composer followed the new head (static/composer.js, #composer-state).
    expect(page.locator("#composer-state")).to_have_attribute("data-head", "2")
    page.locator("section#conversation figure.version[data-version='2']").scroll_into_view_if_needed()
    shot(page, "frontend-turn-from-api")

    # Hidden: the stream closes; shown again it reopens and catches up with a turn queued meanwhile.
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    assert live_state(page) == "closed"
    queue_turn(other, tid, "increase the contrast")
    deadline_ok = False
    for _ in range(100):
        if api_thread(page, tid)["head_version"] == 3:
            deadline_ok = True
            break
        page.wait_for_timeout(100)
    assert deadline_ok, "the API turn did not finish"
    assert page.locator("section#conversation figure.version[data-version='3']").count() == 0  # not while hidden
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    expect_version(page, 3)
    page.wait_for_function("() => window.Retouch.live.state() === 'open'")
    assert_marker(page)


@browser_test
def test_a_live_refresh_keeps_an_unchanged_version_tree(ui, photo):
    page, tid, other = idle_thread_page(ui, photo)
    key = page.locator("#version-tree").get_attribute("data-tree")
    assert key == "1-1-1"
    page.evaluate("document.getElementById('version-tree').dataset.mark = 'kept'")
    upload = page.locator("#conversation li.turn-upload")
    expect(upload).to_have_attribute("data-key", "succeeded.1.1")
    upload.evaluate("li => li.dataset.mark = 'kept'")

    # A refresh while the tree is current: the server sends a placeholder and htmx keeps the element.
    with page.expect_response(lambda r: f"/t/{tid}?tree={key}" in r.url) as answer:
        page.evaluate("window.Retouch.live.refresh()")
    body = answer.value.text()
    assert 'hx-preserve="true"' in body and "version-node" not in body and "Uploaded a photo" not in body
    page.wait_for_load_state("networkidle")
    expect(page.locator("#version-tree[data-mark='kept'] .version-node")).to_have_count(1)
    expect(page.locator("#conversation li.turn-upload[data-mark='kept'] figure")).to_have_count(1)
    expect_loaded(page.locator("#version-tree img"))
    page.locator("#version-tree").scroll_into_view_if_needed()
    shot(page, "frontend-tree-kept")

    # A turn that makes a version changes the tree: the page gets the new one, with the new node.
    queue_turn(other, tid, "make it black and white")
    expect_version(page, 2)
    expect(page.locator("#version-tree .version-node")).to_have_count(2)
    expect(page.locator("#version-tree")).to_have_attribute("data-tree", "2-2-2")
    assert page.locator("#version-tree[data-mark]").count() == 0
    # The upload's version is no longer the head, so its turn came again, without its "current" badge.
    expect(upload).to_have_attribute("data-key", "succeeded.1.0")
    assert page.locator("#conversation li.turn-upload[data-mark]").count() == 0
    expect(upload.locator(".badge")).to_have_count(0)
    expect(page.locator("#conversation figure[data-version='2'] .badge")).to_have_text("current")


@browser_test
def test_shared_page_follows_turns_while_idle(ui, photo):
    page = ui.page()
    tid = new_thread(page, photo)
    resp = page.request.post(f"/api/v1/threads/{tid}/share")
    assert resp.status in (200, 201), resp.text()
    viewer = ui.page()
    viewer.goto(f"/s/{resp.json()['token']}")
    viewer.wait_for_function("() => window.Retouch.live.state() === 'open'")
    set_marker(viewer)
    resp = page.request.post(f"/api/v1/threads/{tid}/turns", multipart={"instruction": "make it black and white"})
    assert resp.status == 202, resp.text()
    expect_version(viewer, 2)
    assert_marker(viewer)


# --------------------------------------------------------------------------- the version tree


@browser_test
def test_tree_node_opens_the_lightbox(ui, photo):
    page = ui.page()
    tid = new_thread(page, photo)
    send(page, tid, "make it black and white")
    set_marker(page)
    node = version_node(page, 1)
    # The href is still the version page (middle click, new tab, no JavaScript).
    expect(node).to_have_attribute("href", re.compile(rf"/t/{tid}/versions/1$"))

    node.click()
    box = page.locator("dialog#lightbox")
    expect(box).to_be_visible()
    expect(box).to_have_attribute("data-version", "1")
    expect(box).to_have_attribute("data-loaded", "full")
    expect_loaded(page.locator("#lightbox-image"))
    page.wait_for_url(thread_url(tid))  # did not navigate
    expect(page.locator("#lightbox-page")).to_be_visible()
    expect(page.locator("#lightbox-page")).to_have_attribute("href", re.compile(rf"/t/{tid}/versions/1$"))
    shot(page, "frontend-tree-lightbox")
    # It steps through the versions like any lightbox.
    page.keyboard.press("ArrowRight")
    expect(box).to_have_attribute("data-version", "2")
    page.keyboard.press("Escape")
    expect(box).not_to_be_visible()
    expect(node).to_be_focused()
    assert_marker(page)

    # Enter on a focused node opens it too.
    version_node(page, 2).focus()
    page.keyboard.press("Enter")
    expect(box).to_have_attribute("data-version", "2")
    expect(box).to_be_visible()
    page.keyboard.press("Escape")
    expect(version_node(page, 2)).to_be_focused()

    # A middle click opens the version page in a new tab, and the page stays put.
    with page.context.expect_page() as info:
        node.click(button="middle")
    tab = info.value
    tab.wait_for_load_state("domcontentloaded")  # not "load": that waits for every image of the new tab too
    assert re.search(rf"/t/{tid}/versions/1$", tab.url), tab.url
    expect(tab.locator("section#viewer")).to_be_visible()
    tab.close()
    expect(box).not_to_be_visible()
    page.wait_for_url(thread_url(tid))

    # The lightbox's "Version page" link navigates in the app.
    node.click()
    page.locator("#lightbox-page").click()
    page.wait_for_url(re.compile(rf"/t/{tid}/versions/1$"))
    expect(page.locator("section#viewer")).to_be_visible()
    expect(page.locator("button#continue-here")).to_be_visible()
    assert_marker(page)


# --------------------------------------------------------------------------- reset() after a send


@browser_test
def test_components_reset_after_a_send(ui, photo, refs):
    page = ui.page()
    tid = new_thread(page, photo)
    busy_false(page)
    page.set_input_files("#attach-input", [str(p) for p in refs[:2]])
    expect(page.locator("#attachments li.chip")).to_have_count(2)

    page.locator("#mask-toggle").click()
    expect(page.locator("#mask-editor")).to_be_visible()
    canvas = page.locator("#mask-canvas")
    b = canvas.bounding_box()
    page.mouse.move(b["x"] + b["width"] * .3, b["y"] + b["height"] * .3)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] * .6, b["y"] + b["height"] * .5, steps=6)
    page.mouse.up()
    page.locator("#mask-eraser").click()
    expect(page.locator("#mask-eraser")).to_have_attribute("aria-pressed", "true")
    page.locator("#mask-done").click()
    expect(page.locator("#mask-status")).to_be_visible()
    assert page.evaluate("window.Retouch.painter.strokes()") == 1
    assert page.evaluate("document.getElementById('mask').files.length") == 1
    page.locator("#instruction").fill("make it black and white")
    shot(page, "frontend-composer-before-send")

    page.locator("button#send").click()
    # (The offline editor declines an edit with references it cannot use; the send itself succeeded.)
    expect(page.locator("section#conversation li.turn:not(.sending)")).to_have_count(2)
    busy_false(page)
    # attachments.reset(): nothing attached, the input empty
    expect(page.locator("#attachments li")).to_have_count(0)
    assert page.evaluate("window.Retouch.attachments.files().length") == 0
    assert page.evaluate("document.getElementById('attach-input').files.length") == 0
    # painter.reset(): no strokes, closed, the eraser off, the mask input empty
    assert page.evaluate("window.Retouch.painter.strokes()") == 0
    assert page.evaluate("window.Retouch.painter.isOpen()") is False
    expect(page.locator("#mask-editor")).to_be_hidden()
    expect(page.locator("#mask-status")).to_be_hidden()
    expect(page.locator("#mask-toggle")).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#mask-eraser")).to_have_attribute("aria-pressed", "false")
    assert page.evaluate("document.getElementById('mask').files.length") == 0
    # composer.reset(): the message box is empty
    expect(page.locator("#instruction")).to_have_value("")
    # The painter opens again, empty.
    page.locator("#mask-toggle").click()
    expect(page.locator("#mask-editor")).to_be_visible()
    assert page.evaluate("window.Retouch.painter.strokes()") == 0
    page.locator("#mask-done").click()
    shot(page, "frontend-composer-after-send")

    # Each reset() also works on its own.
    page.set_input_files("#attach-input", str(refs[0]))
    expect(page.locator("#attachments li.chip")).to_have_count(1)
    page.evaluate("window.Retouch.attachments.reset()")
    expect(page.locator("#attachments li")).to_have_count(0)
    page.evaluate("window.Retouch.live.reset()")
    assert live_state(page) == "closed"
    page.evaluate("window.Retouch.live.sync()")
    page.wait_for_function("() => window.Retouch.live.state() === 'open'")


# --------------------------------------------------------------------------- limits from the server


@browser_test
def test_reference_limit_is_the_servers(ui, photo, refs):
    page = ui.page()
    new_thread(page, photo)
    composer = page.locator("form#composer")
    expect(composer).to_have_attribute("data-max-references", str(MAX_REFERENCES))
    expect(page.locator("#attach-input")).to_have_attribute("accept", TEMPLATE_LIMITS["image_types"])
    expect(page.locator("#instruction")).to_have_attribute("maxlength", str(MAX_INSTRUCTION_CHARS))
    page.set_input_files("#attach-input", [str(p) for p in refs[:MAX_REFERENCES + 1]])
    expect(page.locator("#attachments li.chip")).to_have_count(MAX_REFERENCES)
    expect(page.locator("#composer-alert")).to_contain_text(f"up to {MAX_REFERENCES} reference images")
    # The JavaScript reads the attribute, not a constant of its own.
    page.evaluate("window.Retouch.attachments.reset()")
    page.evaluate("document.getElementById('composer').setAttribute('data-max-references', '2')")
    page.set_input_files("#attach-input", [str(p) for p in refs[:3]])
    expect(page.locator("#attachments li.chip")).to_have_count(2)
    expect(page.locator("#composer-alert")).to_contain_text("up to 2 reference images")


def test_byte_limit_follows_the_server_setting(browser, small_server, photo, tmp_path, request):
    ui = UI(browser, small_server, request.node.name)
    try:
        _byte_limit(ui, tmp_path)
        errors = ui.unexpected_errors()
        assert not errors, "console errors:\n" + "\n".join(errors)
    except BaseException:
        ui.dump_failure()
        raise
    finally:
        ui.close()


def _byte_limit(ui: UI, tmp_path) -> None:
    small = make_photo(tmp_path / "small.jpg", 160, 120, seed=7)
    big = make_photo(tmp_path / "big.jpg", 900, 700, seed=8)
    assert small.stat().st_size < SMALL_LIMIT < big.stat().st_size
    page = ui.page()
    page.goto("/")
    expect(page.locator("input#image")).to_have_attribute("data-max-bytes", str(SMALL_LIMIT))
    # The photo of a new thread: refused in the page.
    page.set_input_files("input#image", str(big))
    expect(page.locator("#flash")).to_contain_text("larger than 59 KB")
    expect(page.locator("#image-preview")).to_be_hidden()

    tid = new_thread(page, small)
    expect_version(page, 1)
    expect(page.locator("form#composer")).to_have_attribute("data-max-bytes", str(SMALL_LIMIT))
    page.set_input_files("#attach-input", [str(small), str(big)])
    expect(page.locator("#attachments li.chip")).to_have_count(1)
    expect(page.locator("#attachments li.chip")).to_contain_text("small.jpg")
    expect(page.locator("#composer-alert")).to_contain_text("at most 59 KB")
    shot(page, "frontend-byte-limit")
    # What the page lets through, the server takes.
    submit(page, "paint it in the style of this")
    expect_version(page, 2)
    assert api_thread(page, tid)["head_version"] == 2


# --------------------------------------------------------------------------- page weight


@browser_test
def test_the_full_png_loads_only_when_the_painter_opens(ui, photo):
    """A thread page shows previews; the head's full PNG (megabytes for a
    large photo) is fetched only when the region painter opens, and again
    only when a new head arrives while it is open."""
    page = ui.page()
    full = re.compile(r"/api/v1/threads/[^/]+/versions/\d+/image$")
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if full.search(r.url) else None)
    tid = new_thread(page, photo)
    expect_version(page, 1)
    send(page, tid, "make it black and white")
    page.goto(f"/t/{tid}")
    expect_loaded(version_figure(page, 2).locator("img"))
    assert fetched == [], f"full PNGs fetched without opening anything: {fetched}"
    page.locator("button#mask-toggle").click()
    expect_loaded(page.locator("#mask-image"))
    assert len(fetched) == 1 and fetched[0].endswith("/versions/2/image"), fetched
