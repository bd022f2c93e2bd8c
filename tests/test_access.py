"""Access: the optional password gate, per-owner rate limits, strangers and
guessed ids, and the security headers every response carries."""
from __future__ import annotations

import secrets

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import another_owner, make_settings, png_bytes, wait_for_thread


def app_client(tmp_path, sqlite_url, **extra) -> TestClient:
    return TestClient(create_app(make_settings(tmp_path / "data", sqlite_url, **extra)), follow_redirects=False)


@pytest.fixture
def gated(tmp_path, sqlite_url, fake_backend):
    with app_client(tmp_path, sqlite_url, access_password="correct horse") as c:
        yield c


def test_gate_asks_for_a_login(gated):
    r = gated.post("/api/v1/threads", json={"prompt": "x"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert "log in" in r.json()["detail"]
    assert gated.get("/api/v1/threads").status_code == 401
    page = gated.get("/")
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/"
    assert gated.get("/login").status_code == 200
    assert gated.get("/healthz").status_code == 200
    assert gated.get("/static/app.css").status_code == 200


def test_login_wrong_then_right_password(gated):
    wrong = gated.post("/login", data={"password": "nope", "next": "/"})
    assert wrong.status_code == 403 and "Wrong password" in wrong.text
    assert gated.post("/api/v1/threads", json={"prompt": "x"}).status_code == 401
    right = gated.post("/login", data={"password": "correct horse", "next": "//evil.example/"})
    assert right.status_code == 303 and right.headers["location"] == "/"  # no open redirect
    assert "HttpOnly" in right.headers["set-cookie"]
    assert gated.post("/api/v1/threads", json={"prompt": "x"}).status_code == 201
    assert gated.get("/").status_code == 200


def test_scripts_use_a_bearer_token(gated):
    auth = {"Authorization": "Bearer correct horse"}
    assert gated.post("/api/v1/threads", json={"prompt": "x"}, headers=auth).status_code == 201
    assert gated.post("/api/v1/threads", json={"prompt": "x"},
                      headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_shared_links_stay_viewable_but_forking_needs_a_login(gated):
    auth = {"Authorization": "Bearer correct horse"}
    tid = gated.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}, headers=auth).json()["id"]
    token = gated.post(f"/api/v1/threads/{tid}/share", headers=auth).json()["token"]
    with another_owner(gated, follow_redirects=False) as visitor:
        assert visitor.get(f"/s/{token}").status_code == 200
        shared = visitor.get(f"/api/v1/shared/{token}").json()
        assert visitor.get(shared["versions"][0]["image_url"]).status_code == 200
        assert visitor.post(f"/api/v1/shared/{token}/fork").status_code == 401
        assert visitor.post(f"/s/{token}/fork").status_code == 303  # to the login page
        assert visitor.post(f"/s/{token}/fork").headers["location"].startswith("/login")


def test_login_attempts_are_rate_limited(gated):
    answers = [gated.post("/login", data={"password": f"guess{i}"}) for i in range(12)]
    assert [r.status_code for r in answers[:10]] == [403] * 10
    assert [r.status_code for r in answers[10:]] == [429, 429]
    assert "login attempts too quickly" in answers[10].text and answers[10].headers["retry-after"]


def test_generated_secret_key_is_kept_private_and_reused(tmp_path):
    from app.security import load_secret_key

    first = load_secret_key(None, tmp_path)
    assert len(first) >= 40 and load_secret_key(None, tmp_path) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temp file left
    assert load_secret_key("configured", tmp_path) == "configured"


def test_without_a_password_there_is_no_gate(tmp_path, sqlite_url, fake_backend):
    with app_client(tmp_path, sqlite_url) as c:
        assert c.post("/api/v1/threads", json={"prompt": "x"}).status_code == 201
        assert c.post("/login", data={"password": "x"}).status_code == 303


def test_turns_are_rate_limited_per_owner(tmp_path, sqlite_url, fake_backend):
    with app_client(tmp_path, sqlite_url, turn_rate_limit="3/minute") as c:
        tid = c.post("/api/v1/threads", json={"prompt": "one"}).json()["id"]  # 1
        for text in ("two", "three"):  # 2, 3
            assert c.post(f"/api/v1/threads/{tid}/turns", data={"instruction": text}).status_code == 202
        r = c.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "four"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert "too quickly" in r.json()["detail"] and "3 per minute" in r.json()["detail"]
        html = c.post(f"/t/{tid}/turns", data={"instruction": "four"}, headers={"HX-Request": "true"})
        assert html.status_code == 429 and "too quickly" in html.text and html.headers["retry-after"]
        thread = wait_for_thread(c, tid)
        assert [t["instruction"] for t in thread["turns"]] == ["one", "two", "three"]  # nothing stored for 4
        with another_owner(c) as other:  # another owner has their own budget
            assert other.post("/api/v1/threads", json={"prompt": "mine"}).status_code == 201


def test_guessed_ids_and_tokens_get_404(tmp_path, sqlite_url, fake_backend):
    with app_client(tmp_path, sqlite_url) as c:
        c.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")})
        for _ in range(20):
            guess = secrets.token_urlsafe(12)
            assert c.get(f"/api/v1/threads/{guess}").status_code == 404
            assert c.get(f"/api/v1/turns/{guess}").status_code == 404
            assert c.get(f"/api/v1/shared/{secrets.token_urlsafe(24)}").status_code == 404
            assert c.get(f"/s/{secrets.token_urlsafe(24)}").status_code == 404
        assert c.get("/api/v1/threads/1").status_code == 404


@pytest.mark.parametrize("path", ["/", "/api/v1/threads", "/static/app.css", "/t/nothing", "/login"])
def test_security_headers_on_every_response(tmp_path, sqlite_url, fake_backend, path):
    with app_client(tmp_path, sqlite_url) as c:
        r = c.get(path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
