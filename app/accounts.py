"""Accounts: who is logged in, and which owner id their threads carry.

Threads belong to an ``owner_id`` (``threads.owner_id``). How a request gets
one depends on the mode (``app/access.py`` decides it from the settings):

- **open** (no login): the browser's owner cookie (``app/security.py``);
  a "use on another device" link carries it to another browser
  (``app/device_links.py``).
- **password** (``RETOUCH_ACCESS_PASSWORD``): one owner, the instance's,
  kept as the account with issuer :data:`PASSWORD_ISSUER`. Every browser
  that logs in, and every script with the Bearer password, sees the same
  threads.
- **OpenID Connect** (``RETOUCH_OIDC_ISSUER``, ``app/oidc.py``): one account
  per issuer and ``sub`` (OpenID Connect Core 1.0 §2: ``sub`` is unique and
  never reassigned within its issuer), each with its own owner id.

A logged-in browser still has its owner cookie; threads it made before the
login stay with that cookie owner until the person moves them
(:func:`move_threads`, offered at ``/account/move``).

This module also holds the routes all modes share: ``/account/move`` and
``/logout``; ``router`` includes those of ``app/oidc.py`` and
``app/device_links.py``.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import Account, Thread

#: Issuer and subject of the one account password mode has.
PASSWORD_ISSUER = "retouch:password"
PASSWORD_SUBJECT = "instance"
#: The signed cookie that says which OpenID Connect account is logged in.
ACCOUNT_COOKIE = "retouch_account"
#: How long a login lasts, in seconds (30 days, like the password login).
ACCOUNT_MAX_AGE = 30 * 24 * 3600


@dataclass(frozen=True)
class Identity:
    """The logged-in account of a request: its id, the owner id its threads
    carry, the name to show and ``kind`` (``"oidc"`` or ``"password"``)."""

    account_id: str
    owner_id: str
    display_name: str
    kind: str

    @property
    def label(self) -> str:
        """What the header says about who is logged in."""
        return self.display_name if self.kind == "oidc" else "Logged in (password)"


def account_for(session: Session, *, issuer: str, subject: str, display_name: str) -> Account:
    """The account of ``(issuer, subject)``, created with a new random owner
    id (128 bits, like a cookie owner) on first use; its ``display_name`` is
    updated when it changed. Commits. Two first logins at once both end with
    the one row the unique constraint lets in."""
    account = session.scalar(select(Account).where(Account.issuer == issuer, Account.subject == subject))
    if account is None:
        account = Account(issuer=issuer, subject=subject, display_name=display_name[:200],
                          owner_id=secrets.token_hex(16))
        session.add(account)
        try:
            session.commit()
            return account
        except IntegrityError:  # created by a concurrent login
            session.rollback()
            account = session.scalars(select(Account).where(Account.issuer == issuer,
                                                            Account.subject == subject)).one()
    if display_name and account.display_name != display_name[:200]:
        account.display_name = display_name[:200]
        session.commit()
    return account


def count_threads(session: Session, owner_id: str) -> int:
    """How many threads ``owner_id`` owns."""
    return session.scalar(select(func.count()).select_from(Thread).where(Thread.owner_id == owner_id)) or 0


def move_threads(session: Session, from_owner: str, to_owner: str) -> int:
    """Give every thread of ``from_owner`` to ``to_owner`` (one UPDATE, so
    none is left half-moved); returns how many moved. Their versions, turns
    (queued ones included) and share links go with them. Commits."""
    if from_owner == to_owner:
        return 0
    moved = session.execute(update(Thread).where(Thread.owner_id == from_owner).values(owner_id=to_owner)).rowcount
    session.commit()
    return moved or 0


class AccountCookies:
    """Signs and reads :data:`ACCOUNT_COOKIE` (itsdangerous, timestamped):
    it carries the account id, owner id and name, so a request needs no
    database read to know who is logged in."""

    def __init__(self, secret_key: str, *, secure: bool = False) -> None:
        self.serializer = URLSafeTimedSerializer(secret_key, salt="retouch-account")
        self.secure = secure

    def make(self, account: Account) -> str:
        """A ``Set-Cookie`` value logging ``account`` in for :data:`ACCOUNT_MAX_AGE` seconds."""
        value = self.serializer.dumps([account.id, account.owner_id, account.display_name])
        return (f"{ACCOUNT_COOKIE}={value}; Path=/; Max-Age={ACCOUNT_MAX_AGE}; HttpOnly; SameSite=Lax"
                + ("; Secure" if self.secure else ""))

    def read(self, value: str | None) -> Identity | None:
        """The identity in a cookie value, or None when it is missing, forged or older than the max age."""
        if not value:
            return None
        try:
            account_id, owner_id, name = self.serializer.loads(value, max_age=ACCOUNT_MAX_AGE)
        except (BadSignature, ValueError, TypeError):
            return None
        return Identity(str(account_id), str(owner_id), str(name), "oidc")


def clear_cookie(name: str, secure: bool = False) -> str:
    """A ``Set-Cookie`` value that deletes cookie ``name`` (Max-Age=0, RFC 6265 §5.2.2)."""
    return f"{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")


def browser_owner(request: Request) -> str:
    """The owner id of the browser's own cookie, whoever is logged in
    (``app/access.py`` keeps it as ``browser_owner_id`` when a login
    replaces ``owner_id``)."""
    return getattr(request.state, "browser_owner_id", None) or request.state.owner_id


def identity(request: Request) -> Identity | None:
    """The request's logged-in :class:`Identity`, or None."""
    return getattr(request.state, "identity", None)


def safe_next(value: str | None) -> str:
    """``value`` when it is a path on this site (``/...``, not ``//host`` or
    with a backslash), else ``/``: no open redirect after a login."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def after_login(request: Request, owner_id: str, target: str) -> str:
    """Where a fresh login goes: the move offer when this browser's cookie
    owner has threads that are not the account's, else ``target``."""
    if browser_owner(request) != owner_id:
        with request.app.state.ctx.sessions() as session:
            if count_threads(session, browser_owner(request)):
                return f"/account/move?next={quote(safe_next(target), safe='/')}"
    return target


router = APIRouter(include_in_schema=False)


@router.get("/account/move")
def move_offer(request: Request, next: str = "/") -> Response:
    """The offer to move this browser's threads into the logged-in account
    (redirects to ``next`` when there is nothing to move)."""
    from app.pages import render

    who = identity(request)
    target = safe_next(next)
    if who is None:
        return RedirectResponse(target, status_code=303)
    with request.app.state.ctx.sessions() as session:
        count = count_threads(session, browser_owner(request)) if browser_owner(request) != who.owner_id else 0
    if not count:
        return RedirectResponse(target, status_code=303)
    return render(request, "account_move.html", {"count": count, "next": target, "who": who})


@router.post("/account/move")
def move(request: Request, next: Annotated[str, Form()] = "/") -> Response:
    """Move this browser's cookie-owner threads into the logged-in account.
    Safe against CSRF like every form: cross-site POSTs are refused by
    ``app/security.py``, and the threads moved are those of the signed
    owner cookie the request carries, never ones the form names."""
    who = identity(request)
    if who is not None:
        with request.app.state.ctx.sessions() as session:
            move_threads(session, browser_owner(request), who.owner_id)
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request) -> Response:
    """Sign out: deletes the password login, the account login and any
    unfinished OpenID Connect login state. The browser's owner cookie stays."""
    from app.access import ACCESS_COOKIE
    from app.oidc import LOGIN_STATE_COOKIE

    secure = request.app.state.ctx.settings.secure_cookies
    response = RedirectResponse("/login", status_code=303)
    for name in (ACCESS_COOKIE, ACCOUNT_COOKIE, LOGIN_STATE_COOKIE):
        response.headers.append("set-cookie", clear_cookie(name, secure))
    return response


def _include_others() -> None:
    from app import device_links, oidc

    router.include_router(oidc.router)
    router.include_router(device_links.router)


_include_others()
