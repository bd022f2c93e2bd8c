"""The conversation as a chat app handles it, in real Chromium (desktop
1280x860 and a 375x812 phone): new results land in view above the composer
without a manual scroll; scrolled up, a "New result" button says something
arrived; errors (the rate limit, an offline send, an empty Enter) show next
to the composer with the typed text kept; the composer follows the thread's
head without a reload; the composer is focused on open, "/" jumps to it and
"?" lists the shortcuts; the title is the page's h1 with a rename button; a
pressed toggle's label stays readable. Screenshots:
tests/artifacts/browser/conversation-*.png.
"""
from __future__ import annotations

import re

import pytest

from tests.test_browser import (  # noqa: F401 (fixtures)
    DESKTOP,
    PHONE,
    Server,
    api_thread,
    assert_marker,
    browser,
    browser_test,
    busy_false,
    expect,
    expect_version,
    new_thread,
    next_version,
    open_version_page,
    photo,
    serve,
    set_marker,
    shot,
    submit,
    ui,
    version_figure,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    with serve(tmp_path_factory.mktemp("browser-conversation"), RETOUCH_BACKEND="local") as srv:
        yield srv


# The element's box lies inside the viewport, below the sticky top bar and above the composer.
IN_VIEW_ABOVE_COMPOSER = """sel => {
    const el = document.querySelector(sel), composer = document.getElementById('composer');
    const bar = document.querySelector('.topbar');
    if (!el || !composer) return false;
    const r = el.getBoundingClientRect(), c = composer.getBoundingClientRect();
    const top = bar ? bar.getBoundingClientRect().bottom : 0;
    return r.height > 0 && r.top >= top - 1 && r.bottom <= c.top + 1 && c.bottom <= window.innerHeight + 1;
}"""

# The element's box lies inside the viewport (for parts of the sticky composer).
IN_VIEW = """sel => {
    const el = document.querySelector(sel), r = el && el.getBoundingClientRect();
    return !!r && r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight;
}"""

AT_BOTTOM = """() => document.documentElement.scrollHeight - (window.scrollY + window.innerHeight) <= 2"""


def newest_image(n: int) -> str:
    return f'section#conversation figure.version[data-version="{n}"] img'


def send_and_land_in_view(page, tid: str, instruction: str) -> int:
    n = next_version(page, tid)
    submit(page, instruction)
    expect_version(page, n)
    # No manual scroll: the page itself brings the whole new image into view above the composer.
    page.wait_for_function(IN_VIEW_ABOVE_COMPOSER, arg=newest_image(n), timeout=10_000)
    return n


def contrast(page, selector: str) -> float:
    """WCAG contrast ratio of the element's text colour on its background colour."""
    return page.evaluate("""sel => {
        const el = document.querySelector(sel), s = getComputedStyle(el);
        const rgb = c => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
        const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= .03928 ? v / 12.92 : ((v + .055) / 1.055) ** 2.4; })
            .reduce((a, v, i) => a + v * [.2126, .7152, .0722][i], 0);
        const a = lum(rgb(s.color)), b = lum(rgb(s.backgroundColor));
        return (Math.max(a, b) + .05) / (Math.min(a, b) + .05);
    }""", selector)


# --------------------------------------------------------------------------- scrolling


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
@browser_test
def test_new_results_land_in_view_and_the_button_brings_them(ui, photo, viewport):
    phone = viewport == PHONE
    page = ui.page(viewport=viewport, has_touch=phone, is_mobile=phone)
    tid = new_thread(page, photo)
    page.goto(f"/t/{tid}")
    busy_false(page)
    set_marker(page)
    send_and_land_in_view(page, tid, "make it black and white")
    n = send_and_land_in_view(page, tid, "flip it horizontally")
    name = "phone" if phone else "desktop"
    shot(page, f"conversation-{name}-new-result-in-view")
    expect(page.locator("#new-result")).to_be_hidden()

    # Scrolled up to read an earlier turn, something new arrives (here a turn sent through the
    # JSON API, as from another device; the page fetches its live block as a server-sent event would
    # make it): the page stays where the person is and offers the button instead.
    page.mouse.wheel(0, -5000)
    page.wait_for_function("() => window.scrollY < 50")
    y = page.evaluate("window.scrollY")
    resp = page.request.post(f"/api/v1/threads/{tid}/turns", form={"instruction": "make it sepia"})
    assert resp.status in (200, 201, 202), resp.text()[:300]
    page.evaluate("htmx.trigger('#live-refresh', 'refresh')")
    pill = page.locator("#new-result")
    expect(pill).to_be_visible()
    expect(pill).to_have_text(re.compile(r"New result"))
    assert abs(page.evaluate("window.scrollY") - y) < 5, "the page moved while the person was reading above"
    shot(page, f"conversation-{name}-new-result-button")
    pill.click()
    page.wait_for_function(AT_BOTTOM)
    expect(pill).to_be_hidden()
    expect_version(page, n + 1)  # arrives while pinned to the bottom: follows it
    page.wait_for_function(IN_VIEW_ABOVE_COMPOSER, arg=newest_image(n + 1), timeout=10_000)
    assert_marker(page)


@browser_test
def test_a_long_thread_opens_at_its_newest_turn_without_loading_its_oldest_previews(ui, photo):
    # 20 versions: the page shows all 20 turns (the last N), each about 600 px tall.
    page = ui.page()
    tid = new_thread(page, photo)
    for i in range(19):
        resp = page.request.post(f"/api/v1/threads/{tid}/turns",
                                 multipart={"instruction": ("make it warmer", "make it cooler")[i % 2]})
        assert resp.status == 202, resp.text()[:300]
    page.wait_for_function(f"""async () => (await (await fetch('/api/v1/threads/{tid}')).json()).head_version === 20""",
                           polling=250, timeout=60_000)

    # Opened afresh: the first frame is laid out at the newest turn (static/scroll_start.js with the
    # head's rel=expect), so the lazy previews at the top never come within the browser's loading
    # distance. Before, Chromium laid the page out at the top first and fetched the oldest six.
    fresh = page.context.new_page()  # the same owner, a new tab
    previews: list[int] = []
    fresh.on("request", lambda r: previews.append(int(re.search(r"/versions/(\d+)/image", r.url).group(1)))
             if "size=512" in r.url else None)
    fresh.goto(f"/t/{tid}", wait_until="networkidle")
    fresh.wait_for_function(AT_BOTTOM)
    fresh.wait_for_function(IN_VIEW_ABOVE_COMPOSER, arg=newest_image(20), timeout=10_000)
    assert 20 in previews and 19 in previews, previews
    assert not {1, 2, 3, 4} & set(previews), f"the oldest turns' previews loaded: {sorted(previews)}"
    shot(fresh, "conversation-long-thread-opens-at-newest")

    # Scrolling up still brings them (they are lazy, not missing).
    fresh.locator(newest_image(1)).scroll_into_view_if_needed()
    expect(fresh.locator(newest_image(1))).to_have_js_property("complete", True)
    fresh.wait_for_function("sel => document.querySelector(sel).naturalWidth > 0", arg=newest_image(1))
    assert 1 in previews


# --------------------------------------------------------------------------- errors next to the composer


@browser_test
def test_offline_send_and_empty_enter_show_next_to_the_composer(ui, photo):
    ui.allow_console_error(r"status of 422")
    page = ui.page()
    tid = new_thread(page, photo)
    box = page.locator("textarea#instruction")
    alert = page.locator("#composer-alert")
    expect(alert).to_be_hidden()

    # An empty Enter says why nothing happened, where the person is looking.
    box.click()
    box.press("Enter")
    expect(alert).to_be_visible()
    expect(alert).to_have_attribute("role", "alert")
    expect(alert).to_contain_text("Type an instruction first")
    # The Send button with an empty box says the same (not the browser's own bubble).
    page.locator("#composer-alert-close").click()
    expect(alert).to_be_hidden()
    page.locator("button#send").click()
    expect(alert).to_contain_text("Type an instruction first")

    # The server's refusal of a blank instruction lands there too, not in the flash area at the top.
    box.fill("   ")
    page.locator("button#send").click()
    expect(alert).to_contain_text(re.compile(r"\w{4}"))
    expect(alert).not_to_contain_text("Type an instruction first")
    expect(page.locator("#flash")).to_be_empty()
    # So does a file that is not an image, attached with the paperclip.
    page.set_input_files("input#attach-input", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hi"}])
    expect(alert).to_contain_text("Only JPEG, PNG and WebP images can be attached")

    # Offline: nothing is sent, the text stays, the alert says so.
    turns = page.locator("section#conversation li.turn")
    before = turns.count()
    page.context.set_offline(True)
    box.fill("make it sepia")
    box.press("Enter")
    expect(alert).to_contain_text("You are offline; nothing was sent")
    expect(box).to_have_value("make it sepia")
    expect(turns).to_have_count(before)
    page.wait_for_function(IN_VIEW, arg="#composer-alert")
    shot(page, "conversation-offline")
    page.context.set_offline(False)

    # Back online, sending again clears the alert and the box.
    page.wait_for_function("navigator.onLine")
    box.press("Enter")
    expect(turns).to_have_count(before + 1)
    expect(alert).to_be_hidden()
    expect(box).to_have_value("")
    expect_version(page, 2)


@browser_test
def test_a_network_error_keeps_the_text(ui, photo):
    """The connection drops while sending (htmx:sendError): the same alert, the text kept."""
    page = ui.page()
    tid = new_thread(page, photo)
    page.route(re.compile(rf"/t/{tid}/turns$"), lambda route: route.abort("internetdisconnected"))
    # htmx logs the failed request to the console.
    ui.allow_console_error(r"ERR_INTERNET_DISCONNECTED|Failed to load resource|htmx:(afterRequest|sendError)|status of (413|500)|Response Status Error Code 500")
    box = page.locator("textarea#instruction")
    box.fill("make it sepia")
    box.press("Enter")
    alert = page.locator("#composer-alert")
    expect(alert).to_contain_text(re.compile(r"nothing was sent"))
    expect(box).to_have_value("make it sepia")
    expect(page.locator("section#conversation li.turn")).to_have_count(1)
    expect(page.locator("#flash")).to_be_empty()

    # A 4xx answered before the app (the request-size limits' bare page, app/http_limits.py) shows there
    # too, and does not replace the conversation.
    page.unroute(re.compile(rf"/t/{tid}/turns$"))
    bare = ('<!doctype html><html lang="en"><meta charset="utf-8"><title>Error 413</title><h1>Error 413</h1>'
            '<p>The upload is too large: at most 25 MB per file.</p><p><a href="/">Back to Retouch</a></p></html>')
    page.route(re.compile(rf"/t/{tid}/turns$"), lambda route: route.fulfill(status=413, body=bare, content_type="text/html"))
    box.press("Enter")
    expect(alert).to_contain_text("The upload is too large: at most 25 MB per file.")
    expect(box).to_have_value("make it sepia")
    expect(page.locator("section#conversation li.turn")).to_have_count(1)
    expect(version_figure(page, 1)).to_be_visible()
    # A server error: said there as well, the text kept.
    page.unroute(re.compile(rf"/t/{tid}/turns$"))
    page.route(re.compile(rf"/t/{tid}/turns$"), lambda route: route.fulfill(status=500, body="oops"))
    box.press("Enter")
    expect(alert).to_contain_text("Something went wrong on the server")
    expect(box).to_have_value("make it sepia")
    expect(page.locator("#flash")).to_be_empty()


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory) -> Server:
    """A server that allows one turn a minute (creating the thread takes it)."""
    with serve(tmp_path_factory.mktemp("browser-rate-limit"), RETOUCH_BACKEND="local",
               RETOUCH_TURN_RATE_LIMIT="1/minute") as srv:
        yield srv


class TestRateLimit:
    @pytest.fixture
    def server(self, limited_server) -> Server:
        return limited_server

    @browser_test
    def test_the_rate_limit_shows_next_to_the_composer(self, ui, photo):
        ui.allow_console_error(r"status of 429")
        page = ui.page()
        tid = new_thread(page, photo)
        page.goto(f"/t/{tid}")
        busy_false(page)
        box = page.locator("textarea#instruction")
        alert = page.locator("#composer-alert")
        box.fill("make it black and white")
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            box.press("Enter")
            expect(alert).to_be_visible()
            expect(alert).to_have_attribute("role", "alert")
            expect(alert).to_contain_text(re.compile(r"Try again in \d+ seconds"))
            expect(box).to_have_value("make it black and white")
            expect(page.locator("#flash")).to_be_empty()
            expect(page.locator("section#conversation li.turn")).to_have_count(1)
            page.wait_for_function(IN_VIEW, arg="#composer-alert")
            shot(page, f"conversation-rate-limit-{scheme}")
            # Dismissed with ×; the text is still there to send later.
            page.locator("#composer-alert-close").click()
            expect(alert).to_be_hidden()
            expect(box).to_have_value("make it black and white")


# --------------------------------------------------------------------------- the composer follows the head


@browser_test
def test_the_composer_follows_the_head_after_creating_from_text(ui):
    page = ui.page()
    page.goto("/")
    page.locator("textarea#prompt").fill("a 800x600 poster with a blue background and the title 'SUMMER SALE'")
    page.locator("#new-thread button[type=submit]").click()
    page.wait_for_url(re.compile(r"/t/[^/?#]+/?$"))
    set_marker(page)
    box = page.locator("textarea#instruction")
    expect_version(page, 1)
    # v1 arrived through a live update: no reload, yet the composer knows there is an image now.
    expect(page.locator("button#mask-toggle")).to_be_enabled()
    expect(box).to_have_attribute("placeholder", "Describe what to change…")
    page.locator("button#mask-toggle").click()
    expect(page.locator("#mask-editor")).to_be_visible()
    src = page.locator("#mask-image").get_attribute("src")
    assert src and src.endswith("/versions/1/image"), src
    expect(page.locator("#mask-image")).to_have_js_property("complete", True)
    assert page.locator("#mask-image").evaluate("e => e.naturalWidth") == 800
    assert_marker(page)


# --------------------------------------------------------------------------- keyboard and accessibility


@browser_test
def test_focus_on_open_shortcuts_and_title(ui, photo):
    page = ui.page()
    tid = new_thread(page, photo)
    page.goto(f"/t/{tid}")
    busy_false(page)
    # The composer is focused on open (a computer with a mouse).
    expect(page.locator("textarea#instruction")).to_be_focused()
    # The title is the page's one h1, with a rename button beside it.
    h1 = page.locator("h1")
    expect(h1).to_have_count(1)
    expect(h1).to_have_text(re.compile(r"holiday"))
    # "/" from anywhere outside a field jumps to the composer.
    h1.click()
    expect(page.locator("textarea#instruction")).not_to_be_focused()
    page.keyboard.press("/")
    expect(page.locator("textarea#instruction")).to_be_focused()
    expect(page.locator("textarea#instruction")).to_have_value("")  # the "/" was not typed
    # "?" opens the list of shortcuts; Escape closes it.
    h1.click()
    page.keyboard.press("?")
    dialog = page.locator("dialog#shortcuts-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Jump to the message box")
    shot(page, "conversation-shortcuts")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    # Inside a field, "?" and "/" are just typed.
    page.keyboard.press("/")
    page.keyboard.type("what? / why")
    expect(page.locator("textarea#instruction")).to_have_value("what? / why")
    expect(dialog).to_be_hidden()

    # Renaming: the button swaps in a field; Enter saves, the h1 and the sidebar follow.
    page.locator("button#title-rename").click()
    title = page.locator("input#thread-title")
    expect(title).to_be_focused()
    title.fill("Sunny house")
    title.press("Enter")
    expect(h1).to_have_text("Sunny house")
    expect(page.locator("button#title-rename")).to_be_focused()
    expect(page.locator(f'nav#thread-list a.thread-link[href$="/t/{tid}"] .thread-title')).to_have_text("Sunny house")
    assert api_thread(page, tid)["title"] == "Sunny house"
    # Escape undoes.
    page.locator("button#title-rename").click()
    title.fill("Something else")
    title.press("Escape")
    expect(h1).to_have_text("Sunny house")
    expect(title).to_be_hidden()
    assert api_thread(page, tid)["title"] == "Sunny house"

    # Back from a version page (in-app navigation): the thread opens at its newest turn again,
    # with the composer focused.
    open_version_page(page, 1)
    page.wait_for_url(re.compile(rf"/t/{tid}/versions/1$"))
    page.locator("a#back-to-thread").click()
    page.wait_for_url(re.compile(rf"/t/{tid}$"))
    expect(page.locator("textarea#instruction")).to_be_focused()
    page.wait_for_function(IN_VIEW_ABOVE_COMPOSER, arg=newest_image(1), timeout=10_000)


@browser_test
def test_phone_does_not_focus_the_composer(ui, photo):
    page = ui.page(viewport=PHONE, has_touch=True, is_mobile=True)
    tid = new_thread(page, photo)
    page.goto(f"/t/{tid}")
    busy_false(page)
    assert not page.evaluate("matchMedia('(pointer: fine)').matches")
    expect(page.locator("textarea#instruction")).not_to_be_focused()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@browser_test
def test_pressed_select_region_is_readable(ui, photo, scheme):
    page = ui.page(color_scheme=scheme)
    new_thread(page, photo)
    toggle = page.locator("button#mask-toggle")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    expect(page.locator("button#mode-region")).to_have_attribute("aria-pressed", "true")
    for selector in ("button#mask-toggle", "button#mode-region"):
        page.locator(selector).hover()
        ratio = contrast(page, selector)
        assert ratio >= 4.5, f"{selector} pressed and hovered in {scheme}: contrast {ratio:.2f}:1"
        page.mouse.move(0, 0)
        ratio = contrast(page, selector)
        assert ratio >= 4.5, f"{selector} pressed in {scheme}: contrast {ratio:.2f}:1"
    shot(page, f"conversation-select-region-{scheme}")
