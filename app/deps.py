"""FastAPI dependencies, as typed aliases (``SessionDep``, ``OwnerDep``...)."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request, UploadFile
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.events import ThreadEvents
from app.partials import PartialFrames
from app.rate_limit import RateLimiter
from app.services import Limits, TurnOptions, Upload
from app.storage import BlobStore
from app.worker import TurnWorker

#: Room for multipart boundaries and text fields on top of the files, bytes.
MULTIPART_OVERHEAD = 64 * 1024
#: Files one request may carry: an image or a mask plus up to 4 references.
MAX_FILES_PER_REQUEST = 6


@dataclass
class AppContext:
    """What the running app holds: settings, the session factory, the blob
    store, the worker, the thread-change events and the backend new turns use."""

    settings: Settings
    sessions: sessionmaker
    store: BlobStore
    worker: TurnWorker
    events: ThreadEvents
    partials: PartialFrames
    backend: str
    turn_limiter: RateLimiter
    #: Turns and forks per client address from requests without an owner cookie.
    address_limiter: RateLimiter | None = None
    #: ``RETOUCH_OPENAI_PRICES`` parsed (``app/usage.py``); {} = show no cost.
    prices: dict = field(default_factory=dict)

    @property
    def limits(self) -> Limits:
        s = self.settings
        return Limits(s.max_upload_bytes, s.max_upload_pixels, s.max_upload_side,
                      max_queued_turns=s.max_queued_turns, quota_bytes=s.owner_quota_bytes)


def get_context(request: Request) -> AppContext:
    return request.app.state.ctx


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.ctx.sessions() as session:
        yield session


def get_owner(request: Request) -> str:
    return request.state.owner_id


def count_turn(request: Request) -> None:
    """Take one turn from the caller's rate limit (429 past it). A request
    without a (valid) owner cookie also takes one from its client address's
    limit, so dropping the cookie does not escape the limit."""
    ctx: AppContext = request.app.state.ctx
    ctx.turn_limiter.hit(request.state.owner_id)
    if ctx.address_limiter is not None and is_new_owner(request):
        ctx.address_limiter.hit(request.client.host if request.client else "unknown")


def is_new_owner(request: Request) -> bool:
    """True when the request came without a valid owner cookie (the
    security middleware issued a new owner for it, ``app/security.py``)."""
    return bool(request.state.new_owner)


ContextDep = Annotated[AppContext, Depends(get_context)]
SessionDep = Annotated[Session, Depends(get_session)]
OwnerDep = Annotated[str, Depends(get_owner)]
TurnLimit = Depends(count_turn)


def read_upload(upload: UploadFile | None, max_bytes: int) -> Upload | None:
    """Read an uploaded file into an :class:`Upload`, at most ``max_bytes``
    + 1 bytes (one more than allowed, so the size check can see it is too
    large). Returns None for a missing file or an empty file field from an
    HTML form (no filename and no bytes)."""
    if upload is None:
        return None
    upload.file.seek(0)
    data = upload.file.read(max_bytes + 1)
    if not data and not upload.filename:
        return None
    return Upload(filename=upload.filename or "", data=data)


def turn_options(ctx: AppContext, *, size: str | None, quality: str | None, mask: UploadFile | None,
                 references: list[UploadFile], model: str | None = None, background: str | None = None,
                 markup: UploadFile | None = None, backend: str | None = None) -> TurnOptions:
    """Read a turn's uploaded files (each capped at the byte limit) into
    :class:`TurnOptions`; empty file fields are dropped."""
    limit = ctx.settings.max_upload_bytes
    refs = [u for u in (read_upload(f, limit) for f in references) if u is not None]
    return TurnOptions(size=size, quality=quality, mask=read_upload(mask, limit), references=refs,
                       model=model, background=background, markup=read_upload(markup, limit),
                       backend=backend)
