"""Routes for Content Credentials, export, import and the timeline: the JSON
API (``api_router``, under ``/api/v1``) and the HTML forms (``page_router``).
Both call :mod:`app.archive`, :mod:`app.provenance` and :mod:`app.services`,
as ``app/api.py`` and ``app/pages.py`` do."""
from __future__ import annotations

import logging
import os

import c2pa
from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, StrictBool
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from typing import Annotated

from app import archive, provenance, services
from app.deps import THREAD_ID_PATH, TOKEN_PATH, ContextDep, OwnerDep, SessionDep, TurnLimit, ViewedThread
from app.models import Thread, Version
from app.api import ERRORS, UPLOAD_ERRORS
from app.schemas import ErrorOut, ThreadOut, thread_out
from app.urls import Urls, thread_page

log = logging.getLogger("retouch")

api_router = APIRouter(prefix="/api/v1", tags=["api"], responses=ERRORS)
page_router = APIRouter(include_in_schema=False)

#: Signed files change when the owner turns instructions on or off, so they
#: are revalidated (ETag) rather than cached as immutable.
SIGNED_CACHE = "private, no-cache"


def prov(ctx) -> provenance.Provenance:
    """The app's :class:`app.provenance.Provenance` (made at start-up)."""
    return provenance.for_settings(ctx.settings)


def signed_response(request: Request, ctx, thread: Thread, version: Version) -> Response:
    """Serve version ``version`` of ``thread`` as a PNG with its C2PA
    manifest (signed once and cached, :mod:`app.provenance`), with an ETag
    naming the signed copy; 304 when ``If-None-Match`` has it (RFC 9110
    §13.1.2). Raises HTTPException 404 when the stored image is missing,
    500 when c2pa could not sign it."""
    try:
        key, data = prov(ctx).signed_copy(ctx.store, thread, version.number)
    except FileNotFoundError:
        raise HTTPException(404, "The image file is missing from storage.") from None
    except c2pa.C2paError:
        log.exception("could not sign version %s of thread %s", version.number, thread.id)
        raise HTTPException(500, "The image could not be signed with its Content Credentials.") from None
    etag = f'"{version.sha256}-c2pa-{key[:16]}"'
    headers = {"ETag": etag, "Cache-Control": SIGNED_CACHE}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type="image/png", headers=headers)


def credentials(ctx, thread: Thread, number: int) -> dict:
    """The "Content credentials" panel of a version, read back from its
    signed PNG with c2pa's Reader (:meth:`app.provenance.Provenance.panel`);
    on a signing failure, ``{"present": False, "error": "..."}``."""
    try:
        return prov(ctx).panel(ctx.store, thread, number)
    except (FileNotFoundError, c2pa.C2paError) as exc:
        log.warning("no credentials for version %s of thread %s: %s", number, thread.id, exc)
        return {"present": False, "error": "The credentials could not be made for this version."}


# ---------------------------------------------------------------- API


class ProvenanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_instructions: StrictBool


class ProvenanceOut(BaseModel):
    include_instructions: bool


@api_router.put("/threads/{thread_id}/provenance", response_model=ProvenanceOut)
def set_provenance(thread_id: str, body: ProvenanceIn, session: SessionDep, owner: OwnerDep) -> ProvenanceOut:
    """Whether the C2PA manifests of this thread's downloads carry the
    instructions (default false). Downloads signed before are signed again."""
    thread = services.set_c2pa_instructions(session, owner, thread_id, body.include_instructions)
    return ProvenanceOut(include_instructions=thread.c2pa_instructions)


@api_router.get("/threads/{thread_id}/versions/{number}/credentials", dependencies=THREAD_ID_PATH)
@api_router.get("/shared/{token}/versions/{number}/credentials", dependencies=TOKEN_PATH,
                name="shared_version_credentials",
                description="A shared version's Content Credentials, for link holders.")
def version_credentials(number: int, view: ViewedThread, ctx: ContextDep) -> dict:
    """The version's Content Credentials as read back from its signed PNG
    (see ``app.provenance.read_credentials`` for the fields)."""
    services.get_version(view.thread, number)
    return credentials(ctx, view.thread, number)


@api_router.get("/threads/{thread_id}/export", responses={200: {"content": {"application/zip": {}}}})
def export(thread_id: str, ctx: ContextDep, session: SessionDep, owner: OwnerDep) -> Response:
    """The thread as a zip: signed versions, attachments, ``thread.json``
    (schema version 1, see the README) and ``timeline.webp``."""
    try:
        path, thread = archive.export_to_tempfile(session, ctx.store, prov(ctx), owner, thread_id)
    except FileNotFoundError:
        raise HTTPException(404, "An image of this thread is missing from storage.") from None
    return FileResponse(path, media_type="application/zip", filename=archive.export_filename(thread),
                        headers={"Cache-Control": "no-store"}, background=BackgroundTask(os.unlink, path))


@api_router.get("/threads/{thread_id}/timeline.webp", responses={200: {"content": {"image/webp": {}}}},
                dependencies=THREAD_ID_PATH)
@api_router.get("/shared/{token}/timeline.webp", responses={200: {"content": {"image/webp": {}}}},
                dependencies=TOKEN_PATH, name="shared_timeline",
                description="The shared thread's timeline, for link holders.")
def timeline(view: ViewedThread, ctx: ContextDep) -> Response:
    """An animated WebP of the head's lineage, one frame per version with
    its instruction as a caption."""
    try:
        data = archive.timeline_webp(ctx.store, view.thread, cached=True)
    except FileNotFoundError:
        raise HTTPException(404, "An image of this thread is missing from storage.") from None
    return Response(data, media_type="image/webp", headers={"Cache-Control": "private, no-cache"})


IMPORT_ERRORS = {413: {"model": ErrorOut, "description": "the zip, an entry or all entries too large; a zip bomb"},
                 415: {"model": ErrorOut, "description": "not a zip, or an image in a format uploads refuse"},
                 422: {"model": ErrorOut, "description": "a bad entry name, thread.json against its schema, "
                                                         "or an image that breaks the upload rules"},
                 429: UPLOAD_ERRORS[429], 503: UPLOAD_ERRORS[503], 507: UPLOAD_ERRORS[507]}


async def _read_archive_upload(ctx, upload: UploadFile | None) -> bytes:
    if upload is None:
        raise services.InvalidInput("Choose a Retouch export (.zip) to import.")
    return await run_in_threadpool(archive.read_limited, upload.file, archive.max_archive_bytes(ctx.limits))


@api_router.post("/threads/import", status_code=201, response_model=ThreadOut, dependencies=[TurnLimit],
                 responses=IMPORT_ERRORS)
async def import_thread(request: Request, ctx: ContextDep, owner: OwnerDep,
                        archive_file: Annotated[UploadFile | None, File(alias="archive",
                                                                        description="a Retouch export zip")] = None
                        ) -> ThreadOut:
    """Make a new thread, owned by the caller, from an export zip (multipart
    field ``archive``). A bad zip gets a 4xx naming the problem, and nothing
    is stored."""
    data = await _read_archive_upload(ctx, archive_file)

    def work() -> ThreadOut:
        with ctx.sessions() as session:
            thread = archive.import_thread(session, ctx.store, owner, data, ctx.limits)
            return thread_out(thread, base_url=str(request.base_url), partials=ctx.partials, prices=ctx.prices)

    return await run_in_threadpool(work)


# ---------------------------------------------------------------- pages


@page_router.post("/threads/import", dependencies=[TurnLimit])
async def import_page(request: Request, ctx: ContextDep, owner: OwnerDep,
                      archive_file: Annotated[UploadFile | None, File(alias="archive")] = None) -> Response:
    """The home page's Import form: on success, the new thread; on a bad zip,
    the home page again with the reason."""
    from app import pages

    def work(data: bytes) -> Response:
        with ctx.sessions() as session:
            try:
                thread = archive.import_thread(session, ctx.store, owner, data, ctx.limits)
            except services.InvalidInput as exc:
                threads = services.list_threads(session, owner)
                return pages.render(request, "home.html", {"threads": threads, "import_error": exc.message},
                                    block="import_thread", status=exc.status)
            return pages.redirect(request, thread_page(thread.id))

    if archive_file is not None and not archive_file.filename and archive_file.size == 0:
        archive_file = None
    try:
        data = await _read_archive_upload(ctx, archive_file)
    except services.InvalidInput as exc:
        def again() -> Response:
            with ctx.sessions() as session:
                return pages.render(request, "home.html", {"threads": services.list_threads(session, owner),
                                                           "import_error": exc.message},
                                    block="import_thread", status=exc.status)
        return await run_in_threadpool(again)
    return await run_in_threadpool(work, data)


@page_router.post("/t/{thread_id}/provenance")
def provenance_page(thread_id: str, request: Request, session: SessionDep, owner: OwnerDep,
                    include_instructions: Annotated[str, Form()] = "",
                    version: Annotated[int | None, Form()] = None) -> Response:
    """The credentials panel's switch: put the instructions in this thread's
    manifests, or take them out; back to the version page."""
    from app import pages

    services.set_c2pa_instructions(session, owner, thread_id, include_instructions in ("1", "on", "true"))
    urls = Urls.owned(thread_id)
    target = urls.version_page(version) if version else urls.page()
    return pages.redirect(request, target + "#credentials")
