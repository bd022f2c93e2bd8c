"""The ORM models: a thread owns versions (a tree through ``parent``), turns
(the conversation, and the queue the worker runs) and share links."""
from __future__ import annotations

import secrets
from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base

TURN_KINDS = ("generate", "edit", "upload", "revert")
#: ``answered``: the backend answered in words and made no image (a question
#: back, or a refusal); not a failure, the person can reply.
#: ``cancelled``: stopped by the person, before it started or while it ran; no version.
TURN_STATUSES = ("queued", "running", "succeeded", "answered", "declined", "failed", "cancelled")
PENDING_STATUSES = ("queued", "running")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    """A random public id: 16 URL-safe characters (96 random bits, drawn
    again when the first character is ``-``, so an id never reads as an
    option on a command line: ``retouch export ID``)."""
    while True:
        value = secrets.token_urlsafe(12)
        if not value.startswith("-"):
            return value


class Thread(Base):
    __tablename__ = "threads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(String(200))
    head_version: Mapped[int | None] = mapped_column(Integer)
    forked_from: Mapped[str | None] = mapped_column(String(32))
    #: The image model the last turn asked for; the composer preselects it.
    model: Mapped[str | None] = mapped_column(String(64))
    #: The backend the last turn chose; the composer preselects it.
    backend: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    #: Whether the C2PA manifests of this thread's downloads carry the
    #: instructions (``app/provenance.py``); off by default, for privacy.
    c2pa_instructions: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: When the owner deleted the thread (``app/services.py``, :func:`delete_thread`): from then on it
    #: answers 404 everywhere; it can be restored for ``RETOUCH_DELETE_UNDO_SECONDS``, then it is purged.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    #: Raised by one in every flush that adds, changes or deletes this row, its turns, versions or
    #: share links (``app/revisions.py``): cached renderings of the thread are keyed by it
    #: (``app/render_cache.py``). Set by SQL (``revision + 1``); an object loaded earlier may hold an older value.
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    versions: Mapped[list[Version]] = relationship(
        back_populates="thread", order_by="Version.number", cascade="all, delete-orphan"
    )
    turns: Mapped[list[Turn]] = relationship(
        back_populates="thread", order_by="Turn.pk", cascade="all, delete-orphan"
    )
    share_links: Mapped[list[ShareLink]] = relationship(
        back_populates="thread", cascade="all, delete-orphan"
    )

    def version(self, number: int | None) -> Version | None:
        """The version numbered ``number``, or None."""
        return next((v for v in self.versions if v.number == number), None)

    @property
    def head(self) -> Version | None:
        return self.version(self.head_version)

    @property
    def live_share(self) -> ShareLink | None:
        return next((s for s in self.share_links if s.revoked_at is None), None)

    @property
    def pending(self) -> bool:
        return any(t.status in PENDING_STATUSES for t in self.turns)


class Version(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("thread_id", "number"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    parent: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    turn_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    thread: Mapped[Thread] = relationship(back_populates="versions")


class Turn(Base):
    __tablename__ = "turns"
    __table_args__ = (Index("ix_turns_status_pk", "status", "pk"),)

    #: Insertion order: the queue order and the conversation order.
    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True, default=new_id)
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    instruction: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    base_version: Mapped[int | None] = mapped_column(Integer)
    #: True: the turn starts from ``base_version`` as set when it was queued
    #: (regenerate, edit and resend make a sibling of the original's result);
    #: False: from the thread's head when a worker claims it (``app/turns.py``).
    pinned_base: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    result_version: Mapped[int | None] = mapped_column(Integer)
    backend: Mapped[str | None] = mapped_column(String(32))
    size: Mapped[str | None] = mapped_column(String(20))
    quality: Mapped[str | None] = mapped_column(String(10))
    #: The image model asked for (None: the backend's default).
    model: Mapped[str | None] = mapped_column(String(64))
    #: ``auto``, ``opaque`` or ``transparent`` (None: the backend's default).
    background: Mapped[str | None] = mapped_column(String(16))
    mask_sha256: Mapped[str | None] = mapped_column(String(64))
    #: Strokes drawn over the image to guide the edit (RGBA PNG, transparent elsewhere).
    markup_sha256: Mapped[str | None] = mapped_column(String(64))
    reference_sha256s: Mapped[list] = mapped_column(JSON, default=list)
    usage: Mapped[dict | None] = mapped_column(JSON)
    #: A declined turn: example instructions the backend can do instead
    #: (``BackendDeclined.suggestions``), shown as buttons that fill the composer.
    suggestions: Mapped[list | None] = mapped_column(JSON)
    #: What the backend reported it made: ``{"model", "size", "quality",
    #: "background", "output_format"}`` (the effective values when "auto" was asked).
    output: Mapped[dict | None] = mapped_column(JSON)
    #: Conversational mode (``openai-chat``): the Responses API id this turn
    #: produced, the sha256 of the image that response returned (before any
    #: mask compositing; a later turn continues the chain only from a version
    #: with exactly these pixels), how many chained responses led here (1 =
    #: a fresh chain), ``chained``/``fresh``/``restarted``, the assistant's
    #: words and the prompt the image tool actually used.
    response_id: Mapped[str | None] = mapped_column(String(64))
    response_image_sha256: Mapped[str | None] = mapped_column(String(64))
    chain_depth: Mapped[int | None] = mapped_column(Integer)
    context: Mapped[str | None] = mapped_column(String(16))
    reply: Mapped[str | None] = mapped_column(Text)
    revised_prompt: Mapped[str | None] = mapped_column(Text)
    #: How many times a worker has started this turn (crash recovery).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: The worker holding a running turn (``host:pid:n``), and until when its
    #: lease runs; the holder renews it with a heartbeat (``app/turns.py``).
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    thread: Mapped[Thread] = relationship(back_populates="turns")

    @property
    def pending(self) -> bool:
        return self.status in PENDING_STATUSES


class ShareLink(Base):
    __tablename__ = "share_links"

    #: ``secrets.token_urlsafe(24)``: 192 bits.
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    thread: Mapped[Thread] = relationship(back_populates="share_links")


class Account(Base):
    """A person who logs in (``app/accounts.py``): the stable key is the
    issuer and ``subject`` (OpenID Connect Core 1.0 §2: ``sub`` is unique
    only within its issuer). The account owns threads through ``owner_id``,
    the same column cookie owners use. The password login is one account
    (issuer ``retouch:password``, subject ``instance``)."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    issuer: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    owner_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DeviceLink(Base):
    """A "use on another device" link (``app/device_links.py``): only the
    SHA-256 of its random token is kept. Single use, it expires, and it can
    be revoked."""

    __tablename__ = "device_links"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    owner_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# Every flush that touches a thread's rows raises its revision (imported last: it needs the classes above).
from app import revisions  # noqa: E402,F401
