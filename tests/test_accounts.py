"""Accounts over HTTP: the password login is one owner, device links carry
a cookie owner to another browser (and are refused once revoked, used or
expired), threads move into an account, and the OpenID Connect login runs
against a real provider (oidc-provider-mock on a thread)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.models import DeviceLink
from tests.conftest import another_owner, make_settings, png_bytes

PASSWORD = "correct horse"
# oidc-provider-mock's own use of Authlib warns; that is the provider's code, not Retouch's.
pytestmark = pytest.mark.filterwarnings("ignore:get_jwt_config:DeprecationWarning")


def app_client(tmp_path, sqlite_url, **extra) -> TestClient:
    return TestClient(create_app(make_settings(tmp_path / "data", sqlite_url, **extra)), follow_redirects=False)


def titles(client: TestClient, **headers) -> list[str]:
    r = client.get("/api/v1/threads", headers=headers)
    assert r.status_code == 200, r.text
    return sorted(t["title"] for t in r.json()["threads"])


def new_thread(client: TestClient, title: str, **headers) -> str:
    r = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")},
                    data={"title": title}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def password_login(client: TestClient) -> httpx.Response:
    r = client.post("/login", data={"password": PASSWORD, "next": "/"})
    assert r.status_code == 303, r.text
    return r


# --------------------------------------------------------------------------- password mode


def test_password_mode_is_one_owner_for_every_browser_and_script(tmp_path, database_url, fake_backend):
    with app_client(tmp_path, database_url, access_password=PASSWORD) as laptop:
        password_login(laptop)
        new_thread(laptop, "from the laptop")
        with another_owner(laptop, follow_redirects=False) as phone:
            assert phone.get("/api/v1/threads").status_code == 401
            password_login(phone)
            assert titles(phone) == ["from the laptop"]
            new_thread(phone, "from the phone")
        assert titles(laptop) == ["from the laptop", "from the phone"]
        assert titles(laptop, authorization=f"Bearer {PASSWORD}") == ["from the laptop", "from the phone"]
        page = laptop.get("/")
        assert "Logged in (password)" in page.text and 'id="sign-out"' in page.text
        assert laptop.get("/devices").status_code == 404  # logins carry threads; no device links


def test_sign_out_clears_the_login(tmp_path, sqlite_url, fake_backend):
    with app_client(tmp_path, sqlite_url, access_password=PASSWORD) as c:
        password_login(c)
        r = c.post("/logout")
        assert r.status_code == 303 and r.headers["location"] == "/login"
        cleared = r.headers.get_list("set-cookie")
        assert any(v.startswith("retouch_access=;") and "Max-Age=0" in v for v in cleared)
        assert c.get("/api/v1/threads").status_code == 401


def test_upgrade_to_password_offers_to_move_the_browsers_threads(tmp_path, database_url, fake_backend):
    with app_client(tmp_path, database_url) as before:  # open mode: a cookie owner makes two threads
        new_thread(before, "one")
        new_thread(before, "two")
        cookies = dict(before.cookies)
    with app_client(tmp_path, database_url, access_password=PASSWORD) as c:
        c.cookies.update(cookies)
        r = password_login(c)
        assert r.headers["location"] == "/account/move?next=/"
        assert titles(c) == []  # not moved until asked
        offer = c.get("/account/move?next=/")
        assert offer.status_code == 200 and "Move 2 threads from this browser into your account" in offer.text
        refused = c.post("/account/move", data={"next": "/"}, headers={"Sec-Fetch-Site": "cross-site"})
        assert refused.status_code == 403 and titles(c) == []  # CSRF: cross-site POSTs never move
        moved = c.post("/account/move", data={"next": "/t/x"}, headers={"Sec-Fetch-Site": "same-origin"})
        assert moved.status_code == 303 and moved.headers["location"] == "/t/x"
        assert titles(c) == ["one", "two"]
        assert c.get("/account/move").headers["location"] == "/"  # nothing left to offer
        with another_owner(c, follow_redirects=False) as phone:
            password_login(phone)
            assert titles(phone) == ["one", "two"]


# --------------------------------------------------------------------------- device links (open mode)


def make_link(client: TestClient) -> str:
    r = client.post("/devices")
    assert r.status_code == 201, r.text
    url = re.search(r'id="device-link-url"[^>]*value="([^"]+)"', r.text).group(1)
    return urlsplit(url).path


def link_ids(client: TestClient) -> list[str]:
    return re.findall(r'action="/devices/([^/"]+)/revoke"', client.get("/devices").text)


def test_device_link_carries_the_owner_once(tmp_path, database_url, fake_backend):
    with app_client(tmp_path, database_url) as laptop, TestClient(laptop.app, follow_redirects=False) as phone:
        new_thread(laptop, "holiday")
        assert 'href="/devices"' in laptop.get("/").text  # "Use on another device" in the header
        path = make_link(laptop)
        assert path.startswith("/d/") and path[3:] not in laptop.get("/devices").text  # shown once
        new_thread(phone, "phone's own")
        confirm = phone.get(path)
        assert confirm.status_code == 200 and "Bring this browser's 1 thread along" in confirm.text
        used = phone.post(path, data={"bring": "1"})
        assert used.status_code == 303
        owner_cookies = [v for v in used.headers.get_list("set-cookie") if v.startswith("retouch_owner=")]
        assert len(owner_cookies) == 1 and "HttpOnly" in owner_cookies[0]
        assert titles(phone) == titles(laptop) == ["holiday", "phone's own"]
        again = TestClient(laptop.app).get(path)
        assert again.status_code == 410 and "already used" in again.text
        assert 'data-state="used"' in laptop.get("/devices").text


def test_revoked_expired_and_forged_links_are_refused(tmp_path, sqlite_url, fake_backend):
    with app_client(tmp_path, sqlite_url) as laptop, TestClient(laptop.app, follow_redirects=False) as other:
        new_thread(laptop, "private")
        revoked = make_link(laptop)
        [link_id] = link_ids(laptop)
        assert laptop.post(f"/devices/{link_id}/revoke").status_code == 303
        assert other.post(f"/devices/{link_id}/revoke").status_code == 404  # not theirs
        for method in (other.get, other.post):
            r = method(revoked)
            assert r.status_code == 410 and "revoked" in r.text
        assert titles(other) == []

        expired = make_link(laptop)
        with laptop.app.state.ctx.sessions() as session:
            for link in session.query(DeviceLink).filter(DeviceLink.revoked_at.is_(None)):
                link.expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)
            session.commit()
        r = other.post(expired)
        assert r.status_code == 410 and "expired" in r.text and titles(other) == []

        forged = other.get(revoked[:-3] + "xyz")
        assert forged.status_code == 404 and "not valid" in forged.text


def test_the_database_keeps_only_a_hash_of_the_link(tmp_path, sqlite_url, fake_backend):
    with app_client(tmp_path, sqlite_url) as c:
        path = make_link(c)
        with c.app.state.ctx.sessions() as session:
            [link] = session.query(DeviceLink).all()
        raw = path[3:].split(".")[0]
        assert len(link.token_sha256) == 64 and raw not in link.token_sha256 and raw not in link.id
        assert link.expires_at.replace(tzinfo=timezone.utc) - link.created_at.replace(tzinfo=timezone.utc) \
            == timedelta(days=7)


# --------------------------------------------------------------------------- OpenID Connect


@pytest.fixture(scope="module")
def provider() -> str:
    """A real OpenID Provider (oidc-provider-mock) on a free port."""
    oidc_provider_mock = pytest.importorskip("oidc_provider_mock")
    with oidc_provider_mock.run_server_in_thread(require_nonce=True) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def oidc_client(tmp_path, sqlite_url, fake_backend, provider):
    with app_client(tmp_path, sqlite_url, oidc_issuer=provider, oidc_client_id="retouch",
                    oidc_client_secret="s3cret") as c:
        yield c


def oidc_login(client: TestClient, provider: str, sub: str, name: str, next: str = "/") -> httpx.Response:
    """Log in through the provider's form as ``sub``; the response to the callback."""
    assert httpx.put(f"{provider}/users/{quote(sub)}", json={"name": name, "email": sub}).status_code == 204
    start = client.get(f"/login/oidc?next={quote(next)}")
    assert start.status_code == 302, start.text
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43  # RFC 7636
    assert query["state"][0] and query["nonce"][0] and "openid" in query["scope"][0].split()
    assert query["redirect_uri"] == ["http://testserver/login/oidc/callback"]
    authorized = httpx.post(start.headers["location"], data={"sub": sub})
    assert authorized.status_code == 302, authorized.text
    back = urlsplit(authorized.headers["location"])
    return client.get(f"{back.path}?{back.query}")


def test_oidc_gate_and_login_page(oidc_client, provider):
    r = oidc_client.get("/api/v1/threads")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Cookie")
    assert oidc_client.get("/").headers["location"] == "/login?next=/"
    page = oidc_client.get("/login")
    assert "Log in with localhost" in page.text and 'name="password"' not in page.text


def test_oidc_accounts_own_threads_on_every_device(oidc_client, provider):
    done = oidc_login(oidc_client, provider, "alice@example.com", "Alice Example")
    assert done.status_code == 303 and done.headers["location"] == "/"
    assert "Alice Example" in oidc_client.get("/").text
    new_thread(oidc_client, "alice's")
    with another_owner(oidc_client, follow_redirects=False) as phone:
        oidc_login(phone, provider, "alice@example.com", "Alice Example")
        assert titles(phone) == ["alice's"]
    with another_owner(oidc_client, follow_redirects=False) as bob:
        oidc_login(bob, provider, "bob@example.com", "Bob")
        assert titles(bob) == []
    signed_out = oidc_client.post("/logout")
    assert any(v.startswith("retouch_account=;") for v in signed_out.headers.get_list("set-cookie"))
    assert oidc_client.get("/api/v1/threads").status_code == 401


def test_oidc_first_login_offers_to_move_cookie_threads(tmp_path, sqlite_url, fake_backend, provider):
    with app_client(tmp_path, sqlite_url) as before:
        new_thread(before, "made before logins")
        cookies = dict(before.cookies)
    with app_client(tmp_path, sqlite_url, oidc_issuer=provider, oidc_client_id="retouch",
                    oidc_client_secret="s3cret") as c:
        c.cookies.update(cookies)
        done = oidc_login(c, provider, "carol@example.com", "Carol", next="/t/abc?x=1&y=2")
        assert done.headers["location"] == "/account/move?next=/t/abc%3Fx%3D1%26y%3D2"
        assert "Move 1 thread from this browser into your account" in c.get(done.headers["location"]).text
        c.post("/account/move", data={"next": "/"})
        assert titles(c) == ["made before logins"]


def test_oidc_callback_without_the_login_state_is_refused(oidc_client, provider):
    r = oidc_client.get("/login/oidc/callback?code=abc&state=forged")
    assert r.status_code == 400 and "expired or was started in another tab" in r.text
    assert oidc_client.get("/api/v1/threads").status_code == 401


def test_oidc_settings_are_checked_at_start(tmp_path, sqlite_url, fake_backend):
    with pytest.raises(ValueError, match="not both"):
        create_app(make_settings(tmp_path / "d1", sqlite_url, oidc_issuer="https://id.example", oidc_client_id="a",
                                 oidc_client_secret="b", access_password="x"))
    with pytest.raises(ValueError, match="RETOUCH_OIDC_CLIENT_SECRET"):
        create_app(make_settings(tmp_path / "d2", sqlite_url, oidc_issuer="https://id.example", oidc_client_id="a"))


def test_oidc_forged_account_cookie_is_refused(oidc_client, provider):
    oidc_login(oidc_client, provider, "dave@example.com", "Dave")
    good = oidc_client.cookies["retouch_account"]
    assert oidc_client.get("/api/v1/threads").status_code == 200
    oidc_client.cookies.clear()
    oidc_client.cookies.set("retouch_account", good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"))
    assert oidc_client.get("/api/v1/threads").status_code == 401


def test_oidc_provider_that_names_another_issuer_is_refused(tmp_path, sqlite_url, fake_backend):
    """Discovery §4.3: the metadata's issuer must be the configured one. A
    server whose metadata names another issuer gets no login started."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Metadata(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = json.dumps({"issuer": "https://someone-else.example",
                               "authorization_endpoint": "https://someone-else.example/auth"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with app_client(tmp_path, sqlite_url, oidc_issuer=f"http://127.0.0.1:{server.server_port}",
                        oidc_client_id="retouch", oidc_client_secret="s3cret") as c:
            r = c.get("/login/oidc")
            assert r.status_code == 502 and "cannot be reached or is set up wrongly" in r.text
            assert "location" not in r.headers
    finally:
        server.shutdown()
        server.server_close()
