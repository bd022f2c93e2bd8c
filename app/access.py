"""Optional password gate for exposed deployments (``RETOUCH_ACCESS_PASSWORD``).

When a password is set, everything except shared links needs a login:
reading a shared thread (``GET /s/...``, ``GET /api/v1/shared/...``), static
files, ``/healthz`` and the login page stay open; forking a shared thread
creates a thread, so it needs a login too. A browser logs in once at
``/login`` and gets a signed, HttpOnly access cookie (30 days); scripts send
``Authorization: Bearer <password>``. Without access, the API answers 401
with ``WWW-Authenticate: Bearer`` (RFC 9110 §11.6.1) and pages redirect to
the login page. Wrong passwords are rate limited per client address.
"""
from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, TimestampSigner
from starlette.types import ASGIApp, Receive, Scope, Send

from app.rate_limit import RateLimiter

ACCESS_COOKIE = "retouch_access"
ACCESS_MAX_AGE = 30 * 24 * 3600
LOGIN_ATTEMPTS = "10/minute"

router = APIRouter(include_in_schema=False)


def _open_path(method: str, path: str) -> bool:
    if path in ("/login", "/logout", "/healthz") or path.startswith("/static/"):
        return True
    reading = method in ("GET", "HEAD")
    return reading and (path.startswith("/s/") or path.startswith("/api/v1/shared/"))


class AccessGate:
    """Holds the password and signs access cookies."""

    def __init__(self, password: str, secret_key: str, *, secure_cookies: bool = False) -> None:
        self.password = password
        self.signer = TimestampSigner(secret_key, salt="retouch-access")
        self.secure = secure_cookies
        self.attempts = RateLimiter(LOGIN_ATTEMPTS, "login attempts")

    def check_password(self, candidate: str) -> bool:
        return secrets.compare_digest(candidate.encode(), self.password.encode())

    def allowed(self, headers: dict[str, str], cookies: dict[str, str]) -> bool:
        """True when the request carries a valid access cookie or the
        password as a bearer token."""
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and self.check_password(auth[7:].strip()):
            return True
        token = cookies.get(ACCESS_COOKIE)
        if token:
            try:
                self.signer.unsign(token, max_age=ACCESS_MAX_AGE)
                return True
            except BadSignature:
                return False
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
        if self.gate.allowed(headers, request.cookies):
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
    client = request.client.host if request.client else "unknown"
    gate.attempts.hit(client)  # 429 after too many attempts
    if not gate.check_password(password):
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
