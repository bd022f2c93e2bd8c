"""Accessibility: axe-core (``tests/axe.py``, WCAG 2.1 A and AA rules) on
every kind of page and page state, in the light and the dark colour scheme,
in real Chromium (see ``tests/test_browser.py`` for the set-up; every
screenshot those tests take is checked the same way by ``shot``). Also: the
checker itself fails on a page that is broken on purpose."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from tests.axe import AxeViolations, check_axe, check_axe_both_schemes, current_scheme
from tests.test_browser import (  # noqa: F401 - fixtures
    PHONE,
    UI,
    browser,
    busy_false,
    expect,
    expect_version,
    new_thread,
    photo,
    send,
    serve,
    shot,
    submit,
    version_figure,
    open_version_page,
    version_node,
)

BROKEN = """<!doctype html><html lang="en"><head><title>Broken on purpose</title></head><body><main>
<h1>Broken on purpose</h1>
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" width="40" height="40">
<p style="color:#bbb;background:#fff">Light grey on white.</p>
</main></body></html>"""

DARK_ONLY_BROKEN = """<!doctype html><html lang="en"><head><title>Dark only</title><style>
p { color: #222; background: #fff; }
@media (prefers-color-scheme: dark) { p { color: #333; background: #111; } }
</style></head><body><main><h1>Dark only</h1><p>Readable in light only.</p></main></body></html>"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """An open instance (local backend)."""
    with serve(tmp_path_factory.mktemp("axe-server"), RETOUCH_BACKEND="local") as srv:
        yield srv


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    """An instance behind a password, for the login page."""
    with serve(tmp_path_factory.mktemp("axe-gated"), RETOUCH_BACKEND="local",
               RETOUCH_ACCESS_PASSWORD="correct horse") as srv:
        yield srv


class Sweep:
    """Checks page states in both colour schemes and keeps every failure, so
    one run reports all of them."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.checked: list[str] = []

    def check(self, page, label: str) -> None:
        self.checked.append(label)
        try:
            check_axe_both_schemes(page, label)
        except AxeViolations as exc:
            self.failures.append(str(exc))

    def done(self) -> None:
        assert not self.failures, "\n\n".join(self.failures)


def test_the_checker_fails_on_a_broken_page(browser):
    """An image without alt text and light-grey text on white: axe reports both."""
    page = browser.new_page()
    try:
        page.set_content(BROKEN)
        with pytest.raises(AxeViolations) as caught:
            check_axe(page, "broken page")
        ids = {v["id"] for v in caught.value.violations}
        assert {"image-alt", "color-contrast"} <= ids, ids
        message = str(caught.value)
        assert "image-alt [critical]" in message and "https://dequeuniversity.com/rules/axe/" in message
        assert '["img"]' in message  # the target selector
        # The same page, fixed, passes.
        # The screenshot helper of the browser tests runs the same check.
        with pytest.raises(AxeViolations):
            shot(page, "axe-broken-on-purpose")
        # The same page, fixed, passes.
        page.set_content(BROKEN.replace('height="40">', 'height="40" alt="A dot">').replace("#bbb", "#555"))
        check_axe(page, "fixed page")
    finally:
        page.close()


def test_both_colour_schemes_are_checked(browser):
    """Text that is readable only in the light scheme fails in the dark one, and the other way round."""
    page = browser.new_page(color_scheme="light")
    try:
        page.set_content(DARK_ONLY_BROKEN)
        check_axe(page, "dark-only broken page, light")
        with pytest.raises(AxeViolations) as caught:
            check_axe_both_schemes(page, "dark-only broken page")
        assert "(dark)" in str(caught.value) and "(light)" not in str(caught.value)
        assert {v["id"] for v in caught.value.violations} == {"color-contrast"}
        assert current_scheme(page) == "light", "the scheme was not put back"
        page.emulate_media(color_scheme="dark")
        with pytest.raises(AxeViolations) as caught:
            check_axe_both_schemes(page, "dark-only broken page")
        assert "(dark)" in str(caught.value) and "(light)" not in str(caught.value)
        assert current_scheme(page) == "dark"
    finally:
        page.close()


def test_every_page_state_in_light_and_dark(browser, server, gated, photo):
    ui = UI(browser, server, "axe-sweep")
    sweep = Sweep()
    try:
        page = ui.page()
        page.goto("/")
        sweep.check(page, "home, no threads")

        tid = new_thread(page, photo)
        sweep.check(page, "thread, one version (empty conversation)")

        page.goto("/")
        sweep.check(page, "home with a thread in the sidebar")

        page.goto(f"/t/{tid}")
        busy_false(page)
        page.locator("button#mask-toggle").click()
        expect(page.locator("#mask-editor canvas#mask-canvas")).to_be_visible()
        sweep.check(page, "thread, the painter open")
        page.locator("button#mask-toggle").click()

        page.locator("details#options summary").click()
        sweep.check(page, "thread, options open")
        page.locator("details#options summary").click()

        send(page, tid, "make it black and white")
        send(page, tid, "increase the contrast")
        sweep.check(page, "thread with versions")
        opener = page.locator('section#conversation a[data-lightbox="open"]')
        if opener.count():  # the image lightbox (static/lightbox.js)
            opener.last.click()
            expect(page.locator("dialog#lightbox")).to_be_visible()
            sweep.check(page, "thread, the lightbox open")
            page.keyboard.press("Escape")
            expect(page.locator("dialog#lightbox")).to_be_hidden()

        submit(page, "add a dragon")  # the local backend declines this
        busy_false(page)
        expect(page.locator("section#conversation li.turn").last.locator(".declined")).to_be_visible()
        sweep.check(page, "thread with a decline")

        # A pending turn: hold the live updates back so the pending bubble stays put.
        page.route(re.compile(r"/t/[^/]+/(events|turns/[^/]+|live)(\?.*)?$"), lambda route: None)
        page.locator("form#composer textarea#instruction").fill("rotate it 90 degrees clockwise")
        page.locator("button#send").click()
        expect(page.locator(".bubble.assistant .pending").first).to_be_visible()
        sweep.check(page, "thread with a pending turn")
        page.unroute_all(behavior="ignoreErrors")

        page.goto(f"/t/{tid}")
        busy_false(page)
        open_version_page(page, 2)
        page.wait_for_url(re.compile(rf"/t/{tid}/versions/2$"))
        sweep.check(page, "version page")

        page.locator("a#compare-link").click()
        page.wait_for_url(re.compile(rf"/t/{tid}/compare"))
        expect(page.locator("section#compare")).to_be_visible()
        sweep.check(page, "compare")

        page.goto(f"/t/{tid}")
        busy_false(page)
        page.locator("button#share-open").click()
        page.locator("button#share-create").click()
        url_box = page.locator("dialog#share-dialog input#share-url")
        expect(url_box).to_have_value(re.compile(r"/s/"))
        link = url_box.input_value()
        sweep.check(page, "thread, share dialog open")
        page.locator("button#share-close").click()

        other = ui.page()
        other.goto(link)
        expect(other.locator("section#conversation")).to_be_visible()
        sweep.check(other, "shared page")
        phone = ui.page(viewport=PHONE)
        phone.goto(link)
        expect(phone.locator("section#conversation")).to_be_visible()
        sweep.check(phone, "shared page on a phone")
        phone.goto(f"{urlsplit(link).path}/versions/1")
        sweep.check(phone, "shared version page on a phone")

        page.goto("/devices")
        sweep.check(page, "devices")
        page.locator("#make-link").click()
        expect(page.locator("#device-link-url")).to_be_visible()
        sweep.check(page, "devices, a new link")
        device_link = page.locator("#device-link-url").input_value()
        other.goto(device_link)
        sweep.check(other, "device link page")

        mobile = page.context.new_page()  # the owner, on a narrow window
        mobile.set_viewport_size(PHONE)
        mobile.goto(f"/t/{tid}")
        busy_false(mobile)
        sweep.check(mobile, "thread on a phone")
        mobile.locator("#threads-toggle").click()
        expect(mobile.locator("#sidebar")).to_be_visible()
        sweep.check(mobile, "thread on a phone, the threads drawer open")

        resp = page.goto("/t/no-such-thread")
        assert resp is not None and resp.status == 404
        sweep.check(page, "error page (404)")

        g = UI(browser, gated, "axe-gated")
        try:
            login = g.page()
            login.goto("/")
            login.wait_for_url(re.compile(r"/login"))
            sweep.check(login, "login")
            login.locator("input[type=password]").fill("wrong")
            login.locator("form button[type=submit]").click()
            expect(login.locator("body")).to_contain_text("Wrong password")
            sweep.check(login, "login, wrong password")
        finally:
            g.close()
        assert len(sweep.checked) >= 20, sweep.checked
    except BaseException:
        if sweep.failures:
            print("axe failures before the error:\n" + "\n\n".join(sweep.failures))
        raise
    finally:
        ui.close()
    sweep.done()
