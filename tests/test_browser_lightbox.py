"""The image lightbox (static/lightbox.js, templates/_lightbox.html) in real
Chromium: a plain click on a result opens a modal dialog with the full PNG
(the page does not navigate); fit / 100% by the button and by double-click;
the wheel and a two-pointer pinch zoom; dragging pans; the arrow keys and
buttons step through the thread's versions in order and stop at the ends;
the Download button is the version's download URL (with Content
Credentials); Escape closes it and focus returns to the image link; a
Ctrl+click still opens the image in a new tab. Also on the version page, and
on a shared page on a 375 px phone in dark mode. Screenshots:
tests/artifacts/browser/lightbox-*.png.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from tests.test_browser import (  # noqa: F401 (fixtures)
    PHONE,
    Server,
    browser,
    browser_test,
    expect,
    expect_loaded,
    make_photo,
    new_thread,
    send,
    serve,
    shot,
    ui,
    version_figure,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    with serve(tmp_path_factory.mktemp("browser-lightbox"), RETOUCH_BACKEND="local") as srv:
        yield srv


@pytest.fixture(scope="module")
def big_photo(tmp_path_factory):
    """Larger than any viewport, so fit and 100% differ."""
    return make_photo(tmp_path_factory.mktemp("lightbox-photo") / "big.jpg", 2000, 1400, seed=99)


def lightbox(page):
    return page.locator("dialog#lightbox")


def scale(page) -> float:
    return float(lightbox(page).get_attribute("data-scale"))


def image_box(page) -> dict:
    return page.locator("#lightbox-image").bounding_box()


def stage_centre(page) -> tuple[float, float]:
    b = page.locator("#lightbox-stage").bounding_box()
    return b["x"] + b["width"] / 2, b["y"] + b["height"] / 2


def expect_showing(page, prefix: str, n: int, caption: str | re.Pattern) -> None:
    box = lightbox(page)
    expect(box).to_have_attribute("data-version", str(n))
    expect(page.locator("#lightbox-version")).to_have_text(f"Version {n}")
    expect(page.locator("#lightbox-text")).to_have_text(caption)
    expect(page.locator("#lightbox-download")).to_have_attribute("href", f"{prefix}/versions/{n}/image?download=1")
    # the preview first, then the full PNG
    expect(box).to_have_attribute("data-loaded", "full")
    expect(page.locator("#lightbox-image")).to_have_attribute("src", f"{prefix}/versions/{n}/image")
    expect_loaded(page.locator("#lightbox-image"))


def fits_in_stage(page) -> bool:
    return page.evaluate("""() => {
        const i = document.getElementById('lightbox-image').getBoundingClientRect();
        const s = document.getElementById('lightbox-stage').getBoundingClientRect();
        return i.width > 0 && i.left >= s.left - 1 && i.right <= s.right + 1 && i.top >= s.top - 1 && i.bottom <= s.bottom + 1;
    }""")


def focused_version(page) -> str | None:
    return page.evaluate("""() => { const a = document.activeElement;
        const h = a && a.closest && a.closest('[data-version]'); return a && a.tagName === 'A' && h ? h.dataset.version : null; }""")


def pinch(page, spread_from: float, spread_to: float) -> None:
    """Two pointers on the stage moving apart (pointer events, as a touch screen sends them)."""
    page.evaluate("""([a, b]) => {
        const stage = document.getElementById('lightbox-stage'), r = stage.getBoundingClientRect();
        const cx = r.left + r.width / 2, cy = r.top + r.height / 2;
        const fire = (type, id, x) => stage.dispatchEvent(new PointerEvent(type, {pointerId: id, pointerType: 'touch',
            isPrimary: id === 11, clientX: x, clientY: cy, bubbles: true, cancelable: true, button: 0, buttons: 1}));
        fire('pointerdown', 11, cx - a / 2);
        fire('pointerdown', 12, cx + a / 2);
        for (let k = 1; k <= 4; k++) {
            const d = a + (b - a) * k / 4;
            fire('pointermove', 11, cx - d / 2);
            fire('pointermove', 12, cx + d / 2);
        }
        fire('pointerup', 11, cx - b / 2);
        fire('pointerup', 12, cx + b / 2);
    }""", [spread_from, spread_to])


def swipe(page, dx: float) -> None:
    """One touch pointer dragged ``dx`` px across the stage."""
    page.evaluate("""dx => {
        const stage = document.getElementById('lightbox-stage'), r = stage.getBoundingClientRect();
        const cx = r.left + r.width / 2, cy = r.top + r.height / 2;
        const fire = (type, x) => stage.dispatchEvent(new PointerEvent(type, {pointerId: 21, pointerType: 'touch',
            isPrimary: true, clientX: x, clientY: cy, bubbles: true, cancelable: true, button: 0, buttons: 1}));
        fire('pointerdown', cx - dx / 2);
        for (let k = 1; k <= 5; k++) fire('pointermove', cx - dx / 2 + dx * k / 5);
        fire('pointerup', cx + dx / 2);
    }""", dx)


@browser_test
def test_lightbox_in_the_conversation_and_on_the_version_page(ui, big_photo):
    ctx = ui.context()
    page = ctx.new_page()
    tid = new_thread(page, big_photo)
    assert send(page, tid, "make it black and white") == 2
    assert send(page, tid, "rotate it 90 degrees clockwise") == 3
    prefix = f"/api/v1/threads/{tid}"
    url = page.url

    # A plain click on version 2's image opens the lightbox; the page stays where it is.
    link = version_figure(page, 2).locator("a.version-link")
    link.click()
    box = lightbox(page)
    expect(box).to_be_visible()
    assert box.evaluate("d => d.open && d.matches(':modal')")
    assert page.url == url
    expect_showing(page, prefix, 2, "make it black and white")
    expect(page.locator("#lightbox-count")).to_have_text("· 2 of 3")

    # Fit: the whole image inside the stage, smaller than its 2000 px.
    expect(box).to_have_attribute("data-mode", "fit")
    assert fits_in_stage(page)
    fit = scale(page)
    assert fit < 1 and abs(image_box(page)["width"] - 2000 * fit) < 2
    expect(page.locator("#lightbox-scale")).to_have_text(f"{round(fit * 100)}%")
    shot(page, "lightbox-desktop-fit")

    # 100% by the button: one image pixel per CSS pixel; the button then offers "Fit".
    page.locator("#lightbox-zoom").click()
    expect(box).to_have_attribute("data-mode", "actual")
    assert abs(image_box(page)["width"] - 2000) < 1.5 and abs(image_box(page)["height"] - 1400) < 1.5
    expect(page.locator("#lightbox-zoom")).to_have_text("Fit")
    expect(page.locator("#lightbox-zoom")).to_have_attribute("aria-label", "Fit to the window")
    expect(page.locator("#lightbox-scale")).to_have_text("100%")
    shot(page, "lightbox-desktop-100")

    # Dragging pans (the image is larger than the stage now).
    before = image_box(page)
    cx, cy = stage_centre(page)
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx - 150, cy - 80, steps=5)
    page.mouse.up()
    after = image_box(page)
    assert abs((after["x"] - before["x"]) + 150) < 2 and abs((after["y"] - before["y"]) + 80) < 2, (before, after)

    page.locator("#lightbox-zoom").click()
    expect(box).to_have_attribute("data-mode", "fit")
    assert abs(scale(page) - fit) < 1e-3 and fits_in_stage(page)

    # Double-click toggles fit / 100%.
    page.mouse.dblclick(cx, cy)
    expect(box).to_have_attribute("data-mode", "actual")
    page.mouse.dblclick(cx, cy)
    expect(box).to_have_attribute("data-mode", "fit")

    # The wheel zooms in around the pointer, and back out (never below fit).
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, -300)
    expect(box).not_to_have_attribute("data-mode", "fit")
    zoomed = scale(page)
    assert zoomed > fit * 1.5, (fit, zoomed)
    page.mouse.wheel(0, 2000)
    expect(box).to_have_attribute("data-mode", "fit")
    assert abs(scale(page) - fit) < 1e-3

    # A two-pointer pinch zooms by the change of spread (100 px -> 300 px: about 3x).
    pinch(page, 100, 300)
    pinched = scale(page)
    assert 2.5 * fit < pinched < 3.5 * fit, (fit, pinched)
    page.keyboard.press("0")
    expect(box).to_have_attribute("data-mode", "fit")

    # The arrow keys step through the versions in order, and stop at either end. While the full PNG
    # loads (held back here), the preview the page already has is shown.
    held = []
    page.route("**/versions/3/image", lambda route: held.append(route))
    page.keyboard.press("ArrowRight")
    expect(box).to_have_attribute("data-loaded", "preview")
    expect(page.locator("#lightbox-image")).to_have_attribute("src", re.compile(rf"{prefix}/versions/3/image\?size=\d+$"))
    expect(page.locator("#lightbox-status")).to_have_text("Loading the full image…")
    assert fits_in_stage(page)
    expect(page.locator("#lightbox-version")).to_have_text("Version 3")
    for _ in range(100):  # the route's handler runs as Playwright reads its messages
        if held:
            break
        page.wait_for_timeout(100)
    assert len(held) == 1, held
    held[0].continue_()
    page.unroute("**/versions/3/image")
    expect_showing(page, prefix, 3, "rotate it 90 degrees clockwise")
    expect(page.locator("#lightbox-status")).to_have_text("")
    expect(page.locator("#lightbox-next")).to_be_disabled()
    expect(page.locator("#lightbox-image")).to_have_attribute("width", "1400")  # rotated: its own size
    page.keyboard.press("ArrowRight")
    expect(box).to_have_attribute("data-version", "3")
    expect(page.locator("#lightbox-status")).to_have_text("This is the last version.")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect_showing(page, prefix, 1, "uploaded photo (big.jpg)")
    expect(page.locator("#lightbox-prev")).to_be_disabled()
    expect(page.locator("#lightbox-count")).to_have_text("· 1 of 3")
    page.locator("#lightbox-next").click()
    expect_showing(page, prefix, 2, "make it black and white")

    # Download: the version's download URL, a PNG with Content Credentials.
    href = page.locator("#lightbox-download").get_attribute("href")
    assert href == f"{prefix}/versions/2/image?download=1"
    expect(page.locator("#lightbox-download")).to_have_attribute("download", "")
    resp = page.request.get(href)
    assert resp.status == 200 and resp.headers["content-type"] == "image/png"
    assert "attachment" in resp.headers.get("content-disposition", "")
    assert b"caBX" in resp.body()

    # Escape closes it; the focus is back on the link that opened it.
    page.keyboard.press("Escape")
    expect(box).to_be_hidden()
    assert not box.evaluate("d => d.open")
    assert focused_version(page) == "2"
    assert page.url == url

    # A Ctrl+click is left to the link (htmx / new tab): no lightbox.
    page.locator("#lightbox-image").evaluate("i => i.removeAttribute('src')")
    version_figure(page, 1).locator("a.version-link").click(modifiers=["Control"])
    page.wait_for_timeout(300)
    assert not box.evaluate("d => d.open")

    # The version page: its image opens the lightbox too, and steps through the tree's versions.
    page.goto(f"/t/{tid}/versions/2")
    viewer_link = page.locator("section#viewer figure.viewer-figure a")
    expect_loaded(page.locator("img#viewer-image"))
    # The new tab is Chromium's own page for a bare image: it styles itself inline, which the image's CSP
    # refuses, and asks for /favicon.ico (404). Neither is ours.
    ui.allow_console_error(r"on http://[^ ]+/versions/\d+/image: (Applying inline style|Failed to load resource: .*favicon\.ico)")
    with ctx.expect_page() as new_tab:  # Ctrl+click: the full PNG in a new tab, as before
        viewer_link.click(modifiers=["Control"])
    assert urlsplit(new_tab.value.url).path == f"{prefix}/versions/2/image"
    new_tab.value.close()
    assert not box.evaluate("d => d.open")
    viewer_link.click()
    expect(box).to_be_visible()
    expect_showing(page, prefix, 2, "make it black and white")
    page.keyboard.press("ArrowRight")
    expect_showing(page, prefix, 3, "rotate it 90 degrees clockwise")
    shot(page, "lightbox-version-page")
    page.emulate_media(color_scheme="dark")
    expect(page.locator("#lightbox-next")).to_be_disabled()  # the last version
    shot(page, "lightbox-version-page-dark")
    page.emulate_media(color_scheme="light")
    page.keyboard.press("Escape")
    expect(box).to_be_hidden()
    assert page.evaluate("document.activeElement === document.querySelector('section#viewer figure a')")


@browser_test
def test_lightbox_on_a_shared_page_phone_dark(ui, big_photo):
    owner = ui.page()
    tid = new_thread(owner, big_photo)
    assert send(owner, tid, "make it sepia") == 2
    resp = owner.request.post(f"/api/v1/threads/{tid}/share")
    assert resp.status in (200, 201), resp.text()
    token = resp.json()["token"]
    prefix = f"/api/v1/shared/{token}"

    page = ui.page(viewport=PHONE, color_scheme="dark", has_touch=True, is_mobile=True)
    page.goto(f"/s/{token}")
    figure = page.locator('section#conversation figure.version[data-version="2"]')
    expect_loaded(figure.locator("img"))
    figure.locator("a.version-link").click()
    box = lightbox(page)
    expect(box).to_be_visible()
    expect_showing(page, prefix, 2, "make it sepia")
    assert page.url.endswith(f"/s/{token}")

    # It fills the phone's screen; nothing sticks out; every control is on screen and tappable.
    b = box.bounding_box()
    assert (round(b["width"]), round(b["height"])) == (PHONE["width"], PHONE["height"]), b
    for sel in ["#lightbox-close", "#lightbox-zoom", "#lightbox-download", "#lightbox-prev", "#lightbox-next"]:
        c = page.locator(sel).bounding_box()
        assert c and c["x"] >= 0 and c["x"] + c["width"] <= PHONE["width"] and c["y"] + c["height"] <= PHONE["height"], (sel, c)
        assert c["height"] >= 30, (sel, c)
    assert fits_in_stage(page)
    expect(box).to_have_attribute("data-mode", "fit")
    assert box.evaluate("d => getComputedStyle(d).colorScheme") == "dark"
    assert page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    shot(page, "lightbox-phone-dark-shared")

    # A double tap: 100%; a pinch from there zooms further; the button: fit again.
    cx, cy = stage_centre(page)
    page.touchscreen.tap(cx, cy)
    page.touchscreen.tap(cx, cy)
    expect(box).to_have_attribute("data-mode", "actual")
    expect(page.locator("#lightbox-scale")).to_have_text("100%")
    shot(page, "lightbox-phone-dark-100")
    pinch(page, 80, 160)
    assert 1.8 < scale(page) < 2.2
    page.locator("#lightbox-zoom").tap()
    expect(box).to_have_attribute("data-mode", "fit")

    # Previous / next on screen; the ends are disabled.
    expect(page.locator("#lightbox-next")).to_be_disabled()
    page.locator("#lightbox-prev").tap()
    expect_showing(page, prefix, 1, "uploaded photo (big.jpg)")
    expect(page.locator("#lightbox-prev")).to_be_disabled()
    swipe(page, -150)  # a swipe to the left at fit: the next version
    expect_showing(page, prefix, 2, "make it sepia")
    page.locator("#lightbox-close").tap()
    expect(box).to_be_hidden()
    assert focused_version(page) == "2"
