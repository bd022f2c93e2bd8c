"""JSON shapes of the API (pydantic), and how models become them."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy.orm import object_session

from app.models import Thread, Turn, Version
from app.urls import Urls, share_link
from app.usage import cost_of


class VersionOut(BaseModel):
    number: int
    parent: int | None
    width: int = Field(description="pixels")
    height: int = Field(description="pixels")
    sha256: str
    image_url: str
    thumbnail_url: str
    turn_id: str | None
    created_at: datetime


class TurnOut(BaseModel):
    id: str
    thread_id: str
    kind: Literal["generate", "edit", "upload", "revert"]
    instruction: str
    status: Literal["queued", "running", "succeeded", "answered", "declined", "failed", "cancelled"] = Field(
        description="answered: the backend replied in words only (a question or a refusal) and made no version; "
        "cancelled: stopped by the person (before it started, or while it ran: the result was discarded)")
    message: str | None
    error: str | None
    base_version: int | None
    pinned_base: bool = Field(default=False, description="starts from base_version, fixed when queued "
                              "(regenerate, edit and resend), not from the head when it starts")
    result_version: int | None
    backend: str | None
    suggestions: list[str] | None = Field(default=None, description="a declined turn: instructions the "
                                          "backend can do instead")
    size: str | None = Field(default=None, description="asked for: WIDTHxHEIGHT or auto; null = the image's shape")
    quality: str | None = None
    model: str | None = Field(default=None, description="asked for; null = the backend's default")
    background: str | None = None
    has_mask: bool = False
    has_markup: bool = False
    reference_count: int = 0
    usage: dict | None = Field(default=None, description="tokens the backend reported (owner only)")
    output: dict | None = Field(default=None, description="what the backend reported it made: model, "
                                "size, quality, background, output_format")
    notes: list[str] = Field(default_factory=list, description="options the backend ignored or changed, "
                             "as sentences (app/option_notes.py): e.g. a size the offline editor does not take")
    cost_usd: float | None = Field(default=None, description="by RETOUCH_OPENAI_PRICES (owner only)")
    partial_image_url: str | None = Field(default=None, description="the newest partial image while the "
                                          "turn runs (WebP); gone when the turn ends")
    partial_image_index: int | None = None
    reply: str | None = Field(default=None, description="the assistant's words (openai-chat); while the turn "
                              "runs, the words so far")
    revised_prompt: str | None = Field(default=None, description="the prompt the image tool used (openai-chat)")
    context: Literal["chained", "fresh", "restarted"] | None = Field(
        default=None, description="openai-chat: continued the conversation that made the base version "
        "(chained), started one (fresh), or started a new one although there was history (restarted; "
        "message says why)")
    response_id: str | None = Field(default=None, description="the stored OpenAI response (owner only)")
    chain_depth: int | None = Field(default=None, description="chained responses up to this turn (1 = fresh)")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None


class ThreadOut(BaseModel):
    id: str
    title: str
    created_at: datetime
    updated_at: datetime
    head_version: int | None
    versions: list[VersionOut]
    turns: list[TurnOut]
    share_url: str | None = Field(default=None, description="owner only")
    forked_from: str | None = Field(default=None, description="owner only")


class ThreadSummary(BaseModel):
    id: str
    title: str
    created_at: datetime
    updated_at: datetime
    head_version: int | None
    thumbnail_url: str | None


class ThreadList(BaseModel):
    threads: list[ThreadSummary]


class BackendInfo(BaseModel):
    name: str = Field(description="send as a turn's backend")
    label: str
    conversational: bool = Field(description="keeps a conversation and may answer in words (openai-chat)")
    markup: bool = Field(description="takes drawings that guide an edit (per model too)")
    models: list[dict] = Field(description="as ModelList.models")


class ModelList(BaseModel):
    backend: str = Field(description="the server's backend (a turn's default)")
    models: list[dict] = Field(description="each: name, arbitrary_sizes, standard_sizes, qualities, "
                                           "backgrounds, markup, streaming; the default first")
    backends: list[BackendInfo] = Field(default_factory=list, description="every backend a turn may choose, "
                                        "the server's first")


class ShareOut(BaseModel):
    token: str
    url: str


class ErrorOut(BaseModel):
    """Every error response of the API."""

    detail: str = Field(description="what went wrong, as a sentence")


class CreateThreadJSON(BaseModel):
    prompt: str = Field(min_length=1, max_length=4000)
    title: str | None = Field(default=None, max_length=200)


class RevertIn(BaseModel):
    version: int = Field(ge=1, strict=True, description="a JSON integer (true or \"2\" is refused)")


class EditTurnIn(BaseModel):
    instruction: str = Field(min_length=1, max_length=4000, description="the edited instruction")


class RenameIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)


def utc(dt: datetime | None) -> datetime | None:
    """SQLite drops the zone: stored times are UTC, so say so."""
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def version_out(v: Version, urls: Urls) -> VersionOut:
    return VersionOut(number=v.number, parent=v.parent, width=v.width, height=v.height, sha256=v.sha256,
                      image_url=urls.image(v.number), thumbnail_url=urls.thumbnail(v.number),
                      turn_id=v.turn_id, created_at=utc(v.created_at))


def turn_out(t: Turn, *, owner: bool = True, urls: Urls | None = None, partials=None,
             prices: dict | None = None, version: Version | None | bool = False) -> TurnOut:
    """The Turn as JSON. ``partials`` (an ``app.partials.PartialFrames``)
    adds the running turn's newest partial image URL; ``prices`` (from
    ``RETOUCH_OPENAI_PRICES``) adds its cost for the owner. ``version`` is
    the turn's result version when the caller has it (None: it has none);
    by default it is read, for ``notes``."""
    frame = partials.get(t.id) if partials is not None and t.pending else None
    urls = urls or Urls.owned(t.thread_id)
    return TurnOut(
        id=t.id, thread_id=t.thread_id, kind=t.kind, instruction=t.instruction, status=t.status,
        message=t.message, error=t.error, base_version=t.base_version, pinned_base=bool(t.pinned_base),
        result_version=t.result_version, backend=t.backend, suggestions=t.suggestions or None, size=t.size, quality=t.quality, model=t.model, background=t.background,
        has_mask=t.mask_sha256 is not None, has_markup=t.markup_sha256 is not None,
        reference_count=len(t.reference_sha256s or []), usage=t.usage if owner else None, output=t.output,
        cost_usd=cost_of(t, prices or {}) if owner else None,
        notes=turn_notes(t, version),
        partial_image_url=urls.partial(t.id, frame.index) if frame else None,
        partial_image_index=frame.index if frame else None,
        reply=t.reply if t.reply is not None or not t.pending or partials is None else partials.text(t.id),
        revised_prompt=t.revised_prompt, context=t.context, response_id=t.response_id if owner else None,
        chain_depth=t.chain_depth,
        created_at=utc(t.created_at), started_at=utc(t.started_at), finished_at=utc(t.finished_at),
    )


def turn_notes(t: Turn, version: Version | None | bool = False) -> list[str]:
    """``app.option_notes.option_notes`` for ``t``: its result ``version``
    (read from the database when False) and its backend (no notes when that
    backend is no longer registered or cannot be built)."""
    from app.backends import get_backend
    from app.option_notes import option_notes
    from app.services import version_row

    if t.kind not in ("generate", "edit") or t.status not in ("succeeded", "answered"):
        return []
    try:
        backend = get_backend(t.backend or "local")
    except Exception:  # no longer registered, or cannot be built here: nothing to judge by
        return []
    if version is False:
        version = None
        session = object_session(t)
        if session is not None:
            version = version_row(session, t.thread_id, t.result_version)
    return option_notes(t, version, backend)


def thread_out(thread: Thread, *, base_url: str, share_token: str | None = None, partials=None,
               prices: dict | None = None) -> ThreadOut:
    """The Thread as JSON. With ``share_token`` it is the read-only view:
    image URLs go through the share link and owner-only fields are left out.
    ``base_url`` (ending in ``/``) makes the absolute ``share_url``."""
    urls = Urls.of(thread.id, share_token)
    owner = share_token is None
    live = thread.live_share if owner else None
    numbered = {v.number: v for v in thread.versions}
    return ThreadOut(
        id=thread.id, title=thread.title, created_at=utc(thread.created_at), updated_at=utc(thread.updated_at),
        head_version=thread.head_version,
        versions=[version_out(v, urls) for v in thread.versions],
        turns=[turn_out(t, owner=owner, urls=urls, partials=partials, prices=prices,
                        version=numbered.get(t.result_version)) for t in thread.turns],
        share_url=share_link(base_url, live.token) if live else None,
        forked_from=thread.forked_from if owner else None,
    )


def thread_summary(thread: Thread) -> ThreadSummary:
    urls = Urls.owned(thread.id)
    return ThreadSummary(id=thread.id, title=thread.title, created_at=utc(thread.created_at),
                         updated_at=utc(thread.updated_at), head_version=thread.head_version,
                         thumbnail_url=urls.thumbnail(thread.head_version) if thread.head_version else None)
