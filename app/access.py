"""Optional password gate for exposed deployments (``RETOUCH_ACCESS_PASSWORD``).

When a password is set, everything except shared links needs a login:
reading a shared thread (``GET /s/...``, ``GET /api/v1/shared/...``), static
files, ``/healthz`` and the login page stay open; forking a shared thread
creates a thread, so it needs a login too. A browser logs in once at
``/login`` and gets a signed, HttpOnly access cookie (30 days); scripts send
``Authorization: Bearer <password>``. Without access, the API answers 401
with ``WWW-Authenticate: Bearer`` (RFC 9110 §11.6.1) and pages redirect to
the login page.

Wrong passwords are rate limited per client address, Bearer tokens and the
login form together: only failures count (``LOGIN_ATTEMPTS``), and past the
limit a wrong password gets 429 with ``Retry-After`` (RFC 6585 §4). The
password is checked first, so the right one is never refused, however many
wrong ones came from the same address (behind a proxy that does not pass
the client's address, everyone shares one). The client address is the
peer's, or with ``RETOUCH_FORWARDED_ALLOW_IPS`` the one a trusted proxy put
in ``X-Forwarded-For`` (uvicorn's ``ProxyHeadersMiddleware``, ``app/main.py``).
"""
from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, TimestampSigner
from starlette.types import ASGIApp, Receive, Scope, Send

from app.http_limits import send_error
from app.rate_limit import RateLimiter

ACCESS_COOKIE = "retouch_access"
ACCESS_MAX_AGE = 30 * 24 * 3600
#: Wrong passwords (Bearer or login form) one client address may send.
LOGIN_ATTEMPTS = "10/minute"

router = APIRouter(include_in_schema=False)


def _open_path(method: str, path: str) -> bool:
    if path in ("/login", "/logout", "/healthz") or path.startswith("/static/"):
        return True
    reading = method in ("GET", "HEAD")
    return reading and (path.startswith("/s/") or path.startswith("/api/v1/shared/"))


class AccessGate:
    """Holds the password, signs access cookies and counts wrong passwords."""

    def __init__(self, password: str, secret_key: str, *, secure_cookies: bool = False) -> None:
        self.password = password
        self.signer = TimestampSigner(secret_key, salt="retouch-access")
        self.secure = secure_cookies
        self.failures = RateLimiter(LOGIN_ATTEMPTS, "login attempts")

    def check_password(self, candidate: str) -> bool:
        """True when ``candidate`` is the password (constant-time compare)."""
        return secrets.compare_digest(candidate.encode(), self.password.encode())

    def attempt(self, candidate: str, client: str) -> bool:
        """One password attempt from address ``client``: True when right,
        whatever came before. A wrong one is counted; past
        ``LOGIN_ATTEMPTS`` wrong ones it raises HTTPException 429 with
        ``Retry-After`` (seconds) instead of returning False."""
        if self.check_password(candidate):
            return True
        self.failures.hit(client)
        return False

    def allowed(self, headers: dict[str, str], cookies: dict[str, str], client: str = "unknown") -> bool:
        """True when the request carries a valid access cookie or the
        password as a bearer token (RFC 6750 §2.1). ``headers``: lower-cased
        names to values; ``client``: the address a wrong token is counted
        against (see :meth:`attempt`, which may raise 429)."""
        token = cookies.get(ACCESS_COOKIE)
        if token:
            try:
                self.signer.unsign(token, max_age=ACCESS_MAX_AGE)
                return True
            except BadSignature:
                pass
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return self.attempt(auth[7:].strip(), client)
        return False

    def cookie(self) -> str:
        value = self.signer.sign(secrets.token_hex(8)).decode()
        return (f"{ACCESS_COOKIE}={value}; Path=/; Max-Age={ACCESS_MAX_AGE}; HttpOnly; SameSite=Lax"
                + ("; Secure" if self.secure else ""))


class AccessGateMiddleware:
    """ASGI middleware: lets open paths through and asks for a login
    everywhere else."""

    def __init__(self, app: ASGIApp, *, gate: AccessGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _open_path(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        from starlette.requests import Request as StarletteRequest

        request = StarletteRequest(scope)
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            allowed = self.gate.allowed(headers, request.cookies, _client(scope))
        except HTTPException as exc:  # 429: too many wrong Bearer tokens
            await send_error(scope, send, exc.status_code, exc.detail, exc.headers)
            return
        if allowed:
            scope.setdefault("state", {})["has_access"] = True
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith("/api/"):
            response: Response = Response(
                '{"detail": "This server needs a login: log in at /login, or send '
                'Authorization: Bearer <password>."}',
                status_code=401, media_type="application/json",
                headers={"WWW-Authenticate": 'Bearer realm="Retouch"'},
            )
        else:
            target = scope["path"] if scope["method"] == "GET" else "/"
            response = RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        await response(scope, receive, send)


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    from app.pages import render

    return render(request, "login.html", {"next": _safe_next(next), "gated": _gate(request) is not None})


@router.post("/login")
def login(request: Request, password: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/") -> Response:
    from app.pages import render

    gate = _gate(request)
    target = _safe_next(next)
    if gate is None:
        return RedirectResponse(target, status_code=303)
    if not gate.attempt(password, _client(request.scope)):  # 429 after too many wrong ones
        return render(request, "login.html", {"next": target, "gated": True, "error": "Wrong password."},
                      status=403)
    response = RedirectResponse(target, status_code=303)
    response.headers.append("set-cookie", gate.cookie())
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.headers.append("set-cookie", f"{ACCESS_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax")
    return response


def _gate(request: Request) -> AccessGate | None:
    return request.app.state.access_gate


def _client(scope: Scope) -> str:
    """The client's address: the peer's, or the one a trusted proxy named
    (``ProxyHeadersMiddleware`` rewrites ``scope["client"]``)."""
    client = scope.get("client")
    return client[0] if client else "unknown"
