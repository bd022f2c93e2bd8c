"""FastAPI dependencies, as typed aliases (``SessionDep``, ``OwnerDep``...)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Request, UploadFile
from sqlalchemy.orm import Session, sessionmaker

from app import services
from app.config import Settings
from app.db import read_snapshot
from app.events import ThreadEvents
from app.models import Thread
from app.partials import PartialFrames
from app.rate_limit import RateLimiter
from app.render_cache import RenderCache
from app.services import Limits, TurnOptions, Upload
from app.storage import BlobStore
from app.urls import Urls
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
    #: Rendered thread pages and JSON by (thread, revision) (``app/render_cache.py``).
    render_cache: RenderCache = field(default_factory=RenderCache)

    @property
    def limits(self) -> Limits:
        s = self.settings
        return Limits(s.max_upload_bytes, s.max_upload_pixels, s.max_upload_side,
                      max_queued_turns=s.max_queued_turns, quota_bytes=s.owner_quota_bytes)


async def get_context(request: Request) -> AppContext:
    """The app's :class:`AppContext`. ``async`` (as are the other dependencies that do no I/O):
    FastAPI runs a ``def`` dependency in a worker thread, a hop that costs more than the lookup."""
    return request.app.state.ctx


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A database session for the request, closed after it. Making one does
    no I/O, so it is made here on the event loop. Closing it returns its
    connection (a rollback): over the network (PostgreSQL) that runs in a
    worker thread; SQLite's rollback is a local call of microseconds (in WAL
    mode an unfinished write has not reached the file yet,
    https://www.sqlite.org/wal.html), cheaper than the thread hop, so it
    runs here."""
    session = request.app.state.ctx.sessions()
    try:
        yield session
    finally:
        if session.get_bind().dialect.name == "sqlite":
            session.close()
        else:
            await anyio.to_thread.run_sync(session.close)


def get_owner(request: Request) -> str:
    """The caller's owner id (``app.security.SecurityMiddleware``, or a login)."""
    return request.state.owner_id


async def _owner_dep(request: Request) -> str:
    return get_owner(request)


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
OwnerDep = Annotated[str, Depends(_owner_dep)]
TurnLimit = Depends(count_turn)


# ---------------------------------------------------------------- threads by path


def owned_thread(thread_id: str, session: SessionDep, owner: OwnerDep) -> Thread:
    """The caller's thread named by the path parameter ``thread_id``, its
    turns and versions loaded (``services.get_thread``); NotFound (404) for
    another owner's, a deleted or an unknown thread."""
    return services.get_thread(session, owner, thread_id)


def shared_thread(token: str, session: SessionDep) -> Thread:
    """The thread behind the live share link named by the path parameter
    ``token``, its turns and versions loaded (``services.get_shared_thread``);
    NotFound (404) for an unknown or revoked token or a deleted thread."""
    return services.get_shared_thread(session, token)


OwnedThread = Annotated[Thread, Depends(owned_thread)]
SharedThread = Annotated[Thread, Depends(shared_thread)]


@dataclass(frozen=True)
class ThreadView:
    """A thread as one request sees it: by its owner (``share_token`` None)
    or through a share link, with the matching :class:`app.urls.Urls`."""

    thread: Thread
    urls: Urls
    share_token: str | None = None

    @classmethod
    def of(cls, thread: Thread, share_token: str | None = None) -> ThreadView:
        """The owner's view of ``thread``, or with ``share_token`` a link holder's."""
        return cls(thread, Urls.of(thread.id, share_token), share_token)

    @property
    def owner(self) -> bool:
        """True when the caller owns the thread (not a share-link view)."""
        return self.share_token is None


def find_thread(request: Request, session: Session, *, rows_only: bool = False,
                snapshot: bool = False) -> ThreadView:
    """The thread the matched route's path names: ``{token}`` (a share
    link, :func:`shared_thread`) or ``{thread_id}`` owned by the caller
    (:func:`owned_thread`); NotFound (404) as they raise it. ``rows_only``
    reads the thread's row alone (its turns and versions load when used);
    ``snapshot`` first makes the session read one snapshot
    (``app.db.read_snapshot``; for GETs only)."""
    if snapshot:
        read_snapshot(session)
    params = request.path_params
    if "token" in params:
        token = params["token"]
        thread = services.get_shared_row(session, token) if rows_only else shared_thread(token, session)
        return ThreadView.of(thread, token)
    owner, thread_id = get_owner(request), params["thread_id"]
    thread = services.thread_row(session, owner, thread_id) if rows_only else owned_thread(thread_id, session, owner)
    return ThreadView.of(thread)


@contextmanager
def viewing(request: Request, ctx: AppContext, *, snapshot: bool = False) -> Iterator[ThreadView]:
    """:func:`find_thread` (the row alone; with ``snapshot``, in one read
    snapshot) in a session of its own, closed when the block ends; the
    view's ``thread`` loads its turns and versions lazily inside the block.

    For the hottest GETs (the thread page, its JSON): a ``def`` endpoint
    that opens the view itself runs in one worker thread, where the
    :data:`ViewedSnapshot` dependency would take a thread of its own first
    (FastAPI runs each ``def`` dependency in the thread pool). Raises
    NotFound as :func:`find_thread` does."""
    with ctx.sessions() as session:
        yield find_thread(request, session, rows_only=True, snapshot=snapshot)


def viewed_thread(request: Request, session: SessionDep) -> ThreadView:
    """:func:`find_thread`, turns and versions loaded (turns first)."""
    return find_thread(request, session)


def viewed_row(request: Request, session: SessionDep) -> ThreadView:
    """:func:`find_thread`, the thread's row alone (image and attachment GETs)."""
    return find_thread(request, session, rows_only=True)


def viewed_snapshot(request: Request, session: SessionDep) -> ThreadView:
    """:func:`find_thread` in one read snapshot, the row first (pages and
    JSON that read several of the thread's tables)."""
    return find_thread(request, session, rows_only=True, snapshot=True)


def watched_thread(request: Request, ctx: ContextDep) -> ThreadView:
    """:func:`find_thread` in a session of its own, closed before it
    returns: for event streams, which must not hold a database session
    while they last. The view's thread is detached (its row's columns only)."""
    with viewing(request, ctx) as view:
        return view


async def _thread_id_path(thread_id: str) -> None:
    """Declares the ``thread_id`` path parameter (OpenAPI, validation) of a
    route whose thread dependency reads it from the matched path."""


async def _token_path(token: str) -> None:
    """Declares the ``token`` path parameter, as :func:`_thread_id_path`."""


#: Route dependencies: ``dependencies=THREAD_ID_PATH`` on ``/threads/{thread_id}/…``,
#: ``TOKEN_PATH`` on ``/shared/{token}/…``, for a handler that serves both.
THREAD_ID_PATH = [Depends(_thread_id_path)]
TOKEN_PATH = [Depends(_token_path)]

ViewedThread = Annotated[ThreadView, Depends(viewed_thread)]
ViewedRow = Annotated[ThreadView, Depends(viewed_row)]
ViewedSnapshot = Annotated[ThreadView, Depends(viewed_snapshot)]
WatchedThread = Annotated[ThreadView, Depends(watched_thread)]


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
