""""Use on another device" links (open mode only: with a login, a person
just logs in on the other device).

A link is ``/d/<token>``: 192 random bits, signed with the server's key (so
a made-up token is refused before any database read), and stored only as
its SHA-256, like a password: someone who reads the database cannot use the
links in it. It is shown once, when made.

**Single use, 7 days.** The link is a credential for every thread of its
owner, and it travels through chats, mail and screenshots. Single use means
one that leaks after it was used is worthless, and the owner sees on
``/devices`` when it was used; a second device needs one more click. Seven
days leave time to open it on a device that is not at hand, while an
unused, forgotten one does not stay valid for long; it can be revoked
before then.

Opening the link shows a confirmation page; the owner cookie changes only
with its POST (cross-site POSTs are refused by ``app/security.py``), so a
link someone else sends cannot silently switch a browser to their owner.
Revoking a used link does not sign that browser out: an owner cookie is not
a server-side session.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, Signer
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts import browser_owner, count_threads, move_threads
from app.models import DeviceLink
from app.security import owner_cookie, owner_serializer

#: How long an unused link stays valid.
LINK_LIFETIME = timedelta(days=7)
#: Links listed on /devices, newest first.
LIST_LIMIT = 20

router = APIRouter(include_in_schema=False)


class LinkRefused(Exception):
    """A link that cannot be used: ``status`` (404 unknown, 410 revoked,
    used or expired) and a sentence for the person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(moment: datetime) -> datetime:
    """SQLite gives datetimes back without a zone; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _signer(secret_key: str) -> Signer:
    return Signer(secret_key, salt="retouch-device-link")


def create_link(session: Session, owner_id: str, secret_key: str, now: datetime | None = None) -> tuple[DeviceLink, str]:
    """A new link for ``owner_id``, valid :data:`LINK_LIFETIME` from ``now``;
    returns the row and the signed token for the URL (kept nowhere else). Commits."""
    raw = secrets.token_urlsafe(24)
    now = now or _now()
    link = DeviceLink(token_sha256=_digest(raw), owner_id=owner_id, created_at=now, expires_at=now + LINK_LIFETIME)
    session.add(link)
    session.commit()
    return link, _signer(secret_key).sign(raw).decode()


def find_link(session: Session, token: str, secret_key: str, now: datetime | None = None) -> DeviceLink:
    """The usable link behind ``token``. Raises :class:`LinkRefused`: 404
    for a bad signature or an unknown token, 410 Gone (RFC 9110 §15.5.11)
    for a revoked, used or expired one."""
    try:
        raw = _signer(secret_key).unsign(token).decode()
    except BadSignature:
        raise LinkRefused(404, "This device link is not valid. Check that it was copied whole.") from None
    link = session.scalar(select(DeviceLink).where(DeviceLink.token_sha256 == _digest(raw)))
    if link is None:
        raise LinkRefused(404, "This device link is not valid. Check that it was copied whole.")
    if link.revoked_at is not None:
        raise LinkRefused(410, "This device link was revoked. Make a new one on the other device.")
    if link.used_at is not None:
        raise LinkRefused(410, "This device link was already used; each link works once. "
                               "Make a new one on the other device.")
    if _aware(link.expires_at) <= (now or _now()):
        raise LinkRefused(410, "This device link has expired (links last 7 days). Make a new one on the other device.")
    return link


def redeem(session: Session, token: str, secret_key: str, now: datetime | None = None) -> str:
    """Use the link behind ``token`` (marks it used, commits) and return its
    owner id. Raises :class:`LinkRefused` like :func:`find_link`."""
    link = find_link(session, token, secret_key, now)
    link.used_at = now or _now()
    session.commit()
    return link.owner_id


def list_links(session: Session, owner_id: str) -> list[DeviceLink]:
    """``owner_id``'s newest :data:`LIST_LIMIT` links."""
    return list(session.scalars(select(DeviceLink).where(DeviceLink.owner_id == owner_id)
                                .order_by(DeviceLink.created_at.desc()).limit(LIST_LIMIT)))


def revoke(session: Session, owner_id: str, link_id: str) -> bool:
    """Revoke ``owner_id``'s link ``link_id``; False when it has no such link. Commits."""
    link = session.get(DeviceLink, link_id)
    if link is None or not secrets.compare_digest(link.owner_id, owner_id):
        return False
    if link.revoked_at is None:
        link.revoked_at = _now()
        session.commit()
    return True


def link_state(link: DeviceLink, now: datetime | None = None) -> str:
    """``revoked``, ``used``, ``expired`` or ``unused``, for the list."""
    if link.revoked_at is not None:
        return "revoked"
    if link.used_at is not None:
        return "used"
    return "expired" if _aware(link.expires_at) <= (now or _now()) else "unused"


def _open_mode_only(request: Request) -> Response | None:
    from app.pages import error_page

    if getattr(request.app.state, "account_mode", "open") != "open":
        return error_page(request, 404, "This server has logins: log in on the other device to see your threads there.")
    return None


def _devices_page(request: Request, new_url: str | None = None, status: int = 200) -> Response:
    from app.pages import render

    with request.app.state.ctx.sessions() as session:
        links = [(link, link_state(link)) for link in list_links(session, request.state.owner_id)]
    return render(request, "devices.html", {"links": links, "new_url": new_url}, status=status)


@router.get("/devices")
def devices(request: Request) -> Response:
    """The page that makes, lists and revokes this browser's device links."""
    return _open_mode_only(request) or _devices_page(request)


@router.post("/devices")
def make_link(request: Request) -> Response:
    """Make a link and show it, once, on the devices page (201)."""
    refused = _open_mode_only(request)
    if refused:
        return refused
    with request.app.state.ctx.sessions() as session:
        _, token = create_link(session, request.state.owner_id, request.app.state.secret_key)
    return _devices_page(request, str(request.url_for("device_link", token=token)), status=201)


@router.post("/devices/{link_id}/revoke")
def revoke_link(request: Request, link_id: str) -> Response:
    """Revoke one of this browser's links; back to the devices page (303)."""
    from app.pages import error_page

    refused = _open_mode_only(request)
    if refused:
        return refused
    with request.app.state.ctx.sessions() as session:
        if not revoke(session, request.state.owner_id, link_id):
            return error_page(request, 404, "There is no such device link.")
    return RedirectResponse("/devices", status_code=303)


@router.get("/d/{token}", name="device_link")
def open_link(request: Request, token: str) -> Response:
    """The confirmation page for a device link (its 4xx page when it cannot be used)."""
    from app.pages import error_page, render

    refused = _open_mode_only(request)
    if refused:
        return refused
    with request.app.state.ctx.sessions() as session:
        try:
            link = find_link(session, token, request.app.state.secret_key)
        except LinkRefused as exc:
            return error_page(request, exc.status, exc.message)
        same = link.owner_id == browser_owner(request)
        here = 0 if same else count_threads(session, browser_owner(request))
    return render(request, "device_link.html", {"token": token, "same": same, "here": here})


@router.post("/d/{token}")
def use_link(request: Request, token: str, bring: Annotated[str, Form()] = "") -> Response:
    """Use a device link: this browser's owner cookie becomes the link's
    owner; with ``bring`` its own threads move along first. 303 to the
    threads, or the link's 4xx page."""
    from app.pages import error_page

    refused = _open_mode_only(request)
    if refused:
        return refused
    here = browser_owner(request)
    with request.app.state.ctx.sessions() as session:
        try:
            owner_id = redeem(session, token, request.app.state.secret_key)
        except LinkRefused as exc:
            return error_page(request, exc.status, exc.message)
        if bring:
            move_threads(session, here, owner_id)
    response = RedirectResponse("/", status_code=303)
    secure = request.app.state.ctx.settings.secure_cookies
    response.headers.append("set-cookie", owner_cookie(owner_serializer(request.app.state.secret_key), owner_id, secure))
    return response
