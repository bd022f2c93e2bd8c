"""HTTP hardening: bodies capped while they stream (413), slow bodies (408),
deep JSON, control characters in paths, lenient cookies, the password
gate's failure limit and trusted proxies, non-Latin-1 download names,
security headers on 500s, Host and RETOUCH_PUBLIC_URL, and HEAD.

Where "nothing beyond the limit is read" matters, the app is driven as ASGI
with a body generator and the test counts the bytes it pulled; a real
``retouch serve`` takes the 1 GiB chunked upload, the JSON flood and the
stalled body over a socket. After every attack the server still answers
``GET /healthz``."""
from __future__ import annotations

import functools
import http.client
import re
import select
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import unquote

import anyio
import pytest
from fastapi.testclient import TestClient

from app.deps import MAX_FILES_PER_REQUEST, MULTIPART_OVERHEAD
from app.http_limits import MAX_JSON_DEPTH, json_too_deep
from app.main import create_app
from app.security import OWNER_COOKIE
from bench.server import ServerDidNotStart, running_server
from tests.conftest import another_owner, make_settings, png_bytes

ROOT = Path(__file__).resolve().parent.parent
GiB = 1024 ** 3
CHUNK = 64 * 1024
SMALL_UPLOAD = 100_000  # max_upload_bytes for the in-process apps
SMALL_CAP = SMALL_UPLOAD * MAX_FILES_PER_REQUEST + MULTIPART_OVERHEAD
JSON_CAP = 64 * 1024


# ---------------------------------------------------------------- helpers

@pytest.fixture
def small(tmp_path, database_url, fake_backend) -> Iterator[TestClient]:
    """An app with small limits and a 1-second body timeout, on SQLite and PostgreSQL."""
    settings = make_settings(tmp_path / "data", database_url, max_upload_bytes=SMALL_UPLOAD, body_timeout=1,
                             turn_rate_limit="0")
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c


END = object()


async def _exchange(app, method: str, path: str, headers: Iterable[tuple[str, str | bytes]], chunks: Iterable,
                    timeout: float) -> dict:
    """One request to the ASGI ``app``. ``chunks``: body pieces, pulled one
    per ``receive``; ``None`` stalls the body for good. Returns the status,
    headers (lower-cased), body, the bytes pulled from ``chunks``, the body
    messages sent and the seconds it took (at most ``timeout``)."""
    out = {"status": None, "headers": {}, "body": b"", "consumed": 0, "messages": 0, "complete": False}
    done = anyio.Event()
    pieces = iter(chunks)
    body_over = False

    async def receive():
        nonlocal body_over
        if body_over:
            await done.wait()
            return {"type": "http.disconnect"}
        chunk = next(pieces, END)
        if chunk is END:
            body_over = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if chunk is None:
            await anyio.sleep_forever()
        out["consumed"] += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = {k.decode().lower(): v.decode("latin-1") for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            out["messages"] += 1
            out["body"] += message.get("body", b"")
            if not message.get("more_body", False):
                out["complete"] = True
                done.set()

    raw = [(b"host", b"testserver")]
    raw += [(k.lower().encode(), v if isinstance(v, bytes) else v.encode("latin-1")) for k, v in headers]
    path_only, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": unquote(path_only), "raw_path": path_only.encode(),
             "query_string": query.encode(), "root_path": "", "headers": raw, "client": ("127.0.0.1", 50000),
             "server": ("testserver", 80), "state": {}, "extensions": {}}
    start = time.monotonic()
    with anyio.move_on_after(timeout):
        await app(scope, receive, send)
    out["seconds"] = time.monotonic() - start
    return out


def exchange(client: TestClient, method: str, path: str, headers=(), chunks=(), timeout: float = 30) -> dict:
    """:func:`_exchange` on the client's running app (its event loop)."""
    return client.portal.call(functools.partial(_exchange, client.app, method, path, list(headers), chunks, timeout))


def owner_header(client: TestClient) -> tuple[str, str]:
    return ("cookie", f"{OWNER_COOKIE}={client.cookies[OWNER_COOKIE]}")


def multipart_flood(total: int, field: str = "image", boundary: str = "flood") -> Iterator[bytes]:
    """A multipart body whose one file part goes on for ``total`` bytes,
    made as it is pulled (never held whole)."""
    yield (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="big.png"\r\n'
           f"Content-Type: image/png\r\n\r\n").encode()
    block = b"\x89" * CHUNK
    for _ in range(total // CHUNK):
        yield block


def json_flood(total: int) -> Iterator[bytes]:
    yield b'{"prompt": "'
    block = b"a" * CHUNK
    for _ in range(total // CHUNK):
        yield block


def deep_json(depth: int) -> bytes:
    return b'{"prompt": "x", "extra": ' + b"[" * depth + b"]" * depth + b"}"


def new_thread(client: TestClient, **headers) -> str:
    r = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def healthy(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200


# ------------------------------------------------------- 1. body size caps

MULTIPART_ROUTES = ["/api/v1/threads", "/api/v1/threads/{tid}/turns", "/threads", "/t/{tid}/turns"]


@pytest.mark.parametrize("route", MULTIPART_ROUTES)
def test_chunked_gigabyte_upload_stops_at_the_limit(small, route):
    tid = new_thread(small)
    path = route.format(tid=tid)
    r = exchange(small, "POST", path, [("content-type", "multipart/form-data; boundary=flood"),
                                       ("transfer-encoding", "chunked"), owner_header(small)],
                 multipart_flood(GiB))
    assert r["status"] == 413
    assert SMALL_CAP < r["consumed"] <= SMALL_CAP + CHUNK  # nothing read past the limit but the chunk that crossed it
    assert r["headers"]["connection"] == "close" and "content-security-policy" in r["headers"]
    if path.startswith("/api/"):
        assert "each file may be at most 0.1 MB" in r["body"].decode()
        assert r["headers"]["content-type"] == "application/json"
    else:
        assert r["headers"]["content-type"].startswith("text/html")
    assert len(small.get(f"/api/v1/threads/{tid}").json()["turns"]) == 1  # nothing queued
    healthy(small)


def test_declared_length_over_the_limit_is_refused_before_reading(small):
    r = exchange(small, "POST", "/api/v1/threads",
                 [("content-type", "multipart/form-data; boundary=flood"), ("content-length", str(GiB))],
                 multipart_flood(GiB))
    assert r["status"] == 413 and r["consumed"] == 0
    r = exchange(small, "POST", "/api/v1/threads",
                 [("content-type", "application/json"), ("content-length", str(500 * 10**6))], json_flood(GiB))
    assert r["status"] == 413 and r["consumed"] == 0
    healthy(small)


@pytest.mark.parametrize("ctype", ["application/json", "", "text/plain", "application/x-www-form-urlencoded"])
def test_chunked_text_bodies_stop_at_the_small_limit(small, ctype):
    """500 MB of JSON (or of a form without files) stops after 64 KiB plus one chunk."""
    headers = [("transfer-encoding", "chunked")] + ([("content-type", ctype)] if ctype else [])
    r = exchange(small, "POST", "/api/v1/threads", headers, json_flood(500 * 10**6))
    assert r["status"] == 413 and JSON_CAP < r["consumed"] <= JSON_CAP + CHUNK
    assert "at most 64 KiB" in r["body"].decode()
    tid = new_thread(small)
    r = exchange(small, "PATCH", f"/api/v1/threads/{tid}", headers + [owner_header(small)], json_flood(500 * 10**6))
    assert r["status"] == 413 and r["consumed"] <= JSON_CAP + CHUNK
    r = exchange(small, "POST", "/login", headers, json_flood(500 * 10**6))
    assert r["status"] == 413 and r["consumed"] <= JSON_CAP + CHUNK
    healthy(small)


def test_bodies_within_the_limits_still_work(small):
    r = small.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")},
                   data={"title": "t" * 100})
    assert r.status_code == 201
    tid = r.json()["id"]
    assert small.patch(f"/api/v1/threads/{tid}", json={"title": "renamed"}).json()["title"] == "renamed"
    padded = {"prompt": "x", "pad": "p" * (JSON_CAP - 100)}  # just under 64 KiB
    assert small.post("/api/v1/threads", json=padded).status_code == 201
    assert small.post("/api/v1/threads", json={**padded, "pad": "p" * JSON_CAP}).status_code == 413
    assert small.post(f"/t/{tid}/title", data={"title": "form"}).status_code == 303


def test_json_body_limit_is_a_setting(tmp_path, sqlite_url, fake_backend):
    settings = make_settings(tmp_path / "data", sqlite_url, max_json_bytes=1000)
    with TestClient(create_app(settings)) as c:
        assert c.post("/api/v1/threads", json={"prompt": "p" * 900}).status_code == 201
        r = c.post("/api/v1/threads", json={"prompt": "p" * 1000})
        assert r.status_code == 413 and "at most 1000 bytes" in r.json()["detail"]


# ---------------------------------------------------------- slow bodies

@pytest.mark.parametrize("route,ctype", [
    ("/api/v1/threads", "application/json"),
    ("/api/v1/threads", "multipart/form-data; boundary=flood"),
    ("/api/v1/threads/{tid}/turns", "multipart/form-data; boundary=flood"),
    ("/t/{tid}/turns", "multipart/form-data; boundary=flood"),
])
def test_a_stalled_body_gets_408(small, route, ctype):
    tid = new_thread(small)
    first = b'{"prompt": "x' if "json" in ctype else next(multipart_flood(0))
    r = exchange(small, "POST", route.format(tid=tid), [("content-type", ctype), ("content-length", "10000"),
                                                       owner_header(small)], [first, b"x", None], timeout=10)
    assert r["status"] == 408, r
    assert 1.0 <= r["seconds"] < 3  # RETOUCH_BODY_TIMEOUT is 1 s here
    assert r["headers"]["connection"] == "close" and "content-security-policy" in r["headers"]
    if route.startswith("/api/"):
        assert "stopped arriving" in r["body"].decode()
    healthy(small)


def test_the_timeout_does_not_cut_live_streams(small):
    """An event stream waits on ``receive`` for its client to leave, well past
    the body timeout: it must keep going."""
    tid = new_thread(small)
    r = exchange(small, "GET", f"/t/{tid}/events", [owner_header(small)], timeout=2.5)
    assert r["status"] == 200 and r["seconds"] >= 2.4 and b"ready" in r["body"]


# ----------------------------------------------------------- JSON nesting

def test_json_nesting_scan():
    assert not json_too_deep(deep_json(MAX_JSON_DEPTH - 1))  # the object itself is one level
    assert json_too_deep(deep_json(MAX_JSON_DEPTH))
    assert not json_too_deep(b'{"a": "' + b"[" * 5000 + b'"}')  # brackets in a string do not count
    assert not json_too_deep(b'{"a": "\\"' + b"[" * 5000 + b'"}')  # nor after an escaped quote
    assert json_too_deep(b'["\\\\", ' + b"[" * 40 + b"]" * 40 + b"]")  # an escaped backslash ends nothing
    assert not json_too_deep(b"")


@pytest.mark.parametrize("ctype", ["application/json", None, "text/plain"])
def test_deeply_nested_json_gets_4xx_not_500(client, ctype):
    tid = new_thread(client)
    headers = {"content-type": ctype} if ctype else {}
    bomb = b'{"title": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for method, path, body in [("POST", "/api/v1/threads", deep_json(5000)),
                               ("PATCH", f"/api/v1/threads/{tid}", bomb),
                               ("POST", f"/api/v1/threads/{tid}/revert", bomb)]:
        r = client.request(method, path, content=body, headers=headers)
        assert r.status_code == 422, (method, path, r.status_code)
        assert "nests arrays and objects too deeply" in r.json()["detail"]
    assert client.post("/api/v1/threads", content=deep_json(MAX_JSON_DEPTH - 1),
                       headers={"content-type": "application/json"}).status_code == 201
    healthy(client)


def test_create_thread_checks_nesting_itself(client):
    """The route's own parser refuses deep JSON too (when it is reached without the middleware's check)."""
    from starlette.requests import Request

    from app import api

    async def deep():
        return deep_json(5000)

    ctx = client.app.state.ctx
    request = Request({"type": "http", "method": "POST", "path": "/api/v1/threads", "headers": [],
                       "query_string": b"", "app": client.app})
    request.body = deep
    with pytest.raises(api.HTTPException) as raised:
        client.portal.call(api.create_thread, request, ctx, "someone")
    assert raised.value.status_code == 422


# ------------------------------------------------- control characters in paths

@pytest.mark.parametrize("path", ["/api/v1/threads/a%00b", "/api/v1/turns/%0a", "/api/v1/shared/x%1f",
                                  "/api/v1/threads/%7f/versions/1/image", "/t/%00", "/s/%01/versions/1"])
def test_control_characters_in_the_path_get_422(client, path):
    r = client.get(path)
    assert r.status_code == 422 and "control character" in r.text
    assert "content-security-policy" in r.headers
    if path.startswith("/api/"):
        assert r.json()["detail"].startswith("The address holds a control character")
    else:
        assert r.headers["content-type"].startswith("text/html")
    assert client.post(path.replace("/versions/1/image", "/revert"), json={"version": 1}).status_code == 422
    healthy(client)


# ---------------------------------------------------------------- cookies

BREAKING_COOKIES = {"space": b"theme=dark mode", "bare": b"flag", "at sign": b"a@b=1",
                    "non-ASCII": "név=Ünnep; emoji=🙂".encode()}


@pytest.mark.parametrize("name", list(BREAKING_COOKIES))
@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
def test_odd_cookies_do_not_hide_the_owner(client, name, before):
    tid = new_thread(client)
    owner = f"{OWNER_COOKIE}={client.cookies[OWNER_COOKIE]}".encode()
    extra = BREAKING_COOKIES[name]
    header = extra + b"; " + owner if before else owner + b"; " + extra
    with another_owner(client) as browser:
        r = browser.get("/api/v1/threads", headers={"cookie": header})
        assert r.status_code == 200
        assert [t["id"] for t in r.json()["threads"]] == [tid]
        assert OWNER_COOKIE not in r.headers.get("set-cookie", "")
        assert browser.get(f"/t/{tid}", headers={"cookie": header}).status_code == 200


def test_owner_cookies_that_cannot_be_used(client):
    tid = new_thread(client)
    good = f"{OWNER_COOKIE}={client.cookies[OWNER_COOKIE]}"
    with another_owner(client) as browser:
        # Named but with no value the parser can read: never overwritten.
        r = browser.get("/api/v1/threads", headers={"cookie": f"theme=dark; {OWNER_COOKIE}"})
        assert r.status_code == 200 and r.json()["threads"] == [] and "set-cookie" not in r.headers
        # Read but not verifiable (the secret key changed, the data folder was reset): replaced, so
        # the browser is one owner again (a thread it creates is its own on the next request).
        stale = f"{OWNER_COOKIE}=not-signed"
        made = browser.post("/api/v1/threads", json={"prompt": "x"}, headers={"cookie": stale})
        assert made.status_code == 201 and made.headers["set-cookie"].startswith(f"{OWNER_COOKIE}=")
        fresh = made.headers["set-cookie"].split(";")[0]
        assert browser.get(f"/api/v1/threads/{made.json()['id']}", headers={"cookie": fresh}).status_code == 200
        # A planted second cookie of the same name does not hide the real one, in either order.
        for header in (f"{stale}; {good}", f"{good}; {stale}"):
            r = browser.get("/api/v1/threads", headers={"cookie": header})
            assert [t["id"] for t in r.json()["threads"]] == [tid] and "set-cookie" not in r.headers
        r = browser.get("/api/v1/threads", headers={"cookie": "theme=dark mode"})  # no owner cookie at all
        assert r.headers["set-cookie"].startswith(f"{OWNER_COOKIE}=")
    healthy(client)


# ------------------------------------------------------------ password gate

def gated_client(tmp_path, database_url, **extra) -> TestClient:
    settings = make_settings(tmp_path / "data", database_url, access_password="correct horse", **extra)
    return TestClient(create_app(settings), follow_redirects=False, client=("10.0.0.9", 4000))


def test_bearer_guesses_are_limited_but_the_password_always_works(tmp_path, database_url, fake_backend):
    with gated_client(tmp_path, database_url) as c:
        wrong = {"Authorization": "Bearer guess"}
        assert [c.get("/api/v1/threads", headers=wrong).status_code for _ in range(10)] == [401] * 10
        r = c.get("/api/v1/threads", headers=wrong)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert "login attempts too quickly" in r.json()["detail"]
        assert c.get("/", headers=wrong).status_code == 429  # pages too
        # the right password is never refused, by Bearer or by the form
        right = {"Authorization": "Bearer correct horse"}
        assert c.post("/api/v1/threads", json={"prompt": "x"}, headers=right).status_code == 201
        assert c.post("/login", data={"password": "correct horse"}).status_code == 303
        assert c.post("/login", data={"password": "still wrong"}).status_code == 429  # shared with the form
        healthy(c)


def test_form_and_bearer_failures_share_one_budget(tmp_path, database_url, fake_backend):
    with gated_client(tmp_path, database_url) as c:
        for i in range(5):
            assert c.post("/login", data={"password": f"g{i}"}).status_code == 403
            assert c.get("/api/v1/threads", headers={"Authorization": f"Bearer g{i}"}).status_code == 401
        assert c.post("/login", data={"password": "g5"}).status_code == 429
        assert c.get("/api/v1/threads", headers={"Authorization": "Bearer g5"}).status_code == 429
        assert c.post("/login", data={"password": "correct horse"}).status_code == 303
        assert c.get("/api/v1/threads").status_code == 200  # the access cookie from the login


def _guess(c: TestClient, forwarded: str | None) -> int:
    headers = {"Authorization": "Bearer nope"}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    return c.get("/api/v1/threads", headers=headers).status_code


def test_forwarded_for_counts_only_from_a_trusted_proxy(tmp_path, database_url, fake_backend):
    # Untrusted: X-Forwarded-For is ignored, so changing it escapes nothing.
    with gated_client(tmp_path / "a", database_url) as c:
        assert [_guess(c, f"203.0.113.{i}") for i in range(11)] == [401] * 10 + [429]
    # Behind a trusted proxy: each client has its own budget; one attacker locks out only itself.
    with gated_client(tmp_path / "b", database_url, forwarded_allow_ips="10.0.0.0/8") as c:
        assert [_guess(c, "203.0.113.1") for _ in range(11)] == [401] * 10 + [429]
        assert _guess(c, "198.51.100.7") == 401
        assert _guess(c, "198.51.100.7, 203.0.113.1") == 429  # the proxy's own entry is the rightmost
        assert c.get("/api/v1/threads", headers={"Authorization": "Bearer correct horse",
                                                  "X-Forwarded-For": "203.0.113.1"}).status_code == 200
    # A peer outside the trusted list cannot pick its address.
    settings = make_settings(tmp_path / "c" / "data", database_url, access_password="correct horse",
                             forwarded_allow_ips="10.0.0.1")
    with TestClient(create_app(settings), client=("192.0.2.5", 4000)) as c:
        assert [_guess(c, f"203.0.113.{i}") for i in range(11)] == [401] * 10 + [429]


def test_forwarded_proto_makes_https_share_links(tmp_path, database_url, fake_backend):
    settings = make_settings(tmp_path / "data", database_url, forwarded_allow_ips="*")
    with TestClient(create_app(settings)) as c:
        tid = new_thread(c)
        share = c.post(f"/api/v1/threads/{tid}/share", headers={"X-Forwarded-Proto": "https"}).json()
        assert share["url"].startswith("https://testserver/s/")


# ------------------------------------------------------ download file names

@pytest.mark.parametrize("title", ["夕焼けの海", "Καλημέρα", "Привет-мир", "Café"])
def test_download_names_in_any_script(client, title):
    tid = new_thread(client)
    assert client.patch(f"/api/v1/threads/{tid}", json={"title": title}).status_code == 200
    url = client.get(f"/api/v1/threads/{tid}").json()["versions"][0]["image_url"]
    r = client.get(url + "?download=1")
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    disposition = r.headers["content-disposition"]
    assert disposition.isascii()
    fallback = re.search(r'filename="([^"]*)"', disposition).group(1)
    assert fallback == ("Cafe-v1.png" if title == "Café" else "retouch-v1.png")
    encoded = re.search(r"filename\*=UTF-8''(\S+)$", disposition).group(1)
    assert unquote(encoded) == f"{title}-v1.png"
    token = client.post(f"/api/v1/threads/{tid}/share").json()["token"]
    shared = client.get(f"/api/v1/shared/{token}/versions/1/image?download=1")
    assert shared.status_code == 200 and shared.headers["content-disposition"] == disposition


# ------------------------------------------------ security headers on a 500

def test_a_500_carries_the_security_headers(tmp_path, database_url, fake_backend):
    app = create_app(make_settings(tmp_path / "data", database_url))

    def boom():
        raise RuntimeError("secret internal detail")

    app.add_api_route("/api/v1/boom", boom)
    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as c:
        for path in ("/api/v1/boom", "/boom"):
            r = c.get(path)
            assert r.status_code == 500
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
            assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
            assert "secret internal detail" not in r.text
        assert c.get("/api/v1/boom").json()["detail"].startswith("Something went wrong on the server")
        assert c.get("/boom").headers["content-type"].startswith("text/html")
        assert c.head("/boom").status_code == 500
        r = c.post("/api/v1/threads", json={"prompt": "x"}, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and "content-security-policy" in r.headers  # refusals too
        healthy(c)
    with TestClient(app) as c, pytest.raises(RuntimeError):  # still raised for the server's log
        c.get("/api/v1/boom")


# ---------------------------------------------------- Host and public URL

def test_by_default_absolute_urls_follow_host(client):
    """The default (``RETOUCH_ALLOWED_HOSTS=*``, no public URL) keeps local
    use working, which is why exposed servers must set one of the two."""
    tid = new_thread(client)
    share = client.post(f"/api/v1/threads/{tid}/share", headers={"Host": "localhost:9000"}).json()
    assert share["url"].startswith("http://localhost:9000/s/")


def test_allowed_hosts_refuses_other_hosts(tmp_path, database_url, fake_backend):
    settings = make_settings(tmp_path / "data", database_url, allowed_hosts="testserver, *.example.org")
    with TestClient(create_app(settings)) as c:
        tid = new_thread(c)
        r = c.post(f"/api/v1/threads/{tid}/share", headers={"Host": "evil.example"})
        assert r.status_code == 400 and "content-security-policy" in r.headers
        assert c.get("/", headers={"Host": "evil.example"}).status_code == 400
        share = c.post(f"/api/v1/threads/{tid}/share", headers={"Host": "retouch.example.org"}).json()
        assert share["url"].startswith("http://retouch.example.org/s/")
        assert c.post(f"/api/v1/threads/{tid}/share").json()["url"].startswith("http://testserver/s/")
        healthy(c)


def test_public_url_makes_every_absolute_url(tmp_path, database_url, fake_backend):
    settings = make_settings(tmp_path / "data", database_url, public_url="https://retouch.example.com/")
    with TestClient(create_app(settings)) as c:
        evil = {"Host": "evil.example"}
        tid = new_thread(c, **evil)
        share = c.post(f"/api/v1/threads/{tid}/share", headers=evil).json()
        assert share["url"] == f"https://retouch.example.com/s/{share['token']}"
        assert c.get(f"/api/v1/threads/{tid}", headers=evil).json()["share_url"] == share["url"]
        page = c.get(f"/s/{share['token']}", headers=evil).text
        assert f'content="https://retouch.example.com/api/v1/shared/{share["token"]}/versions/1/image"' in page
        assert "evil.example" not in page
        assert "evil.example" not in c.get(f"/t/{tid}", headers=evil).text
        assert c.post(f"/s/{share['token']}/fork", headers=evil, follow_redirects=False).status_code == 303


def test_a_public_url_with_a_path_stops_the_start(tmp_path, sqlite_url, fake_backend):
    with pytest.raises(ValueError, match="RETOUCH_PUBLIC_URL"):
        create_app(make_settings(tmp_path / "data", sqlite_url, public_url="https://example.com/retouch"))


# ------------------------------------------------------------------- HEAD

def test_head_works_wherever_get_does(client):
    tid = new_thread(client)
    token = client.post(f"/api/v1/threads/{tid}/share").json()["token"]
    paths = ["/", f"/t/{tid}", f"/t/{tid}/versions/1", f"/api/v1/threads/{tid}/versions/1/image",
             f"/api/v1/threads/{tid}/versions/1/image?size=thumb", f"/api/v1/threads/{tid}", "/healthz",
             f"/s/{token}", f"/api/v1/shared/{token}/versions/1/image", "/static/app.css", "/login"]
    for path in paths:
        get = exchange(client, "GET", path, [owner_header(client)])
        head = exchange(client, "HEAD", path, [owner_header(client)])
        assert get["status"] == 200 and head["status"] == 200, path
        assert head["body"] == b"" and head["complete"], path  # no body bytes, and the response ended
        assert head["headers"].get("content-length") == get["headers"].get("content-length"), path
        assert head["headers"]["content-type"] == get["headers"]["content-type"]
        assert "content-security-policy" in head["headers"]
    assert client.head(f"/api/v1/threads/{tid}/versions/1/image").headers["etag"]
    assert client.head("/nothing-here").status_code == 404
    assert client.head(f"/api/v1/threads/{tid}/turns").status_code == 405  # no GET there, no HEAD
    r = exchange(client, "HEAD", f"/t/{tid}/events", [owner_header(client)], timeout=5)
    assert r["status"] == 200 and r["body"] == b"" and r["seconds"] < 4  # a stream's HEAD ends at once
    healthy(client)


# ---------------------------------------------------- a real server, attacked

class Server:
    def __init__(self, port: int, proc: subprocess.Popen, log: Path) -> None:
        self.port, self.proc, self.log = port, proc, log

    def healthy(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as r:
            return r.status == 200

    def rss(self) -> int:
        """The server process's resident memory, bytes."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """``retouch serve`` (SQLite, local backend, default limits, a 2-second body timeout)."""
    base = tmp_path_factory.mktemp("hardening-server")
    try:
        with running_server(base / "data", {"RETOUCH_BACKEND": "local", "RETOUCH_BODY_TIMEOUT": "2"},
                            stop_timeout=10) as srv:
            yield Server(srv.port, srv.proc, srv.log)
    except ServerDidNotStart as exc:
        pytest.fail(str(exc))


def send_chunked(port: int, path: str, ctype: str, chunks: Iterable[bytes]) -> tuple[int, bytes, float]:
    """POST ``chunks`` with ``Transfer-Encoding: chunked`` over a raw socket
    until the server answers or closes. Returns (body bytes the kernel took,
    what came back, seconds)."""
    start = time.monotonic()
    sent, reply = 0, b""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(10)
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
                  f"Transfer-Encoding: chunked\r\n\r\n".encode())
        try:
            for chunk in chunks:
                if select.select([s], [], [], 0)[0]:
                    break  # the answer is in
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        try:
            while data := s.recv(65536):
                reply += data
        except (ConnectionResetError, TimeoutError):
            pass
    return sent, reply, time.monotonic() - start


def test_real_server_gigabyte_chunked_upload(server):
    cap = 25 * 1024 * 1024 * MAX_FILES_PER_REQUEST + MULTIPART_OVERHEAD  # the default limits
    rss_before = server.rss()
    sent, reply, seconds = send_chunked(server.port, "/api/v1/threads", "multipart/form-data; boundary=flood",
                                        multipart_flood(GiB))
    print(f"\n1 GiB chunked upload: the kernel took {sent:,} bytes (limit {cap:,}) in {seconds:.2f} s; "
          f"server RSS grew {(server.rss() - rss_before) / 1e6:.1f} MB; reply {reply[:12]!r}")
    assert sent <= cap + 32 * 1024 * 1024  # the limit, plus what socket buffers hold
    if reply:  # the 413 normally arrives; a reset may beat it (the client was still sending)
        assert reply.startswith(b"HTTP/1.1 413")
    assert server.rss() - rss_before < 100 * 10**6
    assert server.healthy()


def test_real_server_json_flood(server):
    rss_before = server.rss()
    sent, reply, seconds = send_chunked(server.port, "/api/v1/threads", "application/json", json_flood(500 * 10**6))
    print(f"\n500 MB chunked JSON: the kernel took {sent:,} bytes in {seconds:.2f} s; "
          f"server RSS grew {(server.rss() - rss_before) / 1e6:.1f} MB; reply {reply[:12]!r}")
    assert sent <= JSON_CAP + 32 * 1024 * 1024
    assert server.rss() - rss_before < 50 * 10**6
    assert server.healthy()


def test_real_server_slow_body_gets_408(server):
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.settimeout(15)
        s.sendall(b"POST /api/v1/threads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"prompt\": ")
        reply = b""
        while data := s.recv(65536):
            reply += data
    seconds = time.monotonic() - start
    print(f"\nstalled body: 408 after {seconds:.2f} s (RETOUCH_BODY_TIMEOUT=2)")
    assert reply.startswith(b"HTTP/1.1 408") and b"stopped arriving" in reply
    assert 2 <= seconds < 5
    assert server.healthy()


def test_real_server_head_and_control_characters(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for path in ("/", "/healthz", "/login"):
        conn.request("HEAD", path)
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b"" and int(r.getheader("content-length")) > 0
    conn.request("GET", "/api/v1/threads/%00")  # keep-alive: the same connection after the HEADs
    r = conn.getresponse()
    assert r.status == 422 and b"control character" in r.read()
    conn.close()
    assert server.healthy()
