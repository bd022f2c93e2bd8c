"""Owner identity, cross-origin protection and security headers.

- Owner identity: a random 128-bit secret in a signed (itsdangerous),
  HttpOnly, SameSite=Lax cookie, set on the first visit. With a login
  (password or OpenID Connect), ``app/access.py`` replaces it with the
  account's owner further in (``app/accounts.py``).
- Unsafe methods from a cross-site browser context are refused with 403, the
  way Go 1.25's ``net/http.CrossOriginProtection`` decides: ``Sec-Fetch-Site``
  ``same-origin`` or ``none`` passes and any other value fails; without it, an
  ``Origin`` whose host differs from ``Host`` fails; a request with neither
  header (a script, curl) passes.
- Every response carries the security headers, a 500 from an unhandled
  exception included.
- Cookies are parsed the lenient way browsers send them (Starlette's
  ``cookie_parser``): one odd cookie from another app on the same host
  (``theme=dark mode``, a bare ``flag``, ``a@b=1``, non-ASCII) does not hide
  the owner cookie.
- When several owner cookies arrive (one planted for another path or a
  sibling domain, say), the first that verifies wins, and nothing is set.
- A header that names the owner cookie but yields no value the parser can
  read is never answered with a ``Set-Cookie``: that request runs as a fresh
  owner of its own, and the browser keeps what it has.
- An owner cookie that is read but does not verify (the secret key changed,
  or the data folder was reset) is replaced with a new owner: its threads
  cannot be reached with this key anyway, and keeping it would leave that
  browser a stranger on every request (a thread it creates would answer 404
  on the next page).
- ``RETOUCH_PUBLIC_URL`` (:class:`PublicURLMiddleware`) fixes the scheme and
  host of every absolute URL the app makes, whatever ``Host`` says.
"""
from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from cachetools import LRUCache
from itsdangerous import BadSignature, URLSafeSerializer
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http_limits import send_error
from app.storage import create_once

OWNER_COOKIE = "retouch_owner"
COOKIE_MAX_AGE = 400 * 24 * 3600  # the most browsers keep (RFC 6265bis)
SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: Added to every response that does not set them itself.
_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
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
    create_once(path, secrets.token_urlsafe(32).encode())  # a concurrent first start keeps one key
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


def owner_cookie_values(cookie_header: str) -> list[str]:
    """Every value the ``Cookie`` header (RFC 6265 §5.4) carries under the
    name :data:`OWNER_COOKIE`, in order. Parsed with Starlette's lenient
    ``cookie_parser``, one ``;``-separated pair at a time so that a second
    cookie of the same name (set for another path or domain) is not lost."""
    values = []
    for pair in cookie_header.split(";"):
        for name, value in cookie_parser(pair).items():
            if name == OWNER_COOKIE:
                values.append(value)
    return values


#: Verified owner cookie values remembered per process (``SecurityMiddleware._owner``).
VERIFIED_COOKIES = 4096


class SecurityMiddleware:
    """ASGI middleware: resolves the owner cookie into
    ``scope["state"]["owner_id"]`` (and ``scope["state"]["new_owner"]``: True
    when the request had no verifiable owner cookie), refuses cross-origin
    unsafe requests with 403, adds security headers to every response, and
    turns an unhandled exception into a 500 that carries them too."""

    def __init__(self, app: ASGIApp, *, secret_key: str, secure_cookies: bool = False) -> None:
        self.app = app
        self.serializer = owner_serializer(secret_key)
        self.secure = secure_cookies
        # Cookie values whose signature verified -> their owner: a signed value always means the same
        # owner under this key, so each is checked once (an HMAC and a JSON parse per request otherwise).
        self._verified: LRUCache = LRUCache(maxsize=VERIFIED_COOKIES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        new_cookie: str | None = None
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {k.lower() for k, _ in message.get("headers", [])}
                out = list(message.get("headers", []))
                out += [(k, v) for k, v in _SECURITY_HEADERS if k not in present]
                sets_owner = any(k.lower() == b"set-cookie" and v.startswith(OWNER_COOKIE.encode() + b"=")
                                 for k, v in out)
                if new_cookie and not sets_owner:  # a device link (app/device_links.py) sets its own
                    out.append((b"set-cookie", new_cookie.encode("latin-1")))
                message["headers"] = out
            await send(message)

        if is_cross_origin(scope["method"], headers):
            await send_error(scope, send_with_headers, 403, "Cross-origin request refused.")
            return
        owner_id, new_cookie, new_owner = self._owner(headers.get("cookie", ""))
        state = scope.setdefault("state", {})
        state["owner_id"] = owner_id
        state["new_owner"] = new_owner
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Starlette's ServerErrorMiddleware sits outside every middleware, so its 500 would
            # carry none of the headers above: answer here, then let it (and the server) log it.
            if not started:
                await send_error(scope, send_with_headers, 500,
                                 "Something went wrong on the server; the error is in its log.")
            raise

    def _owner(self, cookie_header: str) -> tuple[str, str | None, bool]:
        """``(owner_id, set_cookie, new)`` for a ``Cookie`` header: the owner
        of the first owner cookie that verifies (no cookie to set); else a
        new random owner with a ``Set-Cookie`` for it, except when the header
        names the owner cookie without a readable value: then no
        ``Set-Cookie`` (see the module docstring)."""
        values = owner_cookie_values(cookie_header)
        for value in values:
            owner_id = self._verified.get(value)
            if owner_id is None:
                try:
                    owner_id = str(self.serializer.loads(value))
                except BadSignature:
                    continue
                self._verified[value] = owner_id
            return owner_id, None, False
        owner_id = secrets.token_hex(16)
        if not values and OWNER_COOKIE in cookie_header.lower():
            return owner_id, None, True  # named but unreadable: never overwrite it
        return owner_id, owner_cookie(self.serializer, owner_id, self.secure), True


def owner_serializer(secret_key: str) -> URLSafeSerializer:
    """The itsdangerous serializer that signs owner cookies with ``secret_key``."""
    return URLSafeSerializer(secret_key, salt="retouch-owner")


def owner_cookie(serializer: URLSafeSerializer, owner_id: str, secure: bool = False) -> str:
    """A ``Set-Cookie`` value that makes the browser ``owner_id``'s: signed
    by ``serializer`` (:func:`owner_serializer`), HttpOnly, SameSite=Lax,
    kept :data:`COOKIE_MAX_AGE` seconds, ``Secure`` with ``secure``."""
    value = serializer.dumps(owner_id)
    return (f"{OWNER_COOKIE}={value}; Path=/; Max-Age={COOKIE_MAX_AGE}; HttpOnly; SameSite=Lax"
            + ("; Secure" if secure else ""))


def parse_public_url(public_url: str) -> tuple[str, str, tuple[str, int]]:
    """``RETOUCH_PUBLIC_URL`` (``http(s)://host[:port]``, RFC 3986) as
    ``(scheme, host header value, (host, port))``. Raises ValueError for a
    URL with another scheme, no host, a bad port, credentials, or a path,
    query or fragment: Retouch serves from the root of its host."""
    parts = urlsplit(public_url.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (parts.scheme not in ("http", "https") or not parts.hostname or port == -1
            or parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc):
        raise ValueError(f"RETOUCH_PUBLIC_URL must look like https://retouch.example.com "
                         f"(http or https, a host, an optional port, no path); got {public_url!r}.")
    netloc = parts.netloc.lower().encode("idna").decode("ascii")  # UnicodeError is a ValueError
    return parts.scheme, netloc, (parts.hostname, port or (443 if parts.scheme == "https" else 80))


class PublicURLMiddleware:
    """ASGI middleware for ``RETOUCH_PUBLIC_URL``: every request is seen as
    addressed to ``public_url`` (its scheme and ``Host``, RFC 9110 §7.2), so
    ``request.base_url``, share links and ``og:image`` URLs follow the
    setting, never a ``Host`` header a client chose (see
    :func:`parse_public_url`)."""

    def __init__(self, app: ASGIApp, *, public_url: str) -> None:
        self.app = app
        self.scheme, host, self.server = parse_public_url(public_url)
        self.host = host.encode("ascii")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k != b"host"] + [(b"host", self.host)]
        await self.app({**scope, "scheme": self.scheme, "server": self.server, "headers": headers}, receive, send)


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
