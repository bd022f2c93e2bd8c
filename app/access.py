"""Who may use the server, and as which owner (``app/accounts.py`` explains
the three modes).

**Password** (``RETOUCH_ACCESS_PASSWORD``): everything except shared links
needs a login. A browser logs in once at ``/login`` and gets a signed,
HttpOnly access cookie (30 days); scripts send ``Authorization: Bearer
<password>``. Either way the request runs as the instance's one owner, so a
phone, a laptop and a script see the same threads.

**OpenID Connect** (``RETOUCH_OIDC_ISSUER``, ``app/oidc.py``): the same
paths need a login at the provider; the signed account cookie it leaves is
also what the JSON API accepts (same-origin scripts in the browser, or a
script that sends the cookie). There are no API tokens in this mode yet.

In both, reading a shared thread (``GET /s/...``, ``GET /api/v1/shared/...``),
static files, ``/healthz``, ``/readyz`` and the login pages stay open; forking a shared
thread creates a thread, so it needs a login. Without access, the API
answers 401 with ``WWW-Authenticate`` (RFC 9110 §11.6.1) and pages redirect
to the login page. A logged-in request's ``scope["state"]`` gets
``owner_id`` = the account's owner, ``browser_owner_id`` = the owner cookie's
(for the move offer) and ``identity``.

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

from fastapi import APIRouter, FastAPI, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, TimestampSigner
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as StarletteRequest
from starlette.types import ASGIApp, Receive, Scope, Send

from app.accounts import (ACCOUNT_COOKIE, PASSWORD_ISSUER, PASSWORD_SUBJECT, AccountCookies, Identity,
                          account_for, after_login, safe_next)
from app.http_limits import send_error
from app.rate_limit import RateLimiter

ACCESS_COOKIE = "retouch_access"
ACCESS_MAX_AGE = 30 * 24 * 3600
#: Wrong passwords (Bearer or login form) one client address may send.
LOGIN_ATTEMPTS = "10/minute"
#: Salt of the access cookie. "-v2" since logins map to the instance owner:
#: browsers logged in before must log in once more, and are then offered to
#: move the threads their cookie owner made (``/account/move``).
ACCESS_SALT = "retouch-access-v2"

router = APIRouter(include_in_schema=False)


def _open_path(method: str, path: str) -> bool:
    if path in ("/login", "/logout", "/healthz", "/readyz", "/login/oidc", "/login/oidc/callback") or path.startswith("/static/"):
        return True
    reading = method in ("GET", "HEAD")
    return reading and (path.startswith("/s/") or path.startswith("/api/v1/shared/"))


class AccessGate:
    """Password mode: holds the password, signs access cookies, counts wrong
    passwords and knows the instance owner."""

    kind = "password"
    challenge = 'Bearer realm="Retouch"'
    advice = "log in at /login, or send Authorization: Bearer <password>."

    def __init__(self, password: str, secret_key: str, *, secure_cookies: bool = False, sessions=None) -> None:
        self.password = password
        self.signer = TimestampSigner(secret_key, salt=ACCESS_SALT)
        self.secure = secure_cookies
        self.failures = RateLimiter(LOGIN_ATTEMPTS, "login attempts")
        self.sessions = sessions
        self._identity: Identity | None = None

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

    def allowed(self, headers: dict[str, str], cookies: dict[str, str], client: str = "unknown",
                bearer: bool = True) -> bool:
        """True when the request carries a valid access cookie or (with
        ``bearer``) the password as a bearer token (RFC 6750 §2.1).
        ``headers``: lower-cased names to values; ``client``: the address a
        wrong token is counted against (see :meth:`attempt`, which may raise 429)."""
        token = cookies.get(ACCESS_COOKIE)
        if token:
            try:
                self.signer.unsign(token, max_age=ACCESS_MAX_AGE)
                return True
            except BadSignature:
                pass
        auth = headers.get("authorization", "")
        if bearer and auth[:7].lower() == "bearer ":
            return self.attempt(auth[7:].strip(), client)
        return False

    def cookie(self) -> str:
        """A ``Set-Cookie`` value for a browser that gave the right password."""
        value = self.signer.sign(secrets.token_hex(8)).decode()
        return (f"{ACCESS_COOKIE}={value}; Path=/; Max-Age={ACCESS_MAX_AGE}; HttpOnly; SameSite=Lax"
                + ("; Secure" if self.secure else ""))

    def instance(self) -> Identity:
        """The instance's one account (created in the database on first
        use, then kept in memory: it never changes)."""
        if self._identity is None:
            with self.sessions() as session:
                account = account_for(session, issuer=PASSWORD_ISSUER, subject=PASSWORD_SUBJECT,
                                      display_name="Password login")
                self._identity = Identity(account.id, account.owner_id, account.display_name, "password")
        return self._identity

    async def identify(self, headers: dict[str, str], cookies: dict[str, str], client: str,
                       bearer: bool = True) -> Identity | None:
        """The instance identity when the request has access, else None (may raise 429)."""
        if not self.allowed(headers, cookies, client, bearer):
            return None
        return self._identity or await run_in_threadpool(self.instance)


class AccountGate:
    """OpenID Connect mode: a request has access when it carries a valid account cookie."""

    kind = "oidc"
    challenge = 'Cookie realm="Retouch", form-action="/login"'
    advice = "log in at /login in a browser; the API accepts that login's cookie."

    def __init__(self, cookies: AccountCookies) -> None:
        self.cookies = cookies

    async def identify(self, headers: dict[str, str], cookies: dict[str, str], client: str,
                       bearer: bool = True) -> Identity | None:
        """The account in the cookie, or None."""
        return self.cookies.read(cookies.get(ACCOUNT_COOKIE))


class AccessGateMiddleware:
    """ASGI middleware: runs logged-in requests as their account's owner,
    lets open paths through and asks for a login everywhere else."""

    def __init__(self, app: ASGIApp, *, gate: AccessGate | AccountGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/static/") or scope["path"] in ("/healthz", "/readyz"):
            await self.app(scope, receive, send)
            return
        open_path = _open_path(scope["method"], scope["path"])
        request = StarletteRequest(scope)
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:  # on open paths only cookies count: a wrong Bearer there is not a login attempt
            who = await self.gate.identify(headers, request.cookies, _client(scope), bearer=not open_path)
        except HTTPException as exc:  # 429: too many wrong Bearer tokens
            await send_error(scope, send, exc.status_code, exc.detail, exc.headers)
            return
        if who is not None:
            state = scope.setdefault("state", {})
            state["browser_owner_id"] = state.get("owner_id")
            state.update(owner_id=who.owner_id, new_owner=False, identity=who, has_access=True)
        if who is not None or open_path:
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith("/api/"):
            response: Response = Response(
                '{"detail": "This server needs a login: ' + self.gate.advice + '"}',
                status_code=401, media_type="application/json",
                headers={"WWW-Authenticate": self.gate.challenge},
            )
        else:
            target = scope["path"] if scope["method"] == "GET" else "/"
            response = RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        await response(scope, receive, send)


def install(app: FastAPI, settings, secret_key: str) -> None:
    """Pick the mode from ``settings`` and add its middleware to ``app``
    (call it where the gate belongs in the middleware order). Sets
    ``app.state.access_gate`` (None in open mode), ``account_mode``
    (``"open"``, ``"password"`` or ``"oidc"``), ``account_cookies`` and
    ``secret_key``. Raises ValueError for OpenID Connect settings that are
    incomplete or set together with a password."""
    from app import oidc

    app.state.secret_key = secret_key
    app.state.account_cookies = AccountCookies(secret_key, secure=settings.secure_cookies)
    app.state.access_gate = None
    app.state.account_mode = "open"
    app.state.oidc = None
    if settings.oidc_issuer:
        if settings.access_password:
            raise ValueError("Set RETOUCH_OIDC_ISSUER or RETOUCH_ACCESS_PASSWORD, not both: "
                             "with OpenID Connect every person logs in with their own account.")
        app.state.oidc = oidc.OIDCLogin(settings)
        oidc.add_login_state(app, secret_key, secure=settings.secure_cookies)
        app.state.access_gate = AccountGate(app.state.account_cookies)
        app.state.account_mode = "oidc"
    elif settings.access_password:
        app.state.access_gate = AccessGate(settings.access_password, secret_key,
                                           secure_cookies=settings.secure_cookies, sessions=app.state.ctx.sessions)
        app.state.account_mode = "password"
    if app.state.access_gate is not None:
        app.add_middleware(AccessGateMiddleware, gate=app.state.access_gate)




def _login_context(request: Request, target: str, **extra) -> dict:
    mode = getattr(request.app.state, "account_mode", "open")
    context = {"next": target, "gated": mode == "password", "mode": mode, **extra}
    if mode == "oidc":
        context["provider"] = request.app.state.oidc.provider_name
    return context


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    """The login page: the password form, or the button that starts the
    OpenID Connect login (``app/oidc.py``)."""
    from app.pages import render

    return render(request, "login.html", _login_context(request, safe_next(next)))


@router.post("/login")
def login(request: Request, password: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/") -> Response:
    """Password login: 303 to ``next`` (or to the move offer when this
    browser made threads before) with the access cookie; 403 for a wrong
    password, 429 past ``LOGIN_ATTEMPTS``."""
    from app.pages import render

    gate = _gate(request)
    target = safe_next(next)
    if not isinstance(gate, AccessGate):
        return RedirectResponse(target if gate is None else f"/login?next={quote(target)}", status_code=303)
    if not gate.attempt(password, _client(request.scope)):  # 429 after too many wrong ones
        return render(request, "login.html", _login_context(request, target, error="Wrong password."),
                      status=403)
    response = RedirectResponse(after_login(request, gate.instance().owner_id, target), status_code=303)
    response.headers.append("set-cookie", gate.cookie())
    return response


def _gate(request: Request) -> AccessGate | AccountGate | None:
    return request.app.state.access_gate


def _client(scope: Scope) -> str:
    """The client's address: the peer's, or the one a trusted proxy named
    (``ProxyHeadersMiddleware`` rewrites ``scope["client"]``)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


def _include_account_routes() -> None:
    from app import accounts

    router.include_router(accounts.router)  # /account/move, /logout, OpenID Connect, device links


_include_account_routes()
