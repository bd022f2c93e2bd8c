"""Owner identity, cross-origin protection and security headers.

- Owner identity needs no accounts: a random 128-bit secret in a signed
  (itsdangerous), HttpOnly, SameSite=Lax cookie, set on the first visit.
- Unsafe methods from a cross-site browser context are refused with 403, the
  way Go 1.25's ``net/http.CrossOriginProtection`` decides: ``Sec-Fetch-Site``
  ``same-origin`` or ``none`` passes and any other value fails; without it, an
  ``Origin`` whose host differs from ``Host`` fails; a request with neither
  header (a script, curl) passes.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

OWNER_COOKIE = "retouch_owner"
COOKIE_MAX_AGE = 400 * 24 * 3600  # the most browsers keep (RFC 6265bis)
SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def load_secret_key(configured: str | None, data_dir: Path) -> str:
    """The configured key, or one generated once and kept in
    ``<data_dir>/secret_key`` (mode 0600) so cookies survive restarts."""
    if configured:
        return configured
    path = Path(data_dir) / "secret_key"
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret_key-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
        os.link(tmp, path)  # atomic create-if-absent: a concurrent first start keeps one key
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return path.read_text().strip()


def is_cross_origin(method: str, headers: dict[str, str]) -> bool:
    """True when an unsafe request comes from another origin's browser
    context (Go 1.25 ``CrossOriginProtection.Check``). ``headers`` are
    lower-cased names to values."""
    if method.upper() in SAFE_METHODS:
        return False
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return False
    host = headers.get("host", "")
    return urlsplit(origin).netloc.lower() != host.lower()


class SecurityMiddleware:
    """ASGI middleware: resolves the owner cookie into
    ``scope["state"]["owner_id"]``, refuses cross-origin unsafe requests with
    403, and adds security headers to every response."""

    def __init__(self, app: ASGIApp, *, secret_key: str, secure_cookies: bool = False) -> None:
        self.app = app
        self.serializer = URLSafeSerializer(secret_key, salt="retouch-owner")
        self.secure = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if is_cross_origin(scope["method"], headers):
            await _plain(send, 403, "Cross-origin request refused.")
            return
        owner_id, new_cookie = self._owner(headers.get("cookie", ""))
        scope.setdefault("state", {})["owner_id"] = owner_id

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                ]
                present = {k.lower() for k, _ in message.get("headers", [])}
                out = list(message.get("headers", []))
                out += [(k, v) for k, v in extra if k not in present]
                if new_cookie:
                    out.append((b"set-cookie", new_cookie.encode("latin-1")))
                message["headers"] = out
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _owner(self, cookie_header: str) -> tuple[str, str | None]:
        from http.cookies import CookieError, SimpleCookie

        jar = SimpleCookie()
        try:
            jar.load(cookie_header)
        except CookieError:
            pass
        morsel = jar.get(OWNER_COOKIE)
        if morsel is not None:
            try:
                return str(self.serializer.loads(morsel.value)), None
            except BadSignature:
                pass
        owner_id = secrets.token_hex(16)
        value = self.serializer.dumps(owner_id)
        cookie = (f"{OWNER_COOKIE}={value}; Path=/; Max-Age={COOKIE_MAX_AGE}; HttpOnly; SameSite=Lax"
                  + ("; Secure" if self.secure else ""))
        return owner_id, cookie


async def _plain(send: Send, status: int, text: str) -> None:
    body = ('{"detail": "%s"}' % text).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def safety_identifier(owner_id: str) -> str:
    """The ``safety_identifier`` sent to OpenAI for ``owner_id``: the hex
    SHA-256 of ``"retouch-owner:" + owner_id`` (64 characters).

    OpenAI asks for "a stable identifier for an end user ... Hash a username
    or email address to avoid sending identifying information" (SDK
    ``openai/types/image_edit_params.py``, ``safety_identifier``). The owner
    id is the random id inside the signed cookie; neither it nor the cookie
    is ever sent.
    """
    return hashlib.sha256(f"retouch-owner:{owner_id}".encode()).hexdigest()
