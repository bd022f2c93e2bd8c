"""HTML pages. htmx requests get a named block of the page template
(jinja2-fragments), other requests the full page; every page response sends
``Vary: HX-Request``. Forms post to routes that call ``app.services`` and
then redirect (303, Post/Redirect/Get) or, for htmx, return the block."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import anyio
from markupsafe import Markup
from sqlalchemy.orm import object_session
from fastapi import APIRouter, BackgroundTasks, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from jinja2_fragments.fastapi import Jinja2Blocks
from sse_starlette import EventSourceResponse

from app import services, version_tree
from app.backends import get_backend, offered_backends
from app.thread_view import older_turns, thread_view, tree_key, turn_key
from app.usage import cost_of
from app.option_notes import option_notes
from app.db import read_snapshot
from app.render_cache import has_pending_turn, version_facts
from app.deps import (
    THREAD_ID_PATH,
    ContextDep,
    OwnerDep,
    SessionDep,
    ThreadView,
    TurnLimit,
    ViewedSnapshot,
    ViewedThread,
    WatchedThread,
    read_upload,
    turn_options,
    viewing,
)
from app.events import PING_SECONDS, changes
from app.schemas import utc
from app.urls import Urls, share_link
from app.urls import thread_page as thread_page_url

ROOT = Path(__file__).resolve().parent.parent
templates = Jinja2Blocks(directory=ROOT / "templates")
# Templates change only with a new release: without this, every {% include %} (one per turn on a
# thread page) stats its file to see whether it changed (Jinja's auto_reload), a quarter of a page's time.
templates.env.auto_reload = False
templates.env.globals["utc"] = utc
templates.env.globals["cost_of"] = cost_of
# The owner's URLs of a thread by its id, for lists of threads (home page, sidebar): thread_urls(t.id).page()
templates.env.globals["thread_urls"] = Urls.owned

#: The cookie static/threads.js sets to the browser's IANA time zone, for the sidebar's date groups.
TZ_COOKIE = "retouch_tz"


def thread_groups(threads, request: Request | None = None):
    """The sidebar's date groups of ``threads`` (``app.services.group_threads``)
    in the viewer's time zone (the ``retouch_tz`` cookie static/threads.js
    sets; UTC until it is set, or when it names no zone)."""
    threads = list(threads or [])
    if not threads:
        return []
    tz = request.cookies.get(TZ_COOKIE) if request is not None else None
    session = object_session(threads[0])
    cache = request.app.state.ctx.render_cache if request is not None else None
    counts = {tid: count for tid, (count, _) in version_facts(session, cache, threads).items()}
    return services.group_threads(threads, counts, (tz or "")[:64] or None)


templates.env.globals["thread_groups"] = thread_groups
templates.env.globals["turn_key"] = turn_key
#: Settled turns a live refresh may name as already shown (static/live.js sends at most this many:
#: #live-refresh's data-max-turns, from the Jinja global ``limits``).
MAX_KEPT_TURNS = 40


def backend_flags(name: str | None):
    """The backend named ``name`` (its capability flags: ``deterministic``,
    ``paid``…) for templates, or None when no such backend is registered."""
    from app.backends import UnknownBackend

    try:
        return get_backend(name or "")
    except UnknownBackend:
        return None


def without_suggestions(message: str | None) -> str:
    """A decline ``message`` without its closing sentence of suggestions
    ("Things I can do instead: …", ``app/backends/local/declines.py``), for
    pages that show the suggestions as buttons."""
    from app.backends.local.declines import SUGGESTIONS_LEAD

    text = message or ""
    cut = text.rfind(SUGGESTIONS_LEAD)
    return text[:cut].rstrip() if cut > 0 else text


templates.env.globals["backend_flags"] = backend_flags
templates.env.globals["option_notes"] = option_notes
templates.env.filters["without_suggestions"] = without_suggestions

router = APIRouter(include_in_schema=False)


def is_htmx(request: Request) -> bool:
    """True for requests htmx makes (but not its history restores, which
    need the full page)."""
    return request.headers.get("hx-request") == "true" and request.headers.get("hx-history-restore-request") != "true"


def render(request: Request, name: str, context: dict, *, block: str | None = None, status: int = 200,
           headers: dict | None = None, blocks: tuple[str, ...] = ()) -> Response:
    """Render template ``name``: the full page, or for htmx requests one
    named block of it. The block is the one named like the request's
    ``HX-Target`` element when that is in ``blocks``, else ``block``.
    ``context["fragment"]`` tells templates which case applies."""
    headers = {"Vary": "HX-Request, HX-Target", "Cache-Control": "no-store", **(headers or {})}
    kwargs = {}
    if is_htmx(request):
        target = request.headers.get("hx-target", "")
        chosen = target if target in blocks else block
        if chosen:
            kwargs = {"block_name": chosen}
    context = {**context, "fragment": bool(kwargs)}
    return templates.TemplateResponse(request, name, context, status_code=status, headers=headers, **kwargs)


def error_page(request: Request, status: int, message: str, headers: dict | None = None) -> Response:
    """A page (or, for htmx, a fragment shown in the flash area, or next to
    the composer when the composer sent the request) that explains what went wrong. ``headers`` (e.g. ``Retry-After``) are kept."""
    headers = dict(headers or {})
    if is_htmx(request) and request.headers.get("hx-trigger") == "composer":
        # The composer's send: the message goes next to the composer, where the person is looking.
        headers.update({"HX-Retarget": "#composer-alert-text", "HX-Reswap": "innerHTML"})
        return render(request, "_composer_alert.html", {"status": status, "message": message}, status=status,
                      headers=headers)
    if is_htmx(request):
        headers.update({"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"})
    return render(request, "error.html", {"status": status, "message": message}, block="error", status=status,
                  headers=headers)


def redirect(request: Request, url: str) -> Response:
    """303 See Other to ``url`` (Post/Redirect/Get); for htmx an
    ``HX-Redirect`` so the target page loads whole, not as a fragment."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url, "Vary": "HX-Request"})
    return RedirectResponse(url, status_code=303)


def version_labels(thread) -> dict[int, str]:
    """What made each version, for captions and alt text: the instruction
    of the turn that produced it, or "uploaded photo"."""
    turns = {t.id: t for t in thread.turns}
    labels = {}
    for v in thread.versions:
        turn = turns.get(v.turn_id) if v.turn_id else None
        if turn is None:
            labels[v.number] = "earlier version" if v.parent else "first version"
        elif turn.kind == "upload":
            labels[v.number] = f"uploaded photo ({turn.instruction})" if turn.instruction else "uploaded photo"
        else:
            labels[v.number] = turn.instruction or "generated image"
    return labels


def thread_context(request: Request, ctx, seen: ThreadView) -> dict:
    """Everything the thread templates need, for the owner or for a
    share-link holder (``seen``): its ``urls`` (:class:`app.urls.Urls`) make
    every link. Reads a bounded window of the thread (``app/thread_view.py``),
    never its whole history."""
    thread = seen.thread
    view = thread_view(object_session(thread), thread, prices=ctx.prices)
    return {
        **_page_context(request, ctx, seen, head=view.head, usage=view.usage, pending=view.pending),
        "view": view,
        "lanes": version_tree.lanes(view.tree),
        "version_labels": view.labels,
        "turn_versions": view.turn_versions,
    }


def _page_context(request: Request, ctx, seen: ThreadView, *, head, usage, pending: bool) -> dict:
    """What a thread page shows outside its tree and conversation: the
    thread's row, its head version (or None), its token totals and whether
    a turn is pending."""
    thread, owner = seen.thread, seen.owner
    live = thread.live_share if owner else None
    return {
        "thread": thread,
        "urls": seen.urls,
        "owner": owner,
        "share_token": seen.share_token,
        "share_url": share_link(str(request.base_url), live.token) if live else None,
        "backend": ctx.backend,
        "head": head,
        "pending": pending,
        "selected": None,
        "partials": ctx.partials,
        "prices": ctx.prices,
        "usage_total": usage if owner else None,
        **model_choice(ctx, thread),
    }


def live_context(request: Request, ctx, seen: ThreadView) -> dict:
    """:func:`thread_context` for the thread page, the shared page and their
    live block, with the tree and conversation (``_live_body.html``) as
    ``live_body``, rendered once per revision of a thread with no turn
    pending and then served from ``ctx.render_cache``
    (``app/render_cache.py``). A cached rendering costs a few small indexed
    queries (pending turns, the head version, the share link; the version
    counts of the tree key are cached too) whatever the thread's length; with
    a turn pending everything is read and rendered afresh. ``tree_key`` and
    ``keep_tree``: see ``static/live.js`` and ``templates/_live_body.html``."""
    thread = seen.thread
    session = object_session(thread)
    shown = {"tree_key": tree_key(session, thread, ctx.render_cache)}
    # A live refresh from a page whose tree is current (static/live.js sends its data-tree as ?tree=)
    # gets an empty hx-preserve placeholder instead, and htmx keeps the tree the page has: a turn
    # starting, running or failing costs its bubble, not the whole tree again.
    shown["keep_tree"] = is_htmx(request) and request.query_params.get("tree") == shown["tree_key"]
    # Likewise the settled turns it names as "id:key" (app.thread_view.turn_key) come back as
    # placeholders when unchanged: such a reply is made for that page alone, so it is not cached.
    shown["kept_turns"] = kept_turns(request)
    if shown["kept_turns"] or has_pending_turn(session, thread.id):
        return {**thread_context(request, ctx, seen), **shown}
    made: list[dict] = []

    def render_body() -> tuple[tuple[Markup, object], int]:
        context = {**thread_context(request, ctx, seen), **shown}
        made.append(context)
        body = Markup(templates.get_template("_live_body.html").render(context))
        return (body, context["view"].usage), len(body)

    key = ("live", thread.id, thread.revision, seen.share_token, shown["keep_tree"])
    body, usage = ctx.render_cache.get_or_make(key, render_body)
    if made:
        context = made[0]
    else:
        head = services.version_row(session, thread.id, thread.head_version)
        context = {**_page_context(request, ctx, seen, head=head, usage=usage, pending=False), **shown}
    context["live_body"] = body
    return context


def kept_turns(request: Request) -> dict[str, str]:
    """Turn id -> key (:func:`app.thread_view.turn_key`) of the settled
    turns an htmx live refresh says its page shows (``?turns=id:key,...``,
    at most :data:`MAX_KEPT_TURNS`); {} for any other request."""
    if not is_htmx(request):
        return {}
    kept = {}
    for part in request.query_params.get("turns", "").split(",")[:MAX_KEPT_TURNS]:
        turn_id, _, key = part.partition(":")
        if turn_id and key:
            kept[turn_id] = key
    return kept


def model_choice(ctx, thread) -> dict:
    """The composer's backend and model pickers: ``backends`` (each a dict
    with ``name``, ``label``, ``models``, ``markup`` and ``conversational``;
    the server's backend first, then the other configured ones),
    ``chosen_backend`` (the thread's last choice while still offered),
    ``models`` (what the chosen backend offers, the default first),
    ``models_json`` / ``backends_json`` (the same, for static/app.js) and
    ``chosen_model`` (the thread's last choice while still offered, else
    the default)."""
    backends = []
    for name in offered_backends(ctx.backend):
        impl = get_backend(name)
        backends.append({"name": name, "label": impl.label or name, "models": impl.offered_models(),
                         "markup": impl.accepts_markup, "conversational": impl.conversational})
    names = [b["name"] for b in backends]
    chosen_backend = thread.backend if thread is not None and thread.backend in names else names[0]
    models = next(b["models"] for b in backends if b["name"] == chosen_backend)
    every = {m["name"]: m for b in backends for m in b["models"]}
    model_names = [m["name"] for m in models]
    chosen = thread.model if thread is not None and thread.model in model_names else (
        model_names[0] if model_names else None)
    return {"models": models, "models_json": json.dumps(every), "chosen_model": chosen,
            "backends": backends, "chosen_backend": chosen_backend,
            "backend_labels": {b["name"]: b["label"] for b in backends},
            "backends_json": json.dumps({b["name"]: {"label": b["label"], "models": [m["name"] for m in b["models"]],
                                                     "markup": b["markup"]} for b in backends})}


#: How many threads the home page shows with thumbnails (the newest first).
RECENT_THREADS = 6

#: Starter prompts on the home page, (button label, the text it puts in the description field).
#: The offline editor only makes plain canvases with text, so it gets prompts it can do.
LOCAL_STARTERS = (
    ("Title card", 'a 1024x1024 image with a navy background and the title "Hello" in white'),
    ("Sunset banner", "a vertical gradient from orange to purple, 1200x628"),
    ("Sale poster", 'a 1080x1080 image with a yellow background and the text "SALE" in black'),
    ("Shop sign", 'a sign saying "OPEN"'),
)
GENERATIVE_STARTERS = (
    ("Watercolour fox", "a watercolour painting of a red fox in a snowy forest at dawn"),
    ("Product photo", "a product photo of a ceramic mug on a wooden table, soft window light"),
    ("Travel poster", 'a retro travel poster of a lighthouse with the title "NORTH CAPE"'),
    ("Cosy café", "an isometric illustration of a tiny, cosy coffee shop at night"),
)
EDIT_STARTERS = (
    ("Black and white", "make it black and white"),
    ("Blur the background", "blur the background"),
    ("Square with a border", "crop it to a square and add a thin white border"),
)


def starters_for(backend_name: str) -> tuple[tuple[str, str], ...]:
    """The home page's starter prompts for the server's backend: canvases for
    the offline editor, free descriptions for backends that generate, edits
    (to go with a photo) for backends that only edit."""
    from app.backends import UnknownBackend

    try:
        impl = get_backend(backend_name)
    except UnknownBackend:
        return ()
    if impl.name == "local":
        return LOCAL_STARTERS
    return GENERATIVE_STARTERS if impl.can_generate else EDIT_STARTERS


templates.env.globals["starters_for"] = starters_for  # home.html, when a page renders it without "starters"


@router.get("/")
def home(request: Request, ctx: ContextDep, session: SessionDep, owner: OwnerDep,
         deleted: str | None = None) -> Response:
    """The home page; ``?deleted=ID`` (where deleting a thread lands) shows
    "Thread deleted. Undo" while that thread can still be restored."""
    threads = services.list_threads(session, owner)
    context = {"threads": threads, "recent": threads[:RECENT_THREADS], "starters": starters_for(ctx.backend)}
    if deleted:
        left = services.undo_seconds_left(session, owner, deleted, ctx.settings.delete_undo_seconds)
        if left > 0:
            context.update(deleted_id=deleted, undo_seconds=left)
    return render(request, "home.html", context)


@router.post("/t/{thread_id}/delete")
def delete_thread(thread_id: str, request: Request, ctx: ContextDep, session: SessionDep, owner: OwnerDep,
                  background: BackgroundTasks) -> Response:
    """Delete the thread (after the page's confirmation dialog) and land on
    the home page with an Undo notice."""
    from app.api import purge_expired

    services.delete_thread(session, owner, thread_id)
    background.add_task(purge_expired, ctx)
    response = redirect(request, f"/?deleted={thread_id}")
    response.background = background
    return response


@router.post("/t/{thread_id}/restore")
def restore_thread(thread_id: str, request: Request, ctx: ContextDep, session: SessionDep,
                   owner: OwnerDep) -> Response:
    """Undo: bring the thread back and open it (404 once the window has passed)."""
    services.restore_thread(session, owner, thread_id, ctx.settings.delete_undo_seconds)
    return redirect(request, thread_page_url(thread_id))


@router.get("/threads/list")
def thread_results(request: Request, session: SessionDep, owner: OwnerDep, q: str = "",
                   current: str = "") -> Response:
    """The sidebar's list of threads, filtered by the search box (``q``,
    ``app.services.search_threads``); ``current`` marks the open thread."""
    q = q[:1000]
    threads = services.search_threads(session, owner, q, 200) if q.strip() else services.list_threads(session, owner)
    return templates.TemplateResponse(request, "_thread_results.html",
                                      {"threads": threads, "q": q, "current_id": current},
                                      headers={"Vary": "HX-Request", "Cache-Control": "no-store"})


@router.post("/threads", dependencies=[TurnLimit])
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
    return redirect(request, thread_page_url(thread.id))


THREAD_BLOCKS = ("content", "live")


@router.get("/t/{thread_id}", dependencies=THREAD_ID_PATH)
def thread_page(request: Request, ctx: ContextDep, owner: OwnerDep) -> Response:
    """The thread: version tree, conversation and composer. htmx gets the
    ``live`` block (polling) or the ``content`` block (navigation). Reads
    one snapshot, and only the newest turns and versions (``app/thread_view.py``),
    in one worker thread (``app.deps.viewing``)."""
    with viewing(request, ctx, snapshot=True) as view:
        context = live_context(request, ctx, view)
        context["threads"] = services.list_threads(object_session(view.thread), owner)
        return render(request, "thread.html", context, block="live", blocks=THREAD_BLOCKS)


@router.get("/t/{thread_id}/turns")
@router.get("/s/{token}/turns")
def earlier_turns(before: int, view: ViewedSnapshot, request: Request, ctx: ContextDep,
                  session: SessionDep) -> Response:
    """The turns before turn ``before`` (its ``pk``), as list items for the
    conversation, with a placeholder for the ones before them; for the
    owner or a link holder (one snapshot)."""
    context = thread_context(request, ctx, view)
    older = older_turns(session, view.thread, before)
    context.update(view=older, turn_versions=older.turn_versions, version_labels=older.labels)
    return render(request, "_earlier_turns.html", context, headers=viewer_headers(view))


@router.get("/t/{thread_id}/tree")
@router.get("/s/{token}/tree")
def all_versions(view: ViewedThread, request: Request, ctx: ContextDep) -> Response:
    """The whole version tree (the page shows the newest versions only)."""
    return render(request, "_version_tree.html", full_tree(thread_context(request, ctx, view)),
                  headers=viewer_headers(view))


@router.get("/t/{thread_id}/versions/{number}")
@router.get("/s/{token}/versions/{number}")
def version_page(number: int, view: ViewedThread, request: Request, ctx: ContextDep, session: SessionDep,
                 owner: OwnerDep) -> Response:
    """One version large, with Continue from here (owner), Download and Compare."""
    threads = services.list_threads(session, owner) if view.owner else None
    return _version(request, ctx, thread_context(request, ctx, view), number, threads=threads)


@router.get("/t/{thread_id}/compare")
@router.get("/s/{token}/compare")
def compare_page(view: ViewedThread, request: Request, ctx: ContextDep, session: SessionDep, owner: OwnerDep,
                 before: int | None = None, after: int | None = None) -> Response:
    """A before/after slider between two versions (default: the head and its parent)."""
    threads = services.list_threads(session, owner) if view.owner else None
    return _compare(request, thread_context(request, ctx, view), before, after, threads=threads)


@router.post("/t/{thread_id}/turns", dependencies=[TurnLimit])
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
    model: Annotated[str, Form()] = "",
    background: Annotated[str, Form()] = "",
    markup: Annotated[UploadFile | None, File()] = None,
    backend: Annotated[str, Form()] = "",
) -> Response:
    options = turn_options(ctx, size=size, quality=quality, mask=mask, references=image, model=model,
                           background=background, markup=markup, backend=backend)
    services.submit_turn(session, ctx.store, owner, thread_id, instruction=instruction, options=options,
                         backend=ctx.backend, limits=ctx.limits)
    return _after_change(request, ctx, session, owner, thread_id)


@router.post("/t/{thread_id}/revert")
def revert(thread_id: str, request: Request, ctx: ContextDep, session: SessionDep, owner: OwnerDep,
           version: Annotated[int, Form()]) -> Response:
    services.revert(session, owner, thread_id, version)
    return _after_change(request, ctx, session, owner, thread_id)


@router.post("/t/{thread_id}/turns/{turn_id}/retry", dependencies=[TurnLimit])
def retry(thread_id: str, turn_id: str, request: Request, ctx: ContextDep, session: SessionDep,
          owner: OwnerDep) -> Response:
    services.retry_turn(session, owner, turn_id, backend=ctx.backend, store=ctx.store, limits=ctx.limits)
    return _after_change(request, ctx, session, owner, thread_id)


@router.post("/t/{thread_id}/turns/{turn_id}/cancel")
def cancel(thread_id: str, turn_id: str, request: Request, ctx: ContextDep, session: SessionDep,
           owner: OwnerDep) -> Response:
    """The pending bubble's Stop button (``app.services.cancel_turn``); a
    turn that has already ended answers 409 with a sentence."""
    services.cancel_turn(session, owner, thread_id, turn_id)
    return _after_change(request, ctx, session, owner, thread_id)


@router.post("/t/{thread_id}/turns/{turn_id}/regenerate", dependencies=[TurnLimit])
def regenerate(thread_id: str, turn_id: str, request: Request, ctx: ContextDep, session: SessionDep,
               owner: OwnerDep) -> Response:
    """The turn footer's Regenerate button (``app.services.regenerate_turn``)."""
    services.regenerate_turn(session, owner, thread_id, turn_id, backend=ctx.backend, store=ctx.store,
                             limits=ctx.limits)
    return _after_change(request, ctx, session, owner, thread_id)


@router.post("/t/{thread_id}/turns/{turn_id}/edit", dependencies=[TurnLimit])
def edit_and_resend(thread_id: str, turn_id: str, request: Request, ctx: ContextDep, session: SessionDep,
                    owner: OwnerDep, instruction: Annotated[str, Form()] = "") -> Response:
    """The edit form of an instruction bubble (``app.services.edit_turn``):
    a new turn from the original's base version."""
    services.edit_turn(session, owner, thread_id, turn_id, instruction, backend=ctx.backend, store=ctx.store,
                       limits=ctx.limits)
    return _after_change(request, ctx, session, owner, thread_id)


@router.get("/t/{thread_id}/turns/{turn_id}")
def one_turn(turn_id: str, view: ViewedSnapshot, request: Request, ctx: ContextDep, session: SessionDep,
             edit: bool = False) -> Response:
    """One turn of the conversation, as its list item; with ``?edit=1`` its
    instruction bubble is a form to edit and send it again (the Edit button
    swaps this in; Cancel or Escape swaps the plain turn back)."""
    from sqlalchemy import select

    from app.models import Turn, Version

    thread = view.thread
    turn = session.scalar(select(Turn).where(Turn.id == turn_id, Turn.thread_id == thread.id))
    if turn is None:
        raise services.NotFound("There is no such turn in this thread.")
    context = thread_context(request, ctx, view)
    version = session.scalar(select(Version).where(Version.thread_id == thread.id, Version.turn_id == turn.id))
    context.update(turn=turn, turn_versions={turn.id: version} if version is not None else {},
                   editing=edit and turn.kind in ("generate", "edit"))
    return templates.TemplateResponse(request, "_turn.html", context,
                                      headers={"Vary": "HX-Request", "Cache-Control": "no-store"})


@router.post("/t/{thread_id}/title")
def rename(thread_id: str, request: Request, session: SessionDep, owner: OwnerDep,
           title: Annotated[str, Form()] = "") -> Response:
    """Rename; htmx gets the sidebar back (out of band) so it shows the new title."""
    thread = services.rename(session, owner, thread_id, title)
    if not is_htmx(request):
        return redirect(request, thread_page_url(thread_id))
    context = {"threads": services.list_threads(session, owner), "thread": thread, "oob": True}
    return templates.TemplateResponse(request, "_thread_list.html", context,
                                      headers={"Vary": "HX-Request", "Cache-Control": "no-store"})


@router.post("/t/{thread_id}/share")
def share(thread_id: str, request: Request, ctx: ContextDep, session: SessionDep, owner: OwnerDep) -> Response:
    services.share(session, owner, thread_id)
    return _share_panel(request, ctx, session, owner, thread_id)


@router.post("/t/{thread_id}/share/revoke")
def revoke(thread_id: str, request: Request, ctx: ContextDep, session: SessionDep, owner: OwnerDep) -> Response:
    services.revoke_share(session, owner, thread_id)
    return _share_panel(request, ctx, session, owner, thread_id)


def _share_panel(request: Request, ctx, session, owner: str, thread_id: str) -> Response:
    if not is_htmx(request):
        return redirect(request, thread_page_url(thread_id) + "#share")
    thread = services.get_thread(session, owner, thread_id)
    session.refresh(thread)
    return render(request, "thread.html", thread_context(request, ctx, ThreadView.of(thread)), block="share_panel")


def _after_change(request: Request, ctx, session, owner: str, thread_id: str) -> Response:
    if not is_htmx(request):
        return redirect(request, thread_page_url(thread_id))
    session.commit()  # end the write; the page reads a fresh snapshot
    read_snapshot(session)
    thread = services.thread_row(session, owner, thread_id)
    session.refresh(thread)
    context = live_context(request, ctx, ThreadView.of(thread))
    context["threads"] = services.list_threads(session, owner)
    return render(request, "thread.html", context, block="live", blocks=THREAD_BLOCKS)


def _version(request: Request, ctx, context: dict, number: int, *, threads=None) -> Response:
    thread = context["thread"]
    version = services.get_version(thread, number)
    full_tree(context)
    turn = next((t for t in thread.turns if t.id == version.turn_id), None) if version.turn_id else None
    context.update(version=version, selected=number, threads=threads or [],
                   children=[v.number for v in thread.versions if v.parent == number],
                   made_by=turn.backend if turn is not None and turn.kind in ("edit", "generate") else None,
                   made_output=turn.output if turn is not None else None)
    from app.archive_routes import credentials  # read back from the signed PNG (app/provenance.py)

    context["credentials"] = credentials(ctx, thread, number)
    headers = {} if context["owner"] else SHARED_HEADERS
    return render(request, "version.html", context, block="content", headers=headers)


def _compare(request: Request, context: dict, before: int | None, after: int | None, *, threads=None) -> Response:
    thread = context["thread"]
    full_tree(context)
    if not thread.versions:
        raise services.NotFound("This thread has no versions to compare yet.")
    after_v = services.get_version(thread, after if after is not None else thread.head_version)
    if before is None:
        before = after_v.parent or thread.versions[0].number
    before_v = services.get_version(thread, before)
    context.update(before=before_v, after=after_v, threads=threads or [])
    headers = {} if context["owner"] else SHARED_HEADERS
    return render(request, "compare.html", context, block="content", headers=headers)


SHARED_HEADERS = {"X-Robots-Tag": "noindex", "Referrer-Policy": "no-referrer"}


def viewer_headers(view: ThreadView) -> dict:
    """The headers a thread response adds for its viewer: none for the
    owner, :data:`SHARED_HEADERS` for a share-link holder."""
    return {} if view.owner else SHARED_HEADERS


def full_tree(context: dict) -> dict:
    """Put every version of the thread into ``context``'s tree and labels
    (pages that pick any version: the version page, compare, "all versions")."""
    thread = context["thread"]
    context.update(lanes=version_tree.lanes(thread.versions), version_labels=version_labels(thread),
                   tree_complete=True)
    return context


@router.get("/s/{token}")
def shared_page(view: ViewedSnapshot, request: Request, ctx: ContextDep) -> Response:
    """The read-only shared thread, with a Fork button (one snapshot)."""
    thread = view.thread
    context = live_context(request, ctx, view)
    if thread.head_version is not None:
        from app.archive_routes import credentials  # the head's, read back from its signed PNG

        context["credentials"] = credentials(ctx, thread, thread.head_version)
    return render(request, "shared.html", context, block="live", blocks=THREAD_BLOCKS, headers=SHARED_HEADERS)


@router.get("/t/{thread_id}/events")
@router.get("/s/{token}/events")
async def thread_events(view: WatchedThread, ctx: ContextDep) -> EventSourceResponse:
    """Server-sent events (WHATWG HTML §9.2) for an open thread page, the
    owner's or a shared one (404 for threads the caller does not own, and
    once a share link is revoked): ``ready`` once connected, then ``changed``
    whenever the thread changes; a ping comment every ``PING_SECONDS``
    seconds keeps proxies from closing the stream. The lookup's session is
    closed before the stream starts (``app.deps.watched_thread``)."""
    shutdown = anyio.Event()  # sse-starlette sets it when the server stops; the stream then ends cleanly
    return EventSourceResponse(changes(ctx.events, view.thread.id, shutdown), ping=PING_SECONDS,
                               shutdown_event=shutdown, shutdown_grace_period=2,
                               headers={"Cache-Control": "no-store", **viewer_headers(view)})


@router.post("/s/{token}/fork", dependencies=[TurnLimit])
def fork(token: str, request: Request, session: SessionDep, owner: OwnerDep) -> Response:
    thread = services.fork(session, owner, token)
    return redirect(request, thread_page_url(thread.id))
