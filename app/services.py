"""The service layer: every change to threads, turns, versions and share
links goes through these functions. The JSON API (``app/api.py``) and the
HTML pages (``app/pages.py``) both call them, so they cannot drift.

Functions take a SQLAlchemy session and the caller's owner id. They raise
:class:`NotFound` (answer 404) for threads the caller does not own or that do
not exist, and :class:`InvalidInput` (a 4xx with a readable message) for bad
input. Bad input is rejected before anything is written.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from PIL import Image
from sqlalchemy import bindparam, delete, func, select, text
from sqlalchemy.orm import Session

from app.backends import OptionRejected, UnknownBackend, get_backend, offered_backends
from app.imaging import (
    ImageRejected,
    decode_image,
    decode_markup,
    decode_mask,
    encode_png,
    encode_thumbnail,
)
from app import turns
from app.models import PENDING_STATUSES, ShareLink, Thread, Turn, Version, new_id, utcnow
from app.storage import BlobStore

MAX_INSTRUCTION_CHARS = 4000
MAX_TITLE_CHARS = 200
MAX_REFERENCES = 4
QUALITIES = ("low", "medium", "high", "xhigh", "max", "auto")
BACKGROUNDS = ("auto", "opaque", "transparent")


class NotFound(Exception):
    """The thing does not exist, or the caller may not see it (RFC 9110
    §15.5.5: 404 does not reveal which)."""

    def __init__(self, message: str = "Not found.") -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(Exception):
    """Input that cannot be accepted; ``status`` is the HTTP status code."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Upload:
    """A file as received: its name (may be empty) and bytes."""

    filename: str
    data: bytes


@dataclass
class TurnOptions:
    """Optional turn parameters: ``size`` ``"WIDTHxHEIGHT"`` in pixels (or
    ``"auto"``; None or ``"match"`` = the image's shape for edits),
    ``quality`` (low/medium/high/xhigh/max/auto), ``model`` (one the backend
    offers; None = its default), ``background`` (auto/opaque/transparent),
    reference images, a ``mask`` or a ``markup`` (not both), and the
    ``backend`` to run it (one of :func:`app.backends.offered_backends`;
    None = the server's)."""

    size: str | None = None
    quality: str | None = None
    references: list[Upload] = field(default_factory=list)
    mask: Upload | None = None
    model: str | None = None
    background: str | None = None
    markup: Upload | None = None
    backend: str | None = None


def choose_backend(chosen: str | None, default: str) -> str:
    """The backend a turn runs on: ``chosen`` when it is one the composer
    offers here (:func:`app.backends.offered_backends`), ``default`` when
    none was chosen. Raises InvalidInput (422) naming the offered ones."""
    chosen = (chosen or "").strip()
    if not chosen:
        return default
    offered = offered_backends(default)
    if chosen not in offered:
        raise InvalidInput(f"The backend {chosen!r} is not offered here; choose one of: {', '.join(offered)}.")
    return chosen


@dataclass
class Limits:
    """Limits from the settings: upload file size in bytes, image area in
    pixels and the longest side in pixels; turns one owner may have queued
    or running (0 = no cap); bytes of stored images per owner (0 = no quota)."""

    max_bytes: int
    max_pixels: int
    max_side: int
    max_queued_turns: int = 0
    quota_bytes: int = 0


# ---------------------------------------------------------------- reading


#: Statements of the hottest reads (every page, every image GET), built once with bound
#: parameters: building a SELECT and its cache key costs SQLAlchemy about as much as running it on
#: SQLite (measured: a head version 0.19 -> 0.11 ms, the sidebar's threads 0.22 -> 0.12 ms).
_OWNER_THREADS = (select(Thread).where(Thread.owner_id == bindparam("owner_id"), Thread.deleted_at.is_(None))
                  .order_by(Thread.updated_at.desc(), Thread.created_at.desc()))
_THREAD_BY_ID = select(Thread).where(Thread.id == bindparam("thread_id"))  # 0.18 -> 0.11 ms against Session.get
_VERSION_BY_NUMBER = select(Version).where(Version.thread_id == bindparam("thread_id"),
                                           Version.number == bindparam("number"))


def list_threads(session: Session, owner_id: str) -> list[Thread]:
    """The owner's threads, most recently updated first, in one query and
    without their versions or turns: the sidebar and ``GET /threads`` need
    only the title, the dates and the head version's number (its thumbnail
    URL is built from it). Touching ``versions`` or ``turns`` on the result
    would load them one thread at a time; nothing that lists threads does."""
    return list(session.scalars(_OWNER_THREADS, {"owner_id": owner_id}))


def get_thread(session: Session, owner_id: str, thread_id: str) -> Thread:
    """The thread ``thread_id`` if ``owner_id`` owns it, with its turns and
    versions loaded; raises NotFound."""
    return _load_in_order(thread_row(session, owner_id, thread_id))


def thread_row(session: Session, owner_id: str, thread_id: str) -> Thread:
    """The thread ``thread_id`` if ``owner_id`` owns it, without loading its
    turns or versions (one primary-key query, also when the session holds
    the row already); raises NotFound."""
    thread = session.scalar(_THREAD_BY_ID, {"thread_id": thread_id})
    if thread is None or not secrets.compare_digest(thread.owner_id, owner_id) or thread.deleted_at is not None:
        raise NotFound("There is no such thread.")
    return thread


#: The largest version number a query may name (a 32-bit signed integer column).
MAX_VERSION_NUMBER = 2**31 - 1


def version_row(session: Session, thread_id: str, number: int | None) -> Version | None:
    """Version ``number`` of thread ``thread_id``, in one indexed query
    (``versions`` is unique on (thread_id, number)), without loading the
    thread's other versions or turns; None when there is none (or
    ``number`` is None)."""
    if number is None or not 1 <= number <= MAX_VERSION_NUMBER:  # a larger number overflows the column's type
        return None
    return session.scalar(_VERSION_BY_NUMBER, {"thread_id": thread_id, "number": number})


def find_version(session: Session, thread: Thread, number: int) -> Version:
    """Version ``number`` of ``thread`` (:func:`version_row`): what image
    GETs need. Raises NotFound."""
    version = version_row(session, thread.id, number)
    if version is None:
        raise NotFound(f"Version {number} does not exist in this thread.")
    return version


@dataclass(frozen=True)
class VersionBlob:
    """What an image GET needs of a version: its thread's title (the
    download's file name) and the stored blob's sha256 (``None``: the
    thread has no such version)."""

    title: str
    sha256: str | None


def _version_blob_statements():
    """The two statements of :func:`version_blob`, built once: building a
    SELECT and its cache key costs SQLAlchemy more than running it on SQLite
    (0.25 against 0.06 ms a lookup, measured), so the values are bound
    parameters (``number``, ``thread_id``, ``token``)."""
    threads, versions, links = Thread.__table__, Version.__table__, ShareLink.__table__
    on = (versions.c.thread_id == threads.c.id) & (versions.c.number == bindparam("number"))
    cols = select(threads.c.title, threads.c.owner_id, versions.c.sha256).select_from(
        threads.outerjoin(versions, on))
    by_owner = cols.where(threads.c.id == bindparam("thread_id"), threads.c.deleted_at.is_(None))
    by_link = cols.join(links, links.c.thread_id == threads.c.id).where(
        links.c.token == bindparam("token"), links.c.revoked_at.is_(None), threads.c.deleted_at.is_(None))
    return by_owner, by_link


_BLOB_BY_OWNER, _BLOB_BY_LINK = _version_blob_statements()


def version_blob(session: Session, number: int, *, owner_id: str | None = None, thread_id: str | None = None,
                 token: str | None = None) -> VersionBlob:
    """Version ``number``'s blob, found with its thread in one indexed Core
    query (no ORM objects): by ``owner_id`` and ``thread_id``, or through
    the live share link ``token``. The same rules as :func:`thread_row` and
    :func:`get_shared_row` (owner compared in constant time, deleted
    threads and revoked links are not found). Raises NotFound with their
    messages when the thread is not visible; returns ``sha256=None`` when it
    is but has no version ``number``."""
    in_range = 1 <= number <= MAX_VERSION_NUMBER
    params = {"number": number if in_range else 0}  # a larger number overflows the column's type
    if token is not None:
        row = session.connection().execute(_BLOB_BY_LINK, {**params, "token": token}).first()
    else:
        row = session.connection().execute(_BLOB_BY_OWNER, {**params, "thread_id": thread_id}).first() \
            if thread_id else None
    if token is not None and row is None:
        raise NotFound("This share link does not exist or was revoked.")
    if token is None and (row is None or not secrets.compare_digest(row.owner_id, owner_id or "")):
        raise NotFound("There is no such thread.")
    return VersionBlob(row.title, row.sha256 if in_range else None)


def find_attachment(session: Session, thread: Thread, turn_id: str, name: str) -> str:
    """The sha256 of attachment ``name`` of turn ``turn_id`` of ``thread``,
    found by one indexed query (see :func:`get_attachment` for the names).
    Raises NotFound."""
    turn = session.scalar(select(Turn).where(Turn.id == turn_id, Turn.thread_id == thread.id))
    return _attachment_of(turn, name)


def _load_in_order(thread: Thread) -> Thread:
    """Load the thread's turns, then its versions. Each SELECT sees the
    latest commit (SQLite's driver does not hold a read transaction across
    SELECTs; PostgreSQL reads committed), and a turn ends in the same
    commit that adds its version: read in this order, a turn shown as
    succeeded always finds its version."""
    _ = thread.turns, thread.versions
    return thread


def get_turn(session: Session, owner_id: str, turn_id: str) -> Turn:
    """The turn ``turn_id`` if ``owner_id`` owns its thread; raises NotFound."""
    turn = session.scalar(select(Turn).where(Turn.id == turn_id))
    if turn is None or not secrets.compare_digest(turn.thread.owner_id, owner_id) or turn.thread.deleted_at is not None:
        raise NotFound("There is no such turn.")
    return turn


def get_shared_thread(session: Session, token: str) -> Thread:
    """The thread behind a live share link, with its turns and versions
    loaded; raises NotFound for an unknown or revoked token."""
    return _load_in_order(get_shared_row(session, token))


def get_shared_row(session: Session, token: str) -> Thread:
    """The thread behind a live share link, nothing else loaded; raises NotFound."""
    link = session.get(ShareLink, token) if token else None
    if link is None or link.revoked_at is not None or link.thread.deleted_at is not None:
        raise NotFound("This share link does not exist or was revoked.")
    return link.thread


def get_attachment(thread: Thread, turn_id: str, name: str) -> str:
    """The sha256 of a turn's attachment: ``name`` is ``"mask"``,
    ``"markup"`` or ``"reference-N"`` (N from 1). Raises NotFound."""
    return _attachment_of(next((t for t in thread.turns if t.id == turn_id), None), name)


def _attachment_of(turn: Turn | None, name: str) -> str:
    if turn is None:
        raise NotFound("This turn does not exist in this thread.")
    if name == "mask" and turn.mask_sha256:
        return turn.mask_sha256
    if name == "markup" and turn.markup_sha256:
        return turn.markup_sha256
    refs = turn.reference_sha256s or []
    if name.startswith("reference-") and name[10:].isdigit() and 1 <= int(name[10:]) <= len(refs):
        return refs[int(name[10:]) - 1]
    raise NotFound(f"This turn has no attachment {name!r}.")


def get_version(thread: Thread, number: int) -> Version:
    """Version ``number`` of ``thread``; raises NotFound."""
    version = thread.version(number)
    if version is None:
        raise NotFound(f"Version {number} does not exist in this thread.")
    return version


# ---------------------------------------------------------------- helpers


#: C0 control characters (except tab and newline), DEL, and lone UTF-16
#: surrogates: not text a person typed. PostgreSQL cannot store NUL in a text
#: column at all ("invalid byte sequence for encoding UTF8: 0x00").
_NOT_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


def check_text(text: str, what: str) -> str:
    """Return ``text`` unchanged, or raise InvalidInput (422) naming ``what``
    when it holds a character of :data:`_NOT_TEXT` (the first one's code
    point is given, e.g. U+0000)."""
    bad = _NOT_TEXT.search(text)
    if bad:
        raise InvalidInput(f"The {what} contains a control character (U+{ord(bad.group()):04X}); "
                           "remove it and try again.")
    return text


def clean_filename(name: str | None) -> str:
    """An uploaded file's name as stored (it names the upload turn and is
    the default title): control characters and surrogates removed, at most
    200 characters."""
    return _NOT_TEXT.sub("", name or "").strip()[:MAX_TITLE_CHARS]


def _clean_instruction(text: str | None, *, required: bool) -> str:
    # Browsers submit a textarea's line breaks as CRLF (HTML Living Standard,
    # "textarea wrapping transformation"); store plain "\n".
    text = check_text((text or "").replace("\r\n", "\n").replace("\r", "\n").strip(), "instruction")
    if not text:
        if required:
            raise InvalidInput("Write an instruction: what should change?")
        return ""
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise InvalidInput(
            f"The instruction is {len(text)} characters; the limit is {MAX_INSTRUCTION_CHARS}."
        )
    return text


def _clean_title(title: str | None, fallback: str) -> str:
    title = " ".join(check_text(title or "", "title").split())
    if not title:
        title = " ".join(fallback.split())
        if len(title) > 60:
            title = title[:59].rstrip() + "…"
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidInput(f"The title is {len(title)} characters; the limit is {MAX_TITLE_CHARS}.")
    return title or "Untitled"


def clean_options(size: str | None, quality: str | None,
                   background: str | None = None) -> tuple[str | None, str | None, str | None]:
    """Normalise the generic shape of the options (lower case); the backend
    checks what its model takes. Size ``"match"`` (or none) becomes None:
    edits keep the image's shape, generations use the backend's default;
    ``"auto"`` stays, so the API picks. Quality and background ``"auto"``
    become None. Returns (size, quality, background). Raises InvalidInput (422)."""
    size = (size or "").strip().lower() or None
    if size is not None and size not in ("auto", "match"):
        # ASCII digits only ("²".isdigit() is True), at most 5 each: the column holds 20 characters.
        if not _SIZE.fullmatch(size):
            raise InvalidInput("The size must look like 1024x768 (width x height in pixels), 'auto' or 'match'.")
        w, h = (int(p) for p in size.split("x"))
        if not (16 <= w <= 8192 and 16 <= h <= 8192):
            raise InvalidInput("Width and height must each be between 16 and 8192 pixels.")
    quality = (quality or "").strip().lower() or None
    if quality is not None and quality not in QUALITIES:
        raise InvalidInput(f"The quality must be one of: {', '.join(QUALITIES)}.")
    background = (background or "").strip().lower() or None
    if background is not None and background not in BACKGROUNDS:
        raise InvalidInput(f"The background must be one of: {', '.join(BACKGROUNDS)}.")
    return (None if size == "match" else size, None if quality == "auto" else quality,
            None if background == "auto" else background)


_SIZE = re.compile(r"[0-9]{1,5}x[0-9]{1,5}", re.ASCII)


def check_backend_options(backend: str, *, model: str | None, size: str | None, quality: str | None,
                          background: str | None, image_size: tuple[int, int] | None, has_mask: bool = False,
                          has_markup: bool = False, reference_count: int = 0) -> None:
    """Check the options against what ``backend`` and the chosen model take
    (for OpenAI, the catalogue in ``app/backends/openai_models.py``). A
    ``model`` must be one the backend offers. Raises InvalidInput (422)
    stating the rule."""
    try:
        impl = get_backend(backend)
    except UnknownBackend:
        return  # the worker fails the turn with a readable error
    if model:
        offered = [m["name"] for m in impl.offered_models()]
        if model not in offered:
            raise InvalidInput(f"The model {model!r} is not offered here; choose one of: "
                               f"{', '.join(offered) or 'none (this backend has no models to choose)'}.")
    try:
        impl.check_options(model=model, size=size, quality=quality,
                           background=background, image_size=image_size, has_mask=has_mask,
                           has_markup=has_markup, reference_count=reference_count)
    except OptionRejected as exc:
        raise InvalidInput(exc.message) from None


def _decode(upload: Upload, limits: Limits, what: str) -> Image.Image:
    # A reference only guides the edit: decode it at the working size
    # (app.imaging.REFERENCE_SIDE); the photo's pixels are kept, in full.
    from app.imaging import REFERENCE_SIDE

    working_side = REFERENCE_SIDE if what == "reference image" else None
    try:
        return decode_image(upload.data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels,
                            max_side=limits.max_side, what=what, working_side=working_side)
    except ImageRejected as exc:
        raise InvalidInput(exc.message, exc.status) from None


def store_image(store: BlobStore, image: Image.Image, *, thumbnail: bool = True) -> tuple[str, int, int]:
    """Encode ``image`` as PNG and store it (durably: the store writes and
    syncs before it returns), and, with ``thumbnail``, its WebP thumbnail.
    Returns (sha256 hex digest, width px, height px).

    The worker stores a turn's result with ``thumbnail=False`` and adds the
    thumbnail (:func:`store_thumbnail`) once the version is committed and
    visible: the thumbnail is not needed for durability, and a thumbnail
    asked for before it exists is made then (``app.previews.make_thumbnail``)."""
    sha = store.put(encode_png(image))
    if thumbnail:
        store_thumbnail(store, sha, image)
    return sha, image.width, image.height


def store_thumbnail(store: BlobStore, sha256: str, image: Image.Image) -> None:
    """Store the WebP thumbnail (at most 256x256 pixels) of blob ``sha256``,
    whose pixels are ``image``. Written once: an existing one is kept."""
    store.put_thumbnail(sha256, encode_thumbnail(image))


def add_version(session: Session, thread: Thread, *, sha256: str, width: int, height: int,
                parent: int | None, turn: Turn) -> Version:
    """Append a version to ``thread`` (numbered after the last one, found
    by one indexed query rather than by loading every version), make it the
    head and point ``turn`` at it. The caller commits."""
    last = session.scalar(select(func.max(Version.number)).where(Version.thread_id == thread.id))
    number = (last or 0) + 1
    version = Version(thread_id=thread.id, number=number, parent=parent, sha256=sha256,
                      width=width, height=height, turn_id=turn.id, created_at=utcnow())
    session.add(version)
    thread.head_version = number
    thread.updated_at = utcnow()
    turn.result_version = number
    return version


def pending_turns(session: Session, owner_id: str) -> int:
    """How many of the owner's turns are queued or running."""
    return session.scalar(select(func.count(Turn.pk)).join(Thread).where(
        Thread.owner_id == owner_id, Turn.status.in_(PENDING_STATUSES))) or 0


def stored_bytes(session: Session, store: BlobStore, owner_id: str) -> int:
    """Bytes of the stored PNGs the owner's threads use: versions, masks,
    drawings and references, each distinct image once (forks share files).
    Thumbnails are not counted."""
    shas: set[str] = set(session.scalars(select(Version.sha256).join(Thread).where(Thread.owner_id == owner_id)))
    rows = session.execute(select(Turn.mask_sha256, Turn.markup_sha256, Turn.reference_sha256s).join(Thread)
                           .where(Thread.owner_id == owner_id))
    for mask, markup, refs in rows:
        shas.update(x for x in (mask, markup, *(refs or [])) if isinstance(x, str))
    total = 0
    for sha in shas:
        try:
            total += store.size(sha)
        except OSError:
            pass
    return total


def check_owner_limits(session: Session, store: BlobStore, owner_id: str, limits: Limits | None, *,
                       queues_turn: bool, stores_images: bool) -> None:
    """Refuse, before anything is stored, a request past the owner's limits:
    429 when ``queues_turn`` and the owner already has
    ``limits.max_queued_turns`` turns waiting or running (RFC 6585 §4);
    507 Insufficient Storage (RFC 4918 §11.5) when ``stores_images`` or
    ``queues_turn`` (a result will be stored) and the owner's stored images
    have reached ``limits.quota_bytes``."""
    if limits is None:
        return
    if queues_turn and limits.max_queued_turns > 0:
        waiting = pending_turns(session, owner_id)
        if waiting >= limits.max_queued_turns:
            raise InvalidInput(f"You already have {waiting} turns waiting or running (the limit is "
                               f"{limits.max_queued_turns}). Wait for some to finish, then send this again.", 429)
    if (queues_turn or stores_images) and limits.quota_bytes > 0:
        used = stored_bytes(session, store, owner_id)
        if used >= limits.quota_bytes:
            raise InvalidInput(f"Your images use {used / 1e6:.1f} MB of the {limits.quota_bytes / 1e6:.1f} MB "
                               "this server allows each person, so nothing new can be stored.", 507)


# ---------------------------------------------------------------- writing


def create_thread(
    session: Session,
    store: BlobStore,
    owner_id: str,
    *,
    prompt: str | None,
    image: Upload | None,
    title: str | None,
    backend: str,
    limits: Limits,
) -> Thread:
    """Start a thread from a prompt, a photo, or both.

    - photo only: the photo (decoded, upright, EXIF removed) becomes version 1
      through an ``upload`` turn;
    - prompt only: a queued ``generate`` turn;
    - both: version 1 from the photo, then a queued ``edit`` turn.

    Raises InvalidInput (422 when neither is given; 413/415/422 for a bad
    photo) before anything is stored.
    """
    prompt = _clean_instruction(prompt, required=False)
    if not prompt and image is None:
        raise InvalidInput("Describe an image to create, upload a photo, or both.")
    check_owner_limits(session, store, owner_id, limits, queues_turn=bool(prompt), stores_images=image is not None)
    decoded = _decode(image, limits, "photo") if image is not None else None
    if prompt:
        check_backend_options(backend, model=None, size=None, quality=None, background=None,
                              image_size=decoded.size if decoded is not None else None)
    filename = clean_filename(image.filename) if image else ""
    title = _clean_title(title, prompt or filename.rsplit(".", 1)[0])

    stored = store_image(store, decoded) if decoded is not None else None
    now = utcnow()
    thread = Thread(id=new_id(), owner_id=owner_id, title=title, created_at=now, updated_at=now)
    session.add(thread)
    if stored is not None:
        sha, w, h = stored
        upload_turn = Turn(id=new_id(), thread=thread, kind="upload", status="succeeded",
                           instruction=filename, created_at=now, finished_at=now)
        session.add(upload_turn)
        add_version(session, thread, sha256=sha, width=w, height=h, parent=None, turn=upload_turn)
    if prompt:
        turns.queue(session, Turn(id=new_id(), thread=thread, instruction=prompt, backend=backend,
                                  created_at=utcnow()))
    session.commit()
    return thread


def submit_turn(
    session: Session,
    store: BlobStore,
    owner_id: str,
    thread_id: str,
    *,
    instruction: str,
    options: TurnOptions,
    backend: str,
    limits: Limits,
) -> Turn:
    """Queue an edit of the thread's head (or a generation when the thread
    has no image yet).

    The mask must be a PNG the size of the current head image (white, or
    alpha 0, marks the region to edit). At most 4 reference images. Returns
    the queued Turn; its base version is fixed when a worker starts it.

    Raises NotFound, or InvalidInput before anything is stored.
    """
    thread = get_thread(session, owner_id, thread_id)
    instruction = _clean_instruction(instruction, required=True)
    check_owner_limits(session, store, owner_id, limits, queues_turn=True, stores_images=True)
    size, quality, background = clean_options(options.size, options.quality, options.background)
    model = (options.model or "").strip() or None
    backend = choose_backend(options.backend, backend)
    if len(options.references) > MAX_REFERENCES:
        raise InvalidInput(f"Attach at most {MAX_REFERENCES} reference images.")
    if options.mask is not None and options.markup is not None:
        raise InvalidInput("Send either a selected region (mask) or a drawing (markup), not both: "
                           "a drawing guides the edit, a region limits it.")
    head = thread.head
    check_backend_options(backend, model=model, size=size, quality=quality, background=background,
                          image_size=(head.width, head.height) if head else None,
                          has_mask=options.mask is not None, has_markup=options.markup is not None,
                          reference_count=len(options.references))
    refs = [_decode(r, limits, "reference image") for r in options.references]
    mask = markup = None
    if options.mask is not None or options.markup is not None:
        if head is None:
            raise InvalidInput("There is no image to select a region of or draw on yet.")
        upload, decode = (options.mask, decode_mask) if options.mask is not None else (options.markup, decode_markup)
        try:
            decoded = decode(upload.data, (head.width, head.height), max_bytes=limits.max_bytes,
                             max_pixels=limits.max_pixels, max_side=limits.max_side)
        except ImageRejected as exc:
            raise InvalidInput(exc.message, exc.status) from None
        if options.mask is not None:
            mask = decoded
        else:
            markup = decoded

    # Stored with thumbnails, so the conversation can show them small.
    mask_sha = store_image(store, mask)[0] if mask is not None else None
    markup_sha = store_image(store, markup)[0] if markup is not None else None
    ref_shas = [store_image(store, r)[0] for r in refs]
    turn = turns.queue(session, Turn(
        id=new_id(), thread=thread, instruction=instruction, backend=backend, size=size, quality=quality,
        model=model, background=background, mask_sha256=mask_sha, markup_sha256=markup_sha,
        reference_sha256s=ref_shas, created_at=utcnow(),
    ))
    if model:
        thread.model = model
    thread.backend = backend
    thread.updated_at = utcnow()
    session.commit()
    return turn


def retry_turn(session: Session, owner_id: str, turn_id: str, *, backend: str,
               store: BlobStore | None = None, limits: Limits | None = None) -> Turn:
    """Queue a new turn with the same instruction, mask, references and
    options as a declined, failed or stopped (cancelled) turn, from the head. Raises NotFound, InvalidInput
    (409) when the turn has not ended in failure, or (429/507) past the
    owner's ``limits`` (see :func:`check_owner_limits`)."""
    old = get_turn(session, owner_id, turn_id)
    if old.status not in (turns.TurnStatus.FAILED, turns.TurnStatus.DECLINED, turns.TurnStatus.CANCELLED) \
            or old.kind not in turns.IMAGE_KINDS:
        raise InvalidInput("Only a failed, declined or stopped turn can be tried again.", 409)
    if store is not None:
        check_owner_limits(session, store, owner_id, limits, queues_turn=True, stores_images=False)
    thread = old.thread
    if old.backend and old.backend in offered_backends(backend):
        backend = old.backend  # try again where it ran, while that backend is still offered
    turn = turns.queue(session, Turn(
        id=new_id(), thread=thread, instruction=old.instruction, backend=backend, size=old.size,
        quality=old.quality, model=old.model, background=old.background, mask_sha256=old.mask_sha256,
        markup_sha256=old.markup_sha256,
        reference_sha256s=list(old.reference_sha256s or []), created_at=utcnow(),
    ))
    thread.updated_at = utcnow()
    session.commit()
    return turn


# ---------------------------------------------------------------- turn actions


def _thread_turn(session: Session, owner_id: str, thread_id: str, turn_id: str) -> Turn:
    """Turn ``turn_id`` of thread ``thread_id`` owned by ``owner_id``; raises NotFound."""
    thread = thread_row(session, owner_id, thread_id)
    turn = session.scalar(select(Turn).where(Turn.id == turn_id, Turn.thread_id == thread.id))
    if turn is None:
        raise NotFound("There is no such turn in this thread.")
    return turn


def stop_message(turn: Turn, was_running: bool) -> str:
    """What a stopped turn says after "Stopped.": whether it had started,
    and, for a turn stopped while it ran on a paid backend
    (``ImageBackend.paid``: OpenAI), that the service may still bill the
    work it had begun (a request already sent cannot be recalled)."""
    if not was_running:
        return "It had not started, so nothing was sent."
    text = "The result is discarded; no version was made."
    try:
        paid = get_backend(turn.backend or "").paid
    except UnknownBackend:
        paid = False
    if paid:
        text += " The paid image service had already received the request and may still bill it."
    return text


def cancel_turn(session: Session, owner_id: str, thread_id: str, turn_id: str) -> Turn:
    """Stop turn ``turn_id`` of thread ``thread_id``: a queued turn is
    cancelled before it starts, a running one is stopped and its result
    discarded (:func:`app.turns.cancel`; no version is made). Returns the
    turn, now ``cancelled``. Raises NotFound, or InvalidInput 409 Conflict
    (RFC 9110 §15.5.10) when the turn has already ended."""
    turn = _thread_turn(session, owner_id, thread_id, turn_id)
    if turn.kind not in turns.IMAGE_KINDS or not turn.pending:
        raise InvalidInput("This turn has already ended, so there is nothing to stop.", 409)
    was_running = turn.status == turns.TurnStatus.RUNNING
    if not turns.cancel(session, turn, stop_message(turn, was_running)):
        raise InvalidInput("This turn has already ended, so there is nothing to stop.", 409)
    return turn


def _base_of(old: Turn) -> tuple[bool, int | None]:
    """(pinned, base version) for a new turn that starts where ``old``
    started: the base ``old`` was queued or claimed with, or, for a turn
    that never started (cancelled while queued), the head at claim time."""
    if old.pinned_base or old.started_at is not None:
        return True, old.base_version
    return False, None


def regenerate_turn(session: Session, owner_id: str, thread_id: str, turn_id: str, *, backend: str,
                    store: BlobStore | None = None, limits: Limits | None = None) -> Turn:
    """Run turn ``turn_id``'s instruction, options, mask, drawing and
    references again on the same base version, as a new queued turn whose
    version becomes a sibling of the original's (its parent is that base,
    not the head). Only for an image turn that has ended with an image or an
    answer (``succeeded``, ``answered``), on a backend that is not
    ``deterministic`` (the same request would give the same image). Runs on
    the original's backend while it is offered, else on ``backend``.
    Raises NotFound, InvalidInput 409 Conflict (RFC 9110 §15.5.10: the
    turn's state rules it out, as for retry) or 429/507 past the owner's
    ``limits``."""
    old = _thread_turn(session, owner_id, thread_id, turn_id)
    if old.kind not in turns.IMAGE_KINDS or old.status not in (turns.TurnStatus.SUCCEEDED, turns.TurnStatus.ANSWERED):
        raise InvalidInput("Only a turn that made an image (or answered) can be regenerated.", 409)
    if old.backend and old.backend in offered_backends(backend):
        backend = old.backend
    try:
        if get_backend(backend).deterministic:
            raise InvalidInput("This editor gives the same result for the same instruction every time, "
                               "so regenerating would only repeat it. Edit the instruction instead.", 409)
    except UnknownBackend:
        pass
    if store is not None:
        check_owner_limits(session, store, owner_id, limits, queues_turn=True, stores_images=False)
    return _queue_like(session, old, instruction=old.instruction, backend=backend)


def edit_turn(session: Session, owner_id: str, thread_id: str, turn_id: str, instruction: str, *,
              backend: str, store: BlobStore | None = None, limits: Limits | None = None) -> Turn:
    """Send an edited ``instruction`` in place of turn ``turn_id``'s: a new
    queued turn with the original's options, mask, drawing and references,
    from the same base version (its version becomes a sibling of the
    original's; a turn that never started starts from the head). The
    original stays as it is. Raises NotFound, InvalidInput 422 for an empty,
    too long or control-character instruction, 409 for a turn that is not an
    instruction (an upload or revert), or 429/507 past ``limits``."""
    old = _thread_turn(session, owner_id, thread_id, turn_id)
    if old.kind not in turns.IMAGE_KINDS:
        raise InvalidInput("Only an instruction can be edited and sent again.", 409)
    instruction = _clean_instruction(instruction, required=True)
    if store is not None:
        check_owner_limits(session, store, owner_id, limits, queues_turn=True, stores_images=False)
    if old.backend and old.backend in offered_backends(backend):
        backend = old.backend
    return _queue_like(session, old, instruction=instruction, backend=backend)


def _queue_like(session: Session, old: Turn, *, instruction: str, backend: str) -> Turn:
    """Queue a copy of ``old`` (options and attachments) with
    ``instruction`` on ``backend``, starting from ``old``'s base
    (:func:`_base_of`). Commits. Returns the new turn."""
    pinned, base = _base_of(old)
    thread = old.thread
    turn = turns.queue(session, Turn(
        id=new_id(), thread=thread, instruction=instruction, backend=backend, size=old.size,
        quality=old.quality, model=old.model, background=old.background, mask_sha256=old.mask_sha256,
        markup_sha256=old.markup_sha256, reference_sha256s=list(old.reference_sha256s or []),
        pinned_base=pinned, base_version=base if pinned else None, created_at=utcnow(),
    ))
    thread.updated_at = utcnow()
    session.commit()
    return turn


def revert(session: Session, owner_id: str, thread_id: str, number: int) -> Thread:
    """Move the thread's head to version ``number`` and record a ``revert``
    turn. Nothing is deleted; the next edit branches from that version.

    A turn that is already running keeps the base it started from and, when
    it finishes, its result becomes the head (its parent is that base).
    Turns still queued start from the reverted head.

    Raises NotFound, or InvalidInput (422) for a version that does not exist.
    """
    thread = get_thread(session, owner_id, thread_id)
    if thread.version(number) is None:
        raise InvalidInput(f"Version {number} does not exist in this thread.")
    now = utcnow()
    session.add(Turn(id=new_id(), thread=thread, kind="revert", status="succeeded",
                     instruction=f"Revert to version {number}", base_version=thread.head_version,
                     result_version=number, created_at=now, started_at=now, finished_at=now))
    thread.head_version = number
    thread.updated_at = now
    session.commit()
    return thread


def rename(session: Session, owner_id: str, thread_id: str, title: str) -> Thread:
    """Set the thread's title (1 to 200 characters). Raises NotFound or InvalidInput."""
    thread = get_thread(session, owner_id, thread_id)
    if not " ".join((title or "").split()):
        raise InvalidInput("The title cannot be empty.")
    thread.title = _clean_title(title, "")
    thread.updated_at = utcnow()
    session.commit()
    return thread


def set_c2pa_instructions(session: Session, owner_id: str, thread_id: str, enabled: bool) -> Thread:
    """Whether the C2PA manifests of the thread's downloads carry its
    instructions (``app/provenance.py``; off by default, for privacy).
    Raises NotFound."""
    thread = get_thread(session, owner_id, thread_id)
    thread.c2pa_instructions = bool(enabled)
    session.commit()
    return thread


def share(session: Session, owner_id: str, thread_id: str) -> ShareLink:
    """The thread's live share link, created if there is none. The token is
    ``secrets.token_urlsafe(24)``: 192 random bits. Raises NotFound."""
    thread = get_thread(session, owner_id, thread_id)
    link = thread.live_share
    if link is None:
        link = ShareLink(token=secrets.token_urlsafe(24), thread=thread, created_at=utcnow())
        session.add(link)
        session.commit()
    return link


def revoke_share(session: Session, owner_id: str, thread_id: str) -> None:
    """Revoke the thread's live share links (after which they answer 404).
    Idempotent. Raises NotFound."""
    thread = get_thread(session, owner_id, thread_id)
    now = utcnow()
    for link in thread.share_links:
        if link.revoked_at is None:
            link.revoked_at = now
    session.commit()


def fork(session: Session, owner_id: str, token: str) -> Thread:
    """Copy a shared thread into a new thread owned by ``owner_id``: the same
    versions (sharing the stored image bytes), head and finished turns.
    Turns still queued or running are not copied. Raises NotFound."""
    source = get_shared_thread(session, token)
    now = utcnow()
    thread = Thread(id=new_id(), owner_id=owner_id, title=source.title, head_version=source.head_version,
                    forked_from=source.id, created_at=now, updated_at=now)
    session.add(thread)
    turn_ids: dict[str, str] = {}
    for t in source.turns:
        if t.pending:
            continue
        turn_ids[t.id] = new_id()
        session.add(Turn(
            id=turn_ids[t.id], thread=thread, kind=t.kind, instruction=t.instruction, status=t.status,
            message=t.message, error=t.error, base_version=t.base_version, result_version=t.result_version,
            backend=t.backend, size=t.size, quality=t.quality, model=t.model, background=t.background,
            mask_sha256=t.mask_sha256, markup_sha256=t.markup_sha256,
            reference_sha256s=list(t.reference_sha256s or []), usage=t.usage, output=t.output,
            suggestions=t.suggestions, pinned_base=bool(t.pinned_base), attempts=t.attempts, reply=t.reply, revised_prompt=t.revised_prompt, context=t.context,
            # Never the response id: the fork's owner must not continue someone else's stored conversation.
            created_at=t.created_at, started_at=t.started_at, finished_at=t.finished_at,
        ))
    for v in source.versions:
        session.add(Version(thread=thread, number=v.number, parent=v.parent, sha256=v.sha256,
                            width=v.width, height=v.height, turn_id=turn_ids.get(v.turn_id or ""),
                            created_at=v.created_at))
    session.commit()
    return thread


# ---------------------------------------------------------------- thread management: delete, search, list


#: What a pending turn of a deleted thread ends with.
STOPPED_BY_DELETE = "Stopped: the thread was deleted before this turn finished."


def _aware(moment: datetime) -> datetime:
    """``moment`` with a time zone: SQLite hands back naive datetimes; they are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def delete_thread(session: Session, owner_id: str, thread_id: str) -> Thread:
    """Delete the thread (soft): set ``deleted_at``, after which it is left
    out of every list and answers 404 to its pages, its API, its images and
    its share link, at once. Then its turns still queued or running are
    stopped (:func:`app.turns.cancel`, status ``cancelled`` with the message
    :data:`STOPPED_BY_DELETE`): a worker that finishes one afterwards finds
    the turn no longer held under its claim and drops the result
    (``app.turns._end``), so no version is added. The rows stay for
    :func:`restore_thread` until :func:`purge_deleted_threads` removes them.
    Returns the thread. Raises NotFound (also for a thread already deleted)."""
    thread = thread_row(session, owner_id, thread_id)
    thread.deleted_at = utcnow()
    session.commit()  # gone everywhere from here on; no new turn can be queued on it
    # Newest first: each cancel commits, and a queued turn left for later could be claimed (and
    # stopped with another message) the moment the running turn before it is cancelled.
    pending = list(session.scalars(select(Turn).where(Turn.thread_id == thread.id,
                                                      Turn.status.in_(PENDING_STATUSES)).order_by(Turn.pk.desc())))
    for turn in pending:
        turns.cancel(session, turn, STOPPED_BY_DELETE)  # a turn that ended meanwhile is left as it ended
    return thread


def restore_thread(session: Session, owner_id: str, thread_id: str, undo_seconds: float) -> Thread:
    """Bring back a thread deleted less than ``undo_seconds`` seconds ago
    (``RETOUCH_DELETE_UNDO_SECONDS``): it reappears as it was, except that
    turns that were pending are stopped (see :func:`delete_thread`).
    A thread that is not deleted is returned as is (restoring is
    idempotent). Raises NotFound for a thread that does not exist, is not
    the caller's, or was deleted longer ago than the window (even when not
    yet purged: the window is the promise)."""
    thread = session.get(Thread, thread_id)
    if thread is None or not secrets.compare_digest(thread.owner_id, owner_id):
        raise NotFound("There is no such thread.")
    if thread.deleted_at is None:
        return thread
    if (utcnow() - _aware(thread.deleted_at)).total_seconds() > undo_seconds:
        raise NotFound("This thread was deleted too long ago to be brought back.")
    thread.deleted_at = None
    session.commit()
    return thread


@dataclass
class PurgeResult:
    """What :func:`purge_deleted_threads` removed: the thread ids, and how
    many stored OpenAI responses were deleted at OpenAI (of how many asked)."""

    thread_ids: list[str] = field(default_factory=list)
    responses_deleted: int = 0
    responses_asked: int = 0


def purge_deleted_threads(session: Session, older_than_seconds: float, *, now: datetime | None = None,
                          batch: int = 200, delete_responses: bool = True) -> PurgeResult:
    """Remove for good the threads deleted more than ``older_than_seconds``
    seconds before ``now`` (default: the current time), with their turns,
    versions and share links, ``batch`` threads per transaction. Their image
    files are left to ``retouch gc`` (``app/gc.py``), which removes those no
    other thread or fork uses once they are older than its grace period.

    Then, with ``delete_responses``, the stored OpenAI responses of their
    ``openai-chat`` turns (``turns.response_id``; OpenAI keeps stored
    responses at least 30 days otherwise) are deleted through
    :meth:`app.backends.openai_chat.OpenAIChatBackend.delete_responses`:
    best effort, after the commit, every failure logged and none raised.
    Returns a :class:`PurgeResult`."""
    import logging

    log = logging.getLogger(__name__)
    cutoff = (now or utcnow()) - timedelta(seconds=max(0.0, older_than_seconds))
    result = PurgeResult()
    response_ids: list[str] = []
    while True:
        ids = list(session.scalars(select(Thread.id).where(Thread.deleted_at.is_not(None),
                                                           Thread.deleted_at < cutoff).limit(batch)))
        if not ids:
            break
        response_ids += [r for r in session.scalars(
            select(Turn.response_id).where(Turn.thread_id.in_(ids), Turn.response_id.is_not(None),
                                           Turn.backend == "openai-chat")) if r]
        # Children first (the FTS triggers on turns run per row); then the threads.
        for model in (ShareLink, Version, Turn):
            session.execute(delete(model).where(model.thread_id.in_(ids)).execution_options(synchronize_session=False))
        session.execute(delete(Thread).where(Thread.id.in_(ids)).execution_options(synchronize_session=False))
        session.commit()
        result.thread_ids += ids
        if len(ids) < batch:
            break
    if result.thread_ids:
        log.info("purged %d deleted threads", len(result.thread_ids))
    if response_ids and delete_responses:
        result.responses_asked = len(response_ids)
        try:
            result.responses_deleted = get_backend("openai-chat").delete_responses(response_ids)
        except Exception as exc:  # noqa: BLE001 - best effort: no key, no SDK, a network fault
            log.warning("could not delete %d stored OpenAI responses of purged threads: %s",
                        len(response_ids), type(exc).__name__)
    return result


#: At most this many words of a search are used, each at most this many characters.
MAX_SEARCH_WORDS = 8
MAX_SEARCH_WORD_CHARS = 64
_WORD = re.compile(r"[^\W_]+")


def search_words(query: str | None) -> list[str]:
    """The words of a search: runs of letters and digits (Python's ``\\w``
    without ``_``), lower-cased, at most :data:`MAX_SEARCH_WORDS` of at most
    :data:`MAX_SEARCH_WORD_CHARS` characters. Everything else (quotes, ``*``,
    ``-``, parentheses, ``:``, NUL, surrogates) is a separator, so no user
    character ever reaches the FTS5 or tsquery syntax as an operator."""
    return [w[:MAX_SEARCH_WORD_CHARS].lower() for w in _WORD.findall(query or "")][:MAX_SEARCH_WORDS]


def search_threads(session: Session, owner_id: str, query: str | None, limit: int = 50) -> list[Thread]:
    """The owner's threads (never deleted ones) whose title or instructions
    contain every word of ``query`` (see :func:`search_words`), each word
    also matching as a prefix ("sun" finds "sunset"); words may sit in
    different places (one in the title, another in an instruction). Revert
    turns ("Revert to version 3") are not searched. Most recently active
    first, at most ``limit``. A query without words lists the threads like
    :func:`list_threads`.

    SQLite: FTS5 tables ``threads_fts`` and ``turns_fts`` (migration 0007),
    each word a quoted string with ``*``, a prefix query
    (https://www.sqlite.org/fts5.html §3.3 "FTS5 Strings", §3.4 "FTS5
    Prefix Queries"); the ``unicode61`` tokenizer folds case and
    diacritics. PostgreSQL: ``to_tsvector('simple', ...)`` served by GIN
    indexes, each word a quoted lexeme with ``:*`` for prefix matching
    (PostgreSQL docs 8.11.2 "tsquery" and 12.3.2 "Parsing Queries"); not
    ``websearch_to_tsquery``, which cannot match prefixes and gives ``-``,
    ``or`` and quotes meanings SQLite would not share. Never raises for
    any text."""
    limit = max(1, min(int(limit), 500))
    words = search_words(query)
    stmt = select(Thread).where(Thread.owner_id == owner_id, Thread.deleted_at.is_(None))
    params: dict[str, str] = {}
    postgres = session.get_bind().dialect.name == "postgresql"
    for i, word in enumerate(words):
        key = f"w{i}"
        if postgres:
            params[key] = f"'{word}':*"
            # The same expressions as the GIN indexes of migration 0007, so both serve the query.
            cond = text(
                f"threads.id IN (SELECT t.id FROM threads t WHERE to_tsvector('simple'::regconfig, t.title) "
                f"@@ to_tsquery('simple'::regconfig, :{key}) UNION SELECT u.thread_id FROM turns u "
                f"WHERE to_tsvector('simple'::regconfig, u.instruction) @@ to_tsquery('simple'::regconfig, :{key}) "
                f"AND u.kind <> 'revert')")
        else:
            params[key] = '"' + word.replace('"', '""') + '"*'
            cond = text(
                f"threads.id IN (SELECT thread_id FROM threads_fts WHERE threads_fts MATCH :{key} "
                f"UNION SELECT turns.thread_id FROM turns_fts JOIN turns ON turns.pk = turns_fts.rowid "
                f"WHERE turns_fts MATCH :{key} AND turns.kind <> 'revert')")
        stmt = stmt.where(cond)
    stmt = stmt.order_by(Thread.updated_at.desc(), Thread.created_at.desc()).limit(limit)
    return list(session.scalars(stmt, params))


@dataclass
class ThreadItem:
    """One row of the sidebar: the thread, its version count, when it was
    last active (``updated_at``) in words ("5 min ago") and as an ISO 8601
    UTC timestamp."""

    thread: Thread
    versions: int
    ago: str
    when_iso: str


#: The sidebar's date groups, newest first.
DATE_GROUPS = ("Today", "Yesterday", "Previous 7 days", "Older")


def relative_time(moment: datetime, now: datetime) -> str:
    """``moment`` in words relative to ``now`` (both aware): "just now",
    "5 min ago", "3 h ago", "2 days ago", then the date ("4 Mar 2026")."""
    seconds = (now - moment).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    days = int(seconds // 86400)
    if days < 7:
        return "1 day ago" if days == 1 else f"{days} days ago"
    return f"{moment.day} {moment:%b %Y}"


def group_threads(threads: list[Thread], counts: dict[str, int], tz_name: str | None = None,
                  now: datetime | None = None) -> list[tuple[str, list[ThreadItem]]]:
    """``threads`` (in their order) grouped by the calendar day of their
    last activity (``updated_at``) in the time zone ``tz_name`` (an IANA
    name such as ``Europe/Paris``; unknown or None: UTC): :data:`DATE_GROUPS`,
    empty groups left out. ``counts``: thread id -> its number of versions
    (``app.render_cache.version_facts``)."""
    from zoneinfo import ZoneInfo

    try:
        zone = ZoneInfo(tz_name) if tz_name else timezone.utc
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        zone = timezone.utc
    now = (now or utcnow()).astimezone(zone)
    today = now.date()
    groups: dict[str, list[ThreadItem]] = {g: [] for g in DATE_GROUPS}
    for t in threads:
        moment = _aware(t.updated_at).astimezone(zone)
        age_days = (today - moment.date()).days
        label = ("Today" if age_days <= 0 else "Yesterday" if age_days == 1
                 else "Previous 7 days" if age_days <= 7 else "Older")
        groups[label].append(ThreadItem(t, counts.get(t.id, 0), relative_time(moment, now),
                                        _aware(t.updated_at).astimezone(timezone.utc).isoformat()))
    return [(g, items) for g, items in groups.items() if items]


def undo_seconds_left(session: Session, owner_id: str, thread_id: str, undo_seconds: float) -> float:
    """Seconds left to restore ``thread_id`` (the owner's, deleted), 0 when
    it is not deleted, not the owner's, gone, or past the window."""
    thread = session.get(Thread, thread_id)
    if thread is None or thread.deleted_at is None or not secrets.compare_digest(thread.owner_id, owner_id):
        return 0.0
    return max(0.0, undo_seconds - (utcnow() - _aware(thread.deleted_at)).total_seconds())
