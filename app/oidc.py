"""OpenID Connect login (``RETOUCH_OIDC_ISSUER``), through Authlib's
Starlette client.

- **Discovery** (OpenID Connect Discovery 1.0 §4): the provider's metadata is
  read from ``<issuer>/.well-known/openid-configuration`` at the first login
  (not at start-up, so a provider that is down does not stop the server), and
  its ``issuer`` must equal the configured one (§4.3).
- **Authorization code flow** (OpenID Connect Core 1.0 §3.1, RFC 6749 §4.1)
  with PKCE ``S256`` (RFC 7636), a random ``state`` (RFC 6749 §10.12) and
  ``nonce`` (Core §3.1.2.1). Authlib keeps them, with the code verifier, in a
  short-lived signed cookie (:data:`LOGIN_STATE_COOKIE`, Starlette's
  ``SessionMiddleware``) and checks them at the callback.
- **ID token** (Core §3.1.3.7): Authlib verifies its signature against the
  provider's JWKS, ``iss``, ``aud`` (the client id), ``exp``/``iat`` and the
  ``nonce``. The account key is the verified ``iss`` and ``sub``.

The redirect URI to register at the provider is ``<public URL>/login/oidc/callback``.
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

import httpx
from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import APIRouter, FastAPI, Request
from joserfc.errors import JoseError
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from app.accounts import account_for, after_login, safe_next

#: The cookie that holds an unfinished login's state, nonce and PKCE verifier.
LOGIN_STATE_COOKIE = "retouch_login"
#: Seconds a person has to finish logging in at the provider.
LOGIN_STATE_MAX_AGE = 15 * 60
#: Claims tried, in order, after the configured one, for the name shown.
NAME_CLAIMS = ("name", "preferred_username", "email", "sub")

log = logging.getLogger("retouch")
router = APIRouter(include_in_schema=False)


class OIDCConfigError(RuntimeError):
    """The provider's metadata could not be read, or names another issuer."""


class OIDCLogin:
    """The configured provider: Authlib's client plus the issuer it must be."""

    def __init__(self, settings) -> None:
        missing = [name for name, value in (("RETOUCH_OIDC_CLIENT_ID", settings.oidc_client_id),
                                            ("RETOUCH_OIDC_CLIENT_SECRET", settings.oidc_client_secret))
                   if not value]
        if missing:
            raise ValueError(f"RETOUCH_OIDC_ISSUER is set, so {' and '.join(missing)} must be set too.")
        if "openid" not in settings.oidc_scopes.split():
            raise ValueError("RETOUCH_OIDC_SCOPES must include openid (OpenID Connect Core 1.0 §3.1.2.1).")
        self.issuer = settings.oidc_issuer.strip().rstrip("/")
        self.name_claim = settings.oidc_name_claim
        self.provider_name = urlsplit(self.issuer).hostname or self.issuer
        self.client = OAuth().register(
            "retouch", client_id=settings.oidc_client_id, client_secret=settings.oidc_client_secret,
            server_metadata_url=f"{self.issuer}/.well-known/openid-configuration",
            client_kwargs={"scope": settings.oidc_scopes, "code_challenge_method": "S256"},
        )

    async def metadata(self) -> dict:
        """The provider's metadata (read once, then cached by Authlib).
        Raises :class:`OIDCConfigError` when it cannot be read or its
        ``issuer`` is not the configured one (Discovery §4.3)."""
        try:
            meta = await self.client.load_server_metadata()
        except (httpx.HTTPError, ValueError) as exc:
            self.client.server_metadata = {}
            raise OIDCConfigError(f"could not read {self.issuer}/.well-known/openid-configuration: {exc}") from exc
        if str(meta.get("issuer", "")).rstrip("/") != self.issuer:
            self.client.server_metadata = {}
            raise OIDCConfigError(f"the provider calls itself {meta.get('issuer')!r}, "
                                  f"not RETOUCH_OIDC_ISSUER={self.issuer!r}")
        return meta

    def display_name(self, claims: dict) -> str:
        """The name to show for verified ID-token ``claims``."""
        for claim in (self.name_claim, *NAME_CLAIMS):
            value = claims.get(claim)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return str(claims["sub"])


def add_login_state(app: FastAPI, secret_key: str, *, secure: bool) -> None:
    """Add the signed cookie session Authlib keeps an unfinished login in.
    ``SameSite=Lax``: the provider's redirect back is a top-level GET, which
    Lax cookies go with."""
    app.add_middleware(SessionMiddleware, secret_key=secret_key, session_cookie=LOGIN_STATE_COOKIE,
                       max_age=LOGIN_STATE_MAX_AGE, same_site="lax", https_only=secure)


def _failed(request: Request, status: int, message: str) -> Response:
    from app.access import _login_context
    from app.pages import render

    target = safe_next(request.session.pop("retouch_next", "/")) if "session" in request.scope else "/"
    return render(request, "login.html", _login_context(request, target, error=message), status=status)


@router.get("/login/oidc")
async def start(request: Request, next: str = "/") -> Response:
    """Send the browser to the provider's authorization endpoint (302)."""
    provider: OIDCLogin | None = request.app.state.oidc
    if provider is None:
        return RedirectResponse("/login", status_code=303)
    try:
        await provider.metadata()
    except OIDCConfigError as exc:
        log.error("OpenID Connect login is not possible: %s", exc)
        return _failed(request, 502, f"The login service at {provider.provider_name} cannot be reached "
                                     "or is set up wrongly; the server's log says why. Try again later.")
    request.session["retouch_next"] = safe_next(next)
    return await provider.client.authorize_redirect(request, request.url_for("oidc_callback"))


@router.get("/login/oidc/callback", name="oidc_callback")
async def callback(request: Request) -> Response:
    """The provider's redirect back: checks state, exchanges the code (with
    the PKCE verifier), verifies the ID token, logs the account in (303)."""
    provider: OIDCLogin | None = request.app.state.oidc
    if provider is None:
        return RedirectResponse("/login", status_code=303)
    try:
        await provider.metadata()
        token = await provider.client.authorize_access_token(request)
    except OAuthError as exc:
        if exc.error == "access_denied":
            return _failed(request, 403, "The login was cancelled at the provider.")
        if exc.error == "mismatching_state":
            return _failed(request, 400, "This login expired or was started in another tab. Please log in again.")
        log.warning("OpenID Connect login refused: %s", exc)
        return _failed(request, 400, f"The login did not succeed ({exc.error}). Please log in again.")
    except JoseError as exc:  # the ID token's signature or claims (iss, aud, exp, nonce) did not verify
        log.warning("OpenID Connect ID token refused: %s", exc)
        return _failed(request, 400, "The login could not be verified. Please log in again.")
    except (OIDCConfigError, httpx.HTTPError) as exc:
        log.error("OpenID Connect login failed: %s", exc)
        return _failed(request, 502, f"The login service at {provider.provider_name} did not answer as expected; "
                                     "the server's log says why. Try again later.")
    claims = token.get("userinfo")
    if not claims or not claims.get("sub"):
        return _failed(request, 502, "The login service sent no ID token. Ask the administrator.")
    ctx = request.app.state.ctx

    def save():
        with ctx.sessions() as session:
            return account_for(session, issuer=str(claims["iss"]), subject=str(claims["sub"]),
                               display_name=provider.display_name(claims))

    account = await run_in_threadpool(save)
    target = safe_next(request.session.pop("retouch_next", "/"))
    target = await run_in_threadpool(after_login, request, account.owner_id, target)
    response = RedirectResponse(target, status_code=303)
    response.headers.append("set-cookie", request.app.state.account_cookies.make(account))
    return response
