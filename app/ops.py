"""Operations endpoints: ``/readyz`` (readiness) and ``/metrics`` (Prometheus).

``/healthz`` (``app/main.py``) is liveness: the process answers. ``/readyz``
says whether it can do its work: the database answers ``SELECT 1``, the blob
store works (a file store: a probe file created and removed in its root;
S3: its ``check()``, a HeadBucket; else ``exists()`` answers), and Redis answers ``PING``
when ``RETOUCH_REDIS_URL`` is set. 200 with what was checked, or 503 naming
what failed (the reasons go to the log only). Each check has
:data:`CHECK_TIMEOUT_SECONDS`. ``/readyz`` is open like ``/healthz`` (load
balancers and orchestrators probe without credentials; it tells only which
dependency is down). ``/metrics`` stays behind ``RETOUCH_ACCESS_PASSWORD``
when one is set: it shows how busy the instance is, and Prometheus sends the
password as a Bearer token (``authorization: {credentials: ...}`` in the
scrape config).
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from app import metrics

log = logging.getLogger("retouch.ops")
router = APIRouter(include_in_schema=False)

#: Seconds one readiness check may take before it counts as failed.
CHECK_TIMEOUT_SECONDS = 3.0


def check_database(ctx) -> None:
    """Run ``SELECT 1`` on the app's database; raises what the driver raises."""
    with ctx.sessions() as session:
        session.execute(text("SELECT 1"))


def check_storage(ctx) -> None:
    """Raise (OSError, ``StorageError``...) unless the blob store works: a
    file store (one with a ``root`` folder) gets a probe file created and
    removed; another store runs its ``check()`` (S3: HeadBucket) or, lacking
    one, must answer ``exists()`` for a name no blob has."""
    store = ctx.store
    root = getattr(store, "root", None)
    if root is not None:
        probe = Path(root) / f".readyz-{secrets.token_hex(6)}"
        with open(probe, "xb") as f:
            f.write(b"ok")
        os.unlink(probe)
        return
    check = getattr(store, "check", None)  # S3: HeadBucket (app/storage/s3.py)
    if callable(check):
        check()
        return
    exists = getattr(store, "exists", None)
    if exists is None:
        raise OSError(f"{type(store).__name__} offers no check")
    exists("0" * 64)


def check_redis(ctx) -> None:
    """``PING`` Redis through the event hub; raises ``redis.RedisError``."""
    ctx.events.ping()


def checks_for(ctx) -> dict:
    """The checks ``/readyz`` runs for ``ctx``, by name: ``database``,
    ``storage``, and ``redis`` when the events go through Redis."""
    found = {"database": check_database, "storage": check_storage}
    if callable(getattr(ctx.events, "ping", None)):
        found["redis"] = check_redis
    return found


async def _run(name: str, check, ctx) -> bool:
    try:
        await asyncio.wait_for(run_in_threadpool(check, ctx), CHECK_TIMEOUT_SECONDS)
        return True
    except Exception as exc:  # any failure means "not ready"; say which, log why
        log.warning("readiness check %s failed: %s: %s", name, exc.__class__.__name__, exc)
        return False


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """200 ``{"status": "ready", "checks": {name: "ok"}}`` or 503 with
    ``"status": "unavailable"``, ``"failed": [names]`` and each check's result."""
    ctx = request.app.state.ctx
    found = checks_for(ctx)
    results = await asyncio.gather(*(_run(name, check, ctx) for name, check in found.items()))
    checks = {name: "ok" if ok else "failed" for name, ok in zip(found, results)}
    failed = [name for name, ok in checks.items() if ok != "ok"]
    body = {"status": "unavailable" if failed else "ready", "checks": checks}
    if failed:
        body["failed"] = failed
    return JSONResponse(body, status_code=503 if failed else 200, headers={"Cache-Control": "no-store"})


@router.get("/metrics")
async def metrics_endpoint(request: Request) -> Response:
    """This process's Prometheus metrics plus the queue depth from the database."""
    body = await run_in_threadpool(metrics.render, request.app.state.ctx.sessions)
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4, headers={"Cache-Control": "no-store"})
