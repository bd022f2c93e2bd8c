"""Real-browser test of OpenID Connect accounts: a real OpenID Provider
(oidc-provider-mock, on a thread of this process, on a free port), a real
``retouch serve`` configured with it, and Chromium filling the provider's
login form. Helpers come from ``tests/test_browser.py`` (skipped as that
module is when Chromium or Playwright is missing).

Screenshots: ``tests/artifacts/browser/accounts-*.png``.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.test_browser import (  # noqa: F401 - fixtures are found by name
    PHONE, UI, browser, browser_test, expect, new_thread, no_horizontal_scroll, photo, serve, shot)

oidc_provider_mock = pytest.importorskip("oidc_provider_mock")

USERS = {"alice@example.com": "Alice Example", "bob@example.com": "Bob Builder"}


@pytest.fixture(scope="module")
def provider() -> str:
    """The provider's issuer URL, with Alice and Bob known by name."""
    with oidc_provider_mock.run_server_in_thread(require_nonce=True) as server:
        issuer = f"http://localhost:{server.server_port}"
        for sub, name in USERS.items():
            assert httpx.put(f"{issuer}/users/{quote(sub)}", json={"name": name, "email": sub}).status_code == 204
        yield issuer


@pytest.fixture
def ui(browser, request) -> UI:
    u = UI(browser, None, request.node.name)
    yield u
    u.close()


def context(ui: UI, server, **kwargs):
    """A browser context on ``server``; the provider's page asks a CDN for its
    stylesheet, which this offline machine cannot reach: that request is
    aborted at once, and its console error allowed."""
    ui.server = server
    ctx = ui.context(**kwargs)
    ctx.route(re.compile(r"^https://cdn\.jsdelivr\.net/"), lambda route: route.abort())
    return ctx


def log_in(page, sub: str) -> None:
    """From Retouch's login page, through the provider's form, back to Retouch."""
    expect(page.locator("a#login-oidc")).to_have_text("Log in with localhost")
    page.locator("a#login-oidc").click()
    page.wait_for_url(re.compile(r"/oauth2/authorize\?"))
    assert "code_challenge_method=S256" in page.url and "nonce=" in page.url and "state=" in page.url
    page.get_by_placeholder("sub").fill(sub)
    page.get_by_role("button", name="Authorize").click()


@browser_test
def test_accounts_follow_the_person_across_browsers(ui, provider, photo, tmp_path: Path):
    ui.allow_console_error(r"Failed to load resource|cdn\.jsdelivr\.net")
    oidc = {"RETOUCH_BACKEND": "local", "RETOUCH_OIDC_ISSUER": provider, "RETOUCH_OIDC_CLIENT_ID": "retouch",
            "RETOUCH_OIDC_CLIENT_SECRET": "not-checked-by-the-mock"}

    # Before logins existed: this browser made a thread as a cookie owner.
    with serve(tmp_path, RETOUCH_BACKEND="local") as open_server:
        laptop = context(ui, open_server)
        page = laptop.new_page()
        first = new_thread(page, photo)
        page.locator("a#other-device").click()  # "Use on another device": a link for the phone
        page.locator("#make-link").click()
        link = page.locator("#device-link-url").input_value()
        assert re.search(r"/d/[\w.-]+$", link)
        shot(page, "accounts-devices")
        phone = context(ui, open_server, viewport=PHONE).new_page()
        phone.goto(link)
        no_horizontal_scroll(phone)
        shot(phone, "accounts-device-link")
        phone.locator("#use-link-submit").click()
        phone.wait_for_url(re.compile(r"/$"))
        phone.locator("#threads-toggle").click()  # on a phone the thread list is a drawer
        expect(phone.locator(f'#thread-list a[href="/t/{first}"]')).to_be_visible()
        cookies = laptop.storage_state()
        laptop.close()

    with serve(tmp_path, **oidc) as server:
        # The same browser after the upgrade: the login, then the offer to move its thread.
        laptop = context(ui, server, storage_state=cookies)
        page = laptop.new_page()
        page.goto("/")
        page.wait_for_url(re.compile(r"/login\?next=/$"))
        shot(page, "accounts-login")
        log_in(page, "alice@example.com")
        page.wait_for_url(re.compile(r"/account/move\?next=/$"))
        expect(page.locator("#move-submit")).to_have_text("Move 1 thread from this browser into your account")
        shot(page, "accounts-move-offer")
        page.locator("#move-submit").click()
        page.wait_for_url(re.compile(r"/$"))
        expect(page.locator("#account-name")).to_have_text("Alice Example")
        expect(page.locator(f'#thread-list a[href="/t/{first}"]')).to_be_visible()
        second = new_thread(page, photo)
        shot(page, "accounts-header")

        # Alice on another browser: no offer (it made nothing), both threads.
        phone = context(ui, server, viewport=PHONE).new_page()
        phone.goto(f"/t/{second}")
        log_in(phone, "alice@example.com")
        phone.wait_for_url(re.compile(rf"/t/{second}$"))
        expect(phone.locator("#account-name")).to_have_text("Alice Example")
        no_horizontal_scroll(phone)
        shot(phone, "accounts-phone-header")
        phone.locator("#threads-toggle").click()  # on a phone the thread list is a drawer
        for tid in (first, second):
            expect(phone.locator(f'#thread-list a[href="/t/{tid}"]')).to_be_visible()
        phone.keyboard.press("Escape")  # close the drawer again

        # Bob sees none of them.
        bob = context(ui, server).new_page()
        bob.goto("/")
        log_in(bob, "bob@example.com")
        bob.wait_for_url(re.compile(r"/$"))
        expect(bob.locator("#account-name")).to_have_text("Bob Builder")
        expect(bob.locator("#thread-list")).to_contain_text("No threads yet")
        assert bob.request.get(f"/api/v1/threads/{second}").status == 404

        # Signing out ends the login: back to the login page, and the API says 401.
        phone.locator("#sign-out").click()
        phone.wait_for_url(re.compile(r"/login$"))
        assert phone.request.get("/api/v1/threads").status == 401
