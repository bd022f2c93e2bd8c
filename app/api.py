"""The JSON API, ``/api/v1``. Every route calls ``app.services``."""
from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, File, Form, HTTPException, Query, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from sqlalchemy.orm import object_session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUpload

from app import metrics, services
from app.backends import get_backend, offered_backends
from app.previews import PREVIEW_WIDTHS
from app.render_cache import has_pending_turn
from app.storage.delivery import stored_response
from app.deps import (
    THREAD_ID_PATH,
    TOKEN_PATH,
    ContextDep,
    OwnerDep,
    SessionDep,
    TurnLimit,
    ViewedRow,
    find_thread,
    get_owner,
    read_upload,
    turn_options,
    viewing,
)
from app.models import Thread
from app.schemas import (
    BackendInfo,
    CreateThreadJSON,
    EditTurnIn,
    ErrorOut,
    ModelList,
    RenameIn,
    RevertIn,
    ShareOut,
    ThreadList,
    ThreadOut,
    TurnOut,
    thread_out,
    thread_summary,
    turn_out,
)
from app.urls import Urls, share_link

#: Every error is JSON ``{"detail": "<a readable sentence>"}`` (``app.main``),
#: validation errors included, so 422 is documented with that shape rather
#: than FastAPI's default list of errors. 400 is a body that does not parse;
#: 404 is an unknown or not-owned thread, turn, version or share link.
ERRORS = {400: {"model": ErrorOut, "description": "a body that cannot be parsed (JSON or multipart)"},
          404: {"model": ErrorOut, "description": "no such thread, turn, version or share link"},
          422: {"model": ErrorOut, "description": "invalid input"}}
UPLOAD_ERRORS = {413: {"model": ErrorOut, "description": "upload too large (bytes, pixels or side)"},
                 415: {"model": ErrorOut, "description": "not JPEG, PNG or WebP (a mask: not PNG)"},
                 429: {"model": ErrorOut, "description": "too many turns (Retry-After says when to retry), or "
                                                         "too many waiting (RETOUCH_MAX_QUEUED_TURNS)"},
                 503: {"model": ErrorOut, "description": "the server is busy decoding other images "
                                                         "(Retry-After says when to retry)"},
                 507: {"model": ErrorOut, "description": "the owner's stored images reached "
                                                         "RETOUCH_OWNER_QUOTA_BYTES"}}

router = APIRouter(prefix="/api/v1", tags=["api"], responses=ERRORS)

IMAGE_CACHE = "private, max-age=31536000, immutable"

_create_body = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": CreateThreadJSON.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "prompt": {"type": "string", "maxLength": 4000},
                        "title": {"type": "string", "maxLength": 200},
                        "image": {"type": "string", "format": "binary"},
                    },
                }
            },
        },
    }
}


@router.post("/threads", status_code=201, response_model=ThreadOut, openapi_extra=_create_body,
             dependencies=[TurnLimit],
             responses={**UPLOAD_ERRORS,
                        422: {"model": ErrorOut, "description": "neither prompt nor image, or a broken image"}})
async def create_thread(request: Request, ctx: ContextDep, owner: OwnerDep) -> ThreadOut:
    """Start a thread from JSON ``{"prompt", "title"?}`` or multipart
    ``prompt?``, ``image?``, ``title?``."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data") or ctype.startswith("application/x-www-form-urlencoded"):
        form = await request.form(max_files=1, max_fields=10)
        upload = form.get("image")
        image = await run_in_threadpool(
            read_upload, upload if isinstance(upload, StarletteUpload) else None, ctx.settings.max_upload_bytes)
        prompt, title = _text(form.get("prompt")), _text(form.get("title"))
    else:
        from app.http_limits import json_too_deep, too_deep_message

        raw = await request.body()  # at most RETOUCH_MAX_JSON_BYTES (app/http_limits.py)
        if json_too_deep(raw):  # before json.loads recurses into it
            raise HTTPException(422, too_deep_message())
        try:
            body = CreateThreadJSON.model_validate(json.loads(raw or b"null"))
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from None
        except (ValueError, RecursionError):
            raise HTTPException(422, "The body is not valid JSON.") from None
        image, prompt, title = None, body.prompt, body.title

    def work() -> ThreadOut:
        with ctx.sessions() as session:
            thread = services.create_thread(session, ctx.store, owner, prompt=prompt, image=image, title=title,
                                             backend=ctx.backend, limits=ctx.limits)
            return thread_out(thread, base_url=str(request.base_url), partials=ctx.partials, prices=ctx.prices)

    out = await run_in_threadpool(work)
    return out


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


@router.get("/threads", response_model=ThreadList)
def list_threads(session: SessionDep, owner: OwnerDep,
                 q: Annotated[str | None, Query(max_length=1000, description="search: threads whose title or "
                                                "instructions contain every word (prefixes match)")] = None,
                 limit: Annotated[int, Query(ge=1, le=500, description="with q: at most this many")] = 50,
                 ) -> ThreadList:
    """The caller's threads, most recently active first; with ``q``, those
    that match it (``app.services.search_threads``)."""
    threads = (services.search_threads(session, owner, q, limit) if q is not None
               else services.list_threads(session, owner))
    return ThreadList(threads=[thread_summary(t) for t in threads])


@router.get("/threads/{thread_id}", response_model=ThreadOut, dependencies=THREAD_ID_PATH)
@router.get("/shared/{token}", response_model=ThreadOut, dependencies=TOKEN_PATH, name="get_shared",
            description="The shared thread, read-only, without owner-only fields (one snapshot).")
def get_thread(request: Request, ctx: ContextDep) -> Response:
    """The thread with every version and turn, read in one snapshot
    (``app.db.read_snapshot``): no turn is finished without its version.
    With no turn pending, the JSON is made once per revision of the thread
    and served from ``ctx.render_cache`` after that (``app/render_cache.py``).
    One worker thread (``app.deps.viewing``)."""
    base_url = str(request.base_url)
    with viewing(request, ctx, snapshot=True) as view:
        thread = view.thread

        def encode() -> tuple[bytes, int]:
            data = thread_out(thread, base_url=base_url, share_token=view.share_token, partials=ctx.partials,
                              prices=ctx.prices).model_dump_json().encode()
            return data, len(data)

        if has_pending_turn(object_session(thread), thread.id):
            body, _ = encode()
        else:
            body = ctx.render_cache.get_or_make(("json", thread.id, thread.revision, view.share_token, base_url),
                                                encode)
    return Response(body, media_type="application/json")


@router.patch("/threads/{thread_id}", response_model=ThreadOut)
def rename_thread(thread_id: str, body: RenameIn, request: Request, ctx: ContextDep, session: SessionDep,
                  owner: OwnerDep) -> ThreadOut:
    """Change the thread's title."""
    thread = services.rename(session, owner, thread_id, body.title)
    return thread_out(thread, base_url=str(request.base_url), partials=ctx.partials, prices=ctx.prices)


@router.delete("/threads/{thread_id}", status_code=204)
def delete_thread(thread_id: str, ctx: ContextDep, session: SessionDep, owner: OwnerDep,
                  background: BackgroundTasks) -> Response:
    """Delete the thread: from now on it answers 404 everywhere (its share
    link too) and its pending turns are stopped. ``POST
    /threads/{id}/restore`` brings it back within ``RETOUCH_DELETE_UNDO_SECONDS``;
    after that it is removed for good (RFC 9110 §9.3.5: 204, no content)."""
    services.delete_thread(session, owner, thread_id)
    background.add_task(purge_expired, ctx)
    return Response(status_code=204)


@router.post("/threads/{thread_id}/restore", response_model=ThreadOut)
def restore_thread(thread_id: str, request: Request, ctx: ContextDep, session: SessionDep,
                   owner: OwnerDep) -> ThreadOut:
    """Undo a delete made less than ``RETOUCH_DELETE_UNDO_SECONDS`` ago;
    404 after that. A thread that is not deleted is returned as is."""
    thread = services.restore_thread(session, owner, thread_id, ctx.settings.delete_undo_seconds)
    return thread_out(thread, base_url=str(request.base_url), partials=ctx.partials, prices=ctx.prices)


def purge_expired(ctx) -> None:
    """Purge the threads (anyone's) whose undo window has passed
    (``app.services.purge_deleted_threads``): run after each delete, once the
    response is sent, so a server that never runs ``retouch gc`` still
    forgets deleted threads. Errors are logged, never raised."""
    import logging

    try:
        with ctx.sessions() as session:
            services.purge_deleted_threads(session, ctx.settings.delete_undo_seconds)
    except Exception:  # noqa: BLE001 - opportunistic; retouch gc purges too
        logging.getLogger(__name__).exception("purging deleted threads failed")


@router.post("/threads/{thread_id}/turns", status_code=202, response_model=TurnOut,
             dependencies=[TurnLimit], responses=UPLOAD_ERRORS)
def submit_turn(
    thread_id: str,
    ctx: ContextDep,
    session: SessionDep,
    owner: OwnerDep,
    instruction: Annotated[str, Form(min_length=1, max_length=4000)],
    image: Annotated[list[UploadFile], File(description="reference images")] = [],  # noqa: B006
    mask: Annotated[UploadFile | None, File(description="PNG; white (or alpha 0) = edit here")] = None,
    size: Annotated[str | None, Form(description="WIDTHxHEIGHT, auto, or match (the image's shape; "
                                                  "the default for edits)")] = None,
    quality: Annotated[str | None, Form(description="low, medium, high, xhigh, max or auto, as the model "
                                                     "takes (GET /api/v1/models)")] = None,
    model: Annotated[str | None, Form(description="one of GET /api/v1/models; default: the first")] = None,
    background: Annotated[str | None, Form(description="auto, opaque or transparent")] = None,
    markup: Annotated[UploadFile | None, File(description="PNG the image's size, transparent except for "
                                                          "strokes that guide the edit; not with mask")] = None,
    backend: Annotated[str | None, Form(description="local, openai or openai-chat, as GET /api/v1/models "
                                                     "offers; default: the server's")] = None,
) -> TurnOut:
    """Queue an instruction for the thread. Returns 202 with the queued Turn;
    poll ``GET /api/v1/turns/{id}`` for its end (and, while it runs, its
    ``partial_image_url``). Options the chosen model does not take are
    refused with 422 stating the rule."""
    options = turn_options(ctx, size=size, quality=quality, mask=mask, references=image, model=model,
                           background=background, markup=markup, backend=backend)
    turn = services.submit_turn(session, ctx.store, owner, thread_id, instruction=instruction, options=options,
                                backend=ctx.backend, limits=ctx.limits)
    return turn_out(turn, partials=ctx.partials, prices=ctx.prices)


@router.get("/models", response_model=ModelList)
def list_models(ctx: ContextDep) -> ModelList:
    """The models a turn may choose (``model``), the default first, with
    the sizes, qualities and backgrounds each takes and whether it takes
    markup; and ``backends``: each backend a turn may choose (``backend``),
    the server's first, with its models. ``models`` is empty for backends
    without a choice of model."""
    backends = []
    for name in offered_backends(ctx.backend):
        impl = get_backend(name)
        backends.append(BackendInfo(name=name, label=impl.label or name, conversational=impl.conversational,
                                    markup=impl.accepts_markup, models=impl.offered_models()))
    return ModelList(backend=ctx.backend, models=backends[0].models, backends=backends)


@router.get("/turns/{turn_id}", response_model=TurnOut)
def get_turn(turn_id: str, ctx: ContextDep, session: SessionDep, owner: OwnerDep) -> TurnOut:
    """One turn; while it runs, ``partial_image_url`` is its newest partial image."""
    return turn_out(services.get_turn(session, owner, turn_id), partials=ctx.partials, prices=ctx.prices)


@router.post("/turns/{turn_id}/retry", status_code=202, response_model=TurnOut, dependencies=[TurnLimit],
             responses={409: {"model": ErrorOut, "description": "the turn did not fail"}, 429: UPLOAD_ERRORS[429],
                        507: UPLOAD_ERRORS[507]})
def retry_turn(turn_id: str, ctx: ContextDep, session: SessionDep, owner: OwnerDep) -> TurnOut:
    """Send a failed or declined turn's instruction again, as a new turn."""
    turn = services.retry_turn(session, owner, turn_id, backend=ctx.backend, store=ctx.store,
                                limits=ctx.limits)
    return turn_out(turn, partials=ctx.partials, prices=ctx.prices)


@router.post("/threads/{thread_id}/turns/{turn_id}/cancel", response_model=TurnOut,
             responses={409: {"model": ErrorOut, "description": "the turn has already ended"}})
def cancel_turn(thread_id: str, turn_id: str, ctx: ContextDep, session: SessionDep, owner: OwnerDep) -> TurnOut:
    """Stop a turn: a queued one is cancelled before it starts, a running
    one is stopped and its result discarded (no version; a paid backend may
    still bill the request it had received, and ``message`` says so).
    Returns the turn, ``cancelled``; 409 Conflict when it has already ended."""
    turn = services.cancel_turn(session, owner, thread_id, turn_id)
    return turn_out(turn, partials=ctx.partials, prices=ctx.prices)


@router.post("/threads/{thread_id}/turns/{turn_id}/regenerate", status_code=202, response_model=TurnOut,
             dependencies=[TurnLimit],
             responses={409: {"model": ErrorOut, "description": "the turn made no image or answer, or its "
                                                                "backend is deterministic (local)"},
                        429: UPLOAD_ERRORS[429], 507: UPLOAD_ERRORS[507]})
def regenerate_turn(thread_id: str, turn_id: str, ctx: ContextDep, session: SessionDep, owner: OwnerDep) -> TurnOut:
    """Run the turn's instruction (options, mask, drawing, references) again
    on the same base version: **202** with the new turn, whose version
    becomes a sibling of the original's."""
    turn = services.regenerate_turn(session, owner, thread_id, turn_id, backend=ctx.backend, store=ctx.store,
                                    limits=ctx.limits)
    return turn_out(turn, partials=ctx.partials, prices=ctx.prices)


@router.post("/threads/{thread_id}/turns/{turn_id}/edit", status_code=202, response_model=TurnOut,
             dependencies=[TurnLimit],
             responses={409: {"model": ErrorOut, "description": "the turn is not an instruction"},
                        429: UPLOAD_ERRORS[429], 507: UPLOAD_ERRORS[507]})
def edit_turn(thread_id: str, turn_id: str, body: EditTurnIn, ctx: ContextDep, session: SessionDep,
              owner: OwnerDep) -> TurnOut:
    """Send an edited instruction in place of the turn's: **202** with a new
    turn from the same base version (a sibling branch) and the original's
    options and attachments; the original stays."""
    turn = services.edit_turn(session, owner, thread_id, turn_id, body.instruction, backend=ctx.backend,
                              store=ctx.store, limits=ctx.limits)
    return turn_out(turn, partials=ctx.partials, prices=ctx.prices)


@router.post("/threads/{thread_id}/revert", response_model=ThreadOut)
def revert(thread_id: str, body: RevertIn, request: Request, ctx: ContextDep, session: SessionDep,
           owner: OwnerDep) -> ThreadOut:
    """Make version ``body.version`` the head; the next turn edits it."""
    thread = services.revert(session, owner, thread_id, body.version)
    return thread_out(thread, base_url=str(request.base_url), partials=ctx.partials, prices=ctx.prices)


@router.post("/threads/{thread_id}/share", status_code=201, response_model=ShareOut)
def share(thread_id: str, request: Request, session: SessionDep, owner: OwnerDep) -> ShareOut:
    """Create the read-only share link, or return the live one."""
    link = services.share(session, owner, thread_id)
    return ShareOut(token=link.token, url=share_link(str(request.base_url), link.token))


@router.delete("/threads/{thread_id}/share", status_code=204)
def revoke_share(thread_id: str, session: SessionDep, owner: OwnerDep) -> Response:
    services.revoke_share(session, owner, thread_id)
    return Response(status_code=204)


@router.post("/shared/{token}/fork", status_code=201, response_model=ThreadOut, dependencies=[TurnLimit],
             responses={429: UPLOAD_ERRORS[429]})
def fork(token: str, request: Request, ctx: ContextDep, session: SessionDep, owner: OwnerDep) -> ThreadOut:
    """Copy the shared thread into a new thread owned by the caller."""
    thread = services.fork(session, owner, token)
    return thread_out(thread, base_url=str(request.base_url), partials=ctx.partials, prices=ctx.prices)


IMAGE_RESPONSES = {200: {"content": {"image/png": {}, "image/webp": {}}}, 304: {"description": "not modified"}}


@router.get("/threads/{thread_id}/versions/{number}/image", responses=IMAGE_RESPONSES, dependencies=THREAD_ID_PATH)
@router.get("/shared/{token}/versions/{number}/image", responses=IMAGE_RESPONSES, dependencies=TOKEN_PATH,
            name="shared_version_image", description="A shared thread's version image, for link holders.")
def version_image(number: int, request: Request, ctx: ContextDep, size: str | None = None,
                  download: bool = False) -> Response:
    """The version's PNG (``?size=thumb``: the WebP thumbnail; ``128``,
    ``512``, ``1024``: a WebP preview), with an ETag and a year of caching:
    stored images never change. Through a share link a full-size PNG always
    carries its Content Credentials, as does a full-size download.

    The hottest GET of a page, so it takes one worker thread: no ``def``
    dependency (FastAPI runs each in a thread of its own before the
    endpoint's), one session opened and closed here, and one Core query for
    the thread and the version's blob (:func:`app.services.version_blob`)
    unless the image must be signed (C2PA, ``app.archive_routes.signed_response``),
    which reads the rows. ``download`` adds ``Content-Disposition: attachment``
    (:func:`download_disposition`). Raises NotFound (404) as
    :func:`app.deps.find_thread` and :func:`app.services.find_version` do."""
    token = request.path_params.get("token")
    with ctx.sessions() as session:
        if size in (None, "", "full") and (download or token is not None):
            from app.archive_routes import signed_response

            view = find_thread(request, session, rows_only=True)
            version = services.find_version(session, view.thread, number)
            response, title = signed_response(request, ctx, view.thread, version), view.thread.title
        else:
            blob = services.version_blob(session, number, owner_id=None if token else get_owner(request),
                                         thread_id=request.path_params.get("thread_id"), token=token)
            if blob.sha256 is None:
                raise services.NotFound(f"Version {number} does not exist in this thread.")
            response, title = blob_response(request, ctx, blob.sha256, size), blob.title
    if download and response.status_code == 200:
        response.headers["Content-Disposition"] = download_disposition(title, number)
    return response


ATTACHMENT_RESPONSES = {200: {"content": {"image/png": {}, "image/webp": {}}}, 304: {"description": "not modified"}}


@router.get("/threads/{thread_id}/turns/{turn_id}/attachments/{name}", responses=ATTACHMENT_RESPONSES,
            dependencies=THREAD_ID_PATH)
@router.get("/shared/{token}/turns/{turn_id}/attachments/{name}", responses=ATTACHMENT_RESPONSES,
            dependencies=TOKEN_PATH, name="shared_turn_attachment",
            description="A shared thread's turn attachment, for link holders.")
def turn_attachment(turn_id: str, name: str, view: ViewedRow, request: Request, ctx: ContextDep,
                    session: SessionDep, size: str | None = None) -> Response:
    """A turn's mask (``name`` = ``mask``; white = the region edited),
    markup (``markup``; strokes that guided the edit) or reference image (``reference-1`` ... ``reference-4``), as PNG, or the
    WebP thumbnail with ``?size=thumb``."""
    return blob_response(request, ctx, services.find_attachment(session, view.thread, turn_id, name), size)


PARTIAL_RESPONSES = {200: {"content": {"image/webp": {}}},
                     303: {"description": "the turn has ended: its final image"},
                     404: {"model": ErrorOut, "description": "no partial image (none yet, or the turn ended)"}}


@router.get("/threads/{thread_id}/turns/{turn_id}/partial", responses=PARTIAL_RESPONSES, dependencies=THREAD_ID_PATH)
@router.get("/shared/{token}/turns/{turn_id}/partial", responses=PARTIAL_RESPONSES, dependencies=TOKEN_PATH,
            name="shared_turn_partial",
            description="A shared thread's running turn's newest partial image, for link holders.")
def turn_partial(turn_id: str, request: Request, ctx: ContextDep, session: SessionDep,
                 i: int | None = None) -> Response:
    """The running turn's newest partial image (WebP), never cached; 404 once the turn ended."""
    frame = ctx.partials.get(turn_id)  # before the thread is read (so not a dependency): see partial_response
    view = find_thread(request, session)
    return partial_response(frame, view.thread, turn_id, view.urls)


def partial_response(frame, thread: Thread, turn_id: str, urls: Urls) -> Response:
    """Serve ``frame``, the newest partial frame of ``turn_id`` (a turn of
    ``thread``) taken from memory (``app/partials.py``), never cached, its
    0-based index in the ``X-Partial-Index`` header. Once the turn has ended
    its frames are gone: a page that asks a moment too late is sent on to the
    final image (303 See Other) when the turn made one. The caller takes the
    frame *before* reading the thread: the worker commits the turn's end
    first and drops the frame after, so either the frame is still there or
    the thread read sees the ended turn. Raises HTTPException 404 when the
    turn is not in the thread or has neither."""
    turn = next((t for t in thread.turns if t.id == turn_id), None)
    if turn is not None and frame is not None:  # X-Partial-Index: which frame this is (0-based), newer than the one the URL named
        metrics.partial_frame_sent()
        return Response(frame.data, media_type="image/webp",
                        headers={"Cache-Control": "no-store", "X-Partial-Index": str(frame.index)})
    if turn is not None and not turn.pending and turn.result_version is not None:
        return RedirectResponse(urls.image(turn.result_version), status_code=303,
                                headers={"Cache-Control": "no-store"})
    raise HTTPException(404, "This turn has no partial image (none arrived yet, or the turn ended).")


def download_disposition(title: str, number: int) -> str:
    """The ``Content-Disposition`` of version ``number`` of a thread titled
    ``title`` downloaded: ``attachment``, naming the file
    ``<title>-v<number>.png``: an ASCII ``filename`` and, for a title beyond
    ASCII, ``filename*`` in UTF-8 (RFC 6266 §4.3, RFC 8187), which clients
    that read it prefer."""
    import unicodedata
    from urllib.parse import quote

    def clean(text: str) -> str:
        return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-")[:60] or "retouch"

    name = clean(title)
    ascii_name = clean(unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii"))
    value = f'attachment; filename="{ascii_name}-v{number}.png"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{quote(f'{name}-v{number}.png', safe='')}"
    return value


def blob_response(request: Request, ctx, sha256: str, size: str | None, *, filename: str | None = None) -> Response:
    """Serve a stored PNG; with ``size="thumb"`` its WebP thumbnail (256 px
    on the long side); with ``size="128"``, ``"512"`` or ``"1024"`` a WebP preview at
    most that many pixels on the long side (made on first request and kept,
    :func:`app.previews.ensure_preview`). Each has an ETag and a year of
    caching: stored images never change. Answers 304 when ``If-None-Match``
    carries the ETag (RFC 9110 §13.1.2), before touching any file; streams
    large files, or redirects to the store (``RETOUCH_S3_REDIRECT``,
    :func:`app.storage.delivery.stored_response`). Raises
    HTTPException 422 for another ``size``, 404 when the file is missing. An
    image stored without a thumbnail is served whole."""
    if size not in (None, "", "thumb", "full", *PREVIEW_WIDTHS):
        raise HTTPException(422, f"size must be 'thumb', {', '.join(repr(w) for w in PREVIEW_WIDTHS)} or omitted.")
    variant = size if size in ("thumb", *PREVIEW_WIDTHS) else ""
    etag = f'"{sha256}{"-" + variant if variant else ""}"'
    headers = {"ETag": etag, "Cache-Control": IMAGE_CACHE}
    inm = request.headers.get("if-none-match", "")
    if etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*":
        return Response(status_code=304, headers=headers)
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    settings = ctx.settings
    try:
        return stored_response(ctx.store, sha256, variant, headers, presign_seconds=settings.s3_presign_seconds,
                               redirect=settings.s3_redirect)
    except FileNotFoundError:
        raise HTTPException(404, "The image file is missing from storage.") from None
