"""The FastAPI application: ``create_app(settings)`` wires settings, the
database, the blob store, the worker, the routes and the middleware."""
from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette_compress import CompressMiddleware
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app import access, api, archive_routes, metrics, ops, pages, provenance
from app.backends import default_backend_name, get_backend, offered_backends
from app.config import Settings, get_settings
from app.static_files import HashedStaticFiles
from app.db import make_engine, make_sessionmaker, migrate
from app.deps import MAX_FILES_PER_REQUEST, MULTIPART_OVERHEAD, AppContext
from app.http_limits import HeadAsGetMiddleware, RequestLimitsMiddleware, wants_json
from app.rate_limit import RateLimiter
from app.security import PublicURLMiddleware, SecurityMiddleware, load_secret_key, parse_public_url
from app.imaging import ALLOWED_FORMATS
from app.services import MAX_INSTRUCTION_CHARS, MAX_REFERENCES, MAX_TITLE_CHARS, InvalidInput, NotFound
from app.storage import open_store
from app.events import make_events
from app.partials import make_partials
from app.usage import parse_prices
from app.worker import TurnWorker

ROOT = Path(__file__).resolve().parent.parent
#: ``Retry-After`` seconds sent with a 503 when the pixel budget is full.
BUSY_RETRY_AFTER_SECONDS = 10
log = logging.getLogger("retouch")
#: Responses smaller than this many bytes are sent uncompressed (the headers would eat the gain).
COMPRESS_MINIMUM_BYTES = 1024
#: The server's fixed input limits, for templates (the Jinja global ``limits``): they render them as
#: ``accept``/``maxlength``/``data-*`` attributes, which the front end (static/attachments.js) enforces,
#: so no limit is copied into JavaScript. Per-instance limits (``max_upload_bytes``) come from settings.
TEMPLATE_LIMITS = {
    "max_references": MAX_REFERENCES,
    "max_instruction_chars": MAX_INSTRUCTION_CHARS,
    "max_title_chars": MAX_TITLE_CHARS,
    "image_types": ",".join("image/" + f.lower() for f in ALLOWED_FORMATS),
    "max_kept_turns": pages.MAX_KEPT_TURNS,
}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. The lifespan applies migrations, queues turns a crash
    interrupted and starts the worker; shutdown stops it."""
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    backend_name = default_backend_name(settings)
    backend = get_backend(backend_name)  # fail at start-up, not at the first turn, for a bad RETOUCH_BACKEND
    engine = make_engine(settings.sqlalchemy_url)
    sessions = make_sessionmaker(engine)
    store = open_store(settings)  # the data folder, or S3 (RETOUCH_STORAGE_URL)
    events = make_events(settings)  # in-process, or across processes: Redis, else PostgreSQL LISTEN/NOTIFY
    partials = make_partials(settings)
    worker = TurnWorker(sessions, store, workers=settings.workers, on_change=events.publish, partials=partials,
                        lease_seconds=settings.lease_seconds, database_url=settings.sqlalchemy_url,
                        on_ended=metrics.turn_ended)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.migrate_on_start:  # off: the deploy runs `retouch db upgrade` once
            await run_in_threadpool(migrate, settings.sqlalchemy_url)
        # Starlette runs each `def` endpoint through anyio's default limiter (40 threads by default).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        events.start()
        await worker.start()
        for name in offered_backends(backend_name):  # every backend the composer offers
            for problem in (backend if name == backend_name else get_backend(name)).problems():
                log.error("%s Turns that use it fail with this message until it is changed.", problem)
        log.info("Retouch is serving with the %s backend; data in %s", backend_name, settings.data_dir.resolve())
        settle_garbage_collector()
        try:
            yield
        finally:
            await worker.stop()
            await events.stop()
            engine.dispose()

    app = FastAPI(title="Retouch", version="0.1.0", lifespan=lifespan,
                  description="Conversational, multi-turn image editing.")
    app.state.ctx = AppContext(settings=settings, sessions=sessions, store=store, worker=worker,
                               events=events, partials=partials, backend=backend_name,
                               prices=parse_prices(settings.openai_prices), turn_limiter=RateLimiter(settings.turn_rate_limit, "turns"),
                               address_limiter=RateLimiter(settings.anonymous_rate_limit, "turns without a cookie"))
    # The C2PA signing identity: RETOUCH_C2PA_CERT/KEY, or the instance certificate, made now on a first start.
    provenance.for_settings(settings)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        """Liveness: the process answers. First among the routes, and run on the event loop (no
        worker thread), so a probe costs the least the middleware allows; ``/readyz`` checks more."""
        return {"status": "ok"}

    app.include_router(archive_routes.api_router)
    app.include_router(api.router)
    app.include_router(archive_routes.page_router)
    app.include_router(pages.router)
    app.include_router(access.router)
    app.include_router(ops.router)  # /readyz, /metrics
    static_files = HashedStaticFiles(ROOT / "static")
    pages.templates.env.globals["static"] = static_files.url
    pages.templates.env.globals["limits"] = TEMPLATE_LIMITS
    app.mount("/static", static_files, name="static")
    secret_key = load_secret_key(settings.secret_key, settings.data_dir)
    # Each add_middleware wraps the ones before it, so requests meet them bottom-up:
    # proxy headers, security (headers on every response, 500s included), Host check,
    # public URL, HEAD as GET, the password gate, then body and path limits.
    # Innermost: compress text responses (HTML, JSON, CSS/JS, server-sent events per message) with
    # zstd, brotli or gzip, as the client accepts; images are already compressed and pass through.
    app.add_middleware(CompressMiddleware, minimum_size=COMPRESS_MINIMUM_BYTES)
    app.add_middleware(RequestLimitsMiddleware, max_upload_bytes=settings.max_upload_bytes,
                       max_form_bytes=settings.max_upload_bytes * MAX_FILES_PER_REQUEST + MULTIPART_OVERHEAD,
                       max_json_bytes=settings.max_json_bytes, body_timeout=settings.body_timeout)
    access.install(app, settings, secret_key)  # open, password or OpenID Connect (app/accounts.py)
    app.add_middleware(HeadAsGetMiddleware)
    if settings.public_url:
        parse_public_url(settings.public_url)  # a bad one stops the start, not the first request
        app.add_middleware(PublicURLMiddleware, public_url=settings.public_url)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=_allowed_hosts(settings.allowed_hosts),
                       www_redirect=False)
    app.add_middleware(SecurityMiddleware, secret_key=secret_key, secure_cookies=settings.secure_cookies)
    if settings.forwarded_allow_ips:
        # app/cli.py runs uvicorn with proxy_headers=False: the app decides whom to trust.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips.strip())

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound):
        return error_response(request, 404, exc.message)

    @app.exception_handler(InvalidInput)
    async def invalid(request: Request, exc: InvalidInput):
        # 503: the image decoder is busy (app/image_budget.py); RFC 9110 §10.2.3.
        headers = {"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)} if exc.status == 503 else None
        return error_response(request, exc.status, exc.message, headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error_response(request, exc.status_code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        if wants_json(request.url.path):
            return JSONResponse({"detail": _readable(exc)}, status_code=422)
        return pages.error_page(request, 422, _readable(exc))

    return app


#: Allocations between young-generation collections, and young (middle)
#: collections between middle (full) ones. CPython's defaults are (700, 10, 10).
GC_THRESHOLDS = (10_000, 50, 100)
_gc_settled = False


def settle_garbage_collector() -> None:
    """After start-up: collect once, move everything alive (modules, the
    app, compiled templates, SQLAlchemy's mappers) into the permanent
    generation that collections never scan (``gc.freeze``, Python docs
    "gc — Garbage Collector interface"), and collect the young generations
    less often. Full collections had stalled the process for 106-140 ms
    every 3-4 s under load, which set the p99. Once per process: a
    process that builds many apps (the tests) freezes only the first."""
    global _gc_settled
    if _gc_settled:
        return
    _gc_settled = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _allowed_hosts(value: str) -> list[str]:
    """``RETOUCH_ALLOWED_HOSTS`` as a list for ``TrustedHostMiddleware``; blank means ``*``."""
    hosts = [h.strip() for h in value.split(",") if h.strip()]
    return hosts or ["*"]


def error_response(request: Request, status: int, detail, headers=None):
    """JSON ``{"detail": ...}`` for the API, an HTML page (or htmx fragment)
    for pages."""
    if wants_json(request.url.path):
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)
    return pages.error_page(request, status, detail if isinstance(detail, str) else str(detail), headers)


def _readable(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path"))
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "The request is not valid."


def __getattr__(name: str):
    # ``uvicorn app.main:app`` builds the app from the environment on first use.
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)
