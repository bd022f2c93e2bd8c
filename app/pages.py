"""HTML pages. htmx requests get a named block of the page template
(jinja2-fragments), other requests the full page; every page response sends
``Vary: HX-Request``. Forms post to routes that call ``app.services`` and
then redirect (303, Post/Redirect/Get) or, for htmx, return the block."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from jinja2_fragments.fastapi import Jinja2Blocks

from app import services
from app.deps import BodyLimit, ContextDep, OwnerDep, SessionDep, TurnLimit, read_upload, turn_options
from app.schemas import Urls, share_link_url, utc

ROOT = Path(__file__).resolve().parent.parent
templates = Jinja2Blocks(directory=ROOT / "templates")
templates.env.globals["utc"] = utc

router = APIRouter(include_in_schema=False)


def is_htmx(request: Request) -> bool:
    """True for requests htmx makes (but not its history restores, which
    need the full page)."""
    return request.headers.get("hx-request") == "true" and request.headers.get("hx-history-restore-request") != "true"


def render(request: Request, name: str, context: dict, *, block: str | None = None, status: int = 200,
           headers: dict | None = None) -> Response:
    """Render ``name`` (only ``block`` of it for htmx requests)."""
    headers = {"Vary": "HX-Request", "Cache-Control": "no-store", **(headers or {})}
    kwargs = {"block_name": block} if block and is_htmx(request) else {}
    return templates.TemplateResponse(request, name, context, status_code=status, headers=headers, **kwargs)


def error_page(request: Request, status: int, message: str, headers: dict | None = None) -> Response:
    """A page (or, for htmx, a fragment shown in the flash area) that
    explains what went wrong. ``headers`` (e.g. ``Retry-After``) are kept."""
    headers = dict(headers or {})
    if is_htmx(request):
        headers.update({"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"})
    return render(request, "error.html", {"status": status, "message": message}, block="error", status=status,
                  headers=headers)


def redirect(request: Request, url: str) -> Response:
    if is_htmx(request):
        # A full navigation: the target page must not be fetched as a fragment.
        return Response(status_code=204, headers={"HX-Redirect": url, "Vary": "HX-Request"})
    return RedirectResponse(url, status_code=303)


def thread_context(request: Request, ctx, thread, *, share_token: str | None = None) -> dict:
    owner = share_token is None
    live = thread.live_share if owner else None
    return {
        "thread": thread,
        "urls": Urls(thread, share_token),
        "owner": owner,
        "share_token": share_token,
        "share_url": share_link_url(str(request.base_url), live.token) if live else None,
        "backend": ctx.backend,
        "turn_versions": {v.turn_id: v for v in thread.versions if v.turn_id},
    }


@router.get("/")
def home(request: Request, session: SessionDep, owner: OwnerDep) -> Response:
    return render(request, "home.html", {"threads": services.list_threads(session, owner)})


@router.post("/threads", dependencies=[BodyLimit, TurnLimit])
def create_thread(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    owner: OwnerDep,
    prompt: Annotated[str, Form()] = "",
    title: Annotated[str, Form()] = "",
    image: Annotated[UploadFile | None, File()] = None,
) -> Response:
    try:
        thread = services.create_thread(session, ctx.store, owner, prompt=prompt, title=title,
                                         image=read_upload(image, ctx.settings.max_upload_bytes),
                                         backend=ctx.backend, limits=ctx.limits)
    except services.InvalidInput as exc:
        threads = services.list_threads(session, owner)
        return render(request, "home.html", {"threads": threads, "error": exc.message, "prompt": prompt,
                                             "title": title}, block="new_thread", status=exc.status)
    ctx.worker.notify()
    return redirect(request, f"/t/{thread.id}")


@router.get("/t/{thread_id}")
def thread_page(thread_id: str, request: Request, ctx: ContextDep, session: SessionDep, owner: OwnerDep) -> Response:
    thread = services.get_thread(session, owner, thread_id)
    context = thread_context(request, ctx, thread)
    context["threads"] = services.list_threads(session, owner)
    return render(request, "thread.html", context, block="conversation")


@router.post("/t/{thread_id}/turns", dependencies=[BodyLimit, TurnLimit])
def submit_turn(
    thread_id: str,
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    owner: OwnerDep,
    instruction: Annotated[str, Form()] = "",
    image: Annotated[list[UploadFile], File()] = [],  # noqa: B006
    mask: Annotated[UploadFile | None, File()] = None,
    size: Annotated[str, Form()] = "",
    quality: Annotated[str, Form()] = "",
) -> Response:
    options = turn_options(ctx, size=size, quality=quality, mask=mask, references=image)
    services.submit_turn(session, ctx.store, owner, thread_id, instruction=instruction, options=options,
                         backend=ctx.backend, limits=ctx.limits)
    ctx.worker.notify()
    return _after_change(request, ctx, session, owner, thread_id)


@router.post("/t/{thread_id}/revert")
def revert(thread_id: str, request: Request, ctx: ContextDep, session: SessionDep, owner: OwnerDep,
           version: Annotated[int, Form()]) -> Response:
    services.revert(session, owner, thread_id, version)
    return _after_change(request, ctx, session, owner, thread_id)


@router.post("/t/{thread_id}/turns/{turn_id}/retry", dependencies=[TurnLimit])
def retry(thread_id: str, turn_id: str, request: Request, ctx: ContextDep, session: SessionDep,
          owner: OwnerDep) -> Response:
    services.retry_turn(session, owner, turn_id, backend=ctx.backend)
    ctx.worker.notify()
    return _after_change(request, ctx, session, owner, thread_id)


@router.post("/t/{thread_id}/title")
def rename(thread_id: str, request: Request, session: SessionDep, owner: OwnerDep,
           title: Annotated[str, Form()] = "") -> Response:
    services.rename(session, owner, thread_id, title)
    return redirect(request, f"/t/{thread_id}")


@router.post("/t/{thread_id}/share")
def share(thread_id: str, request: Request, session: SessionDep, owner: OwnerDep) -> Response:
    services.share(session, owner, thread_id)
    return redirect(request, f"/t/{thread_id}#share")


@router.post("/t/{thread_id}/share/revoke")
def revoke(thread_id: str, request: Request, session: SessionDep, owner: OwnerDep) -> Response:
    services.revoke_share(session, owner, thread_id)
    return redirect(request, f"/t/{thread_id}#share")


def _after_change(request: Request, ctx, session, owner: str, thread_id: str) -> Response:
    if not is_htmx(request):
        return redirect(request, f"/t/{thread_id}")
    thread = services.get_thread(session, owner, thread_id)
    session.refresh(thread)
    return render(request, "thread.html", thread_context(request, ctx, thread), block="conversation")


@router.get("/s/{token}")
def shared_page(token: str, request: Request, ctx: ContextDep, session: SessionDep) -> Response:
    thread = services.get_shared_thread(session, token)
    context = thread_context(request, ctx, thread, share_token=token)
    return render(request, "shared.html", context, block="conversation",
                  headers={"X-Robots-Tag": "noindex", "Referrer-Policy": "no-referrer"})


@router.post("/s/{token}/fork")
def fork(token: str, request: Request, session: SessionDep, owner: OwnerDep) -> Response:
    thread = services.fork(session, owner, token)
    return redirect(request, f"/t/{thread.id}")
