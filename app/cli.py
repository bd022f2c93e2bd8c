"""The ``retouch`` command line: ``serve``, ``worker``, ``db upgrade``,
``edit``, ``migrate``, ``gc``, ``export`` and ``import`` (``app/archive_cli.py``).

``retouch edit`` exit codes (the contract ``../shared/eval/run.py`` drives):
0 the output was written; 3 the backend declined (reason on stderr, no file
written); 2 bad usage or an unreadable input; 1 any other error; 4 the
backend answered in words only (``openai-chat``: a question back; the words
on stdout, no file written).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DECLINED, EXIT_ANSWERED = 0, 1, 2, 3, 4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retouch", description="Conversational image editing.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="apply migrations, then serve the web app")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=None, metavar="N",
                       help="turns this process runs side by side (default RETOUCH_WORKERS; 0: web only)")
    serve.add_argument("--no-migrate", action="store_true",
                       help="do not apply migrations (the deploy ran `retouch db upgrade`)")

    worker = sub.add_parser("worker", help="run queued turns, without the web app")
    worker.add_argument("--concurrency", type=int, default=None, metavar="N",
                        help="turns run side by side (default RETOUCH_WORKERS, at least 1)")

    db = sub.add_parser("db", help="database commands")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply the migrations (and the job queue's schema) once, then exit")

    sub.add_parser("migrate", help="apply database migrations and exit (same as `db upgrade`)")

    gc = sub.add_parser("gc", help="delete image blobs no version, mask or reference uses")
    gc.add_argument("--grace-seconds", type=float, default=None, metavar="N",
                    help="only delete files older than N seconds (default 3600)")
    gc.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")

    from app.migrate_data import add_parser as add_migrate_data

    add_migrate_data(sub)

    export = sub.add_parser("export", help="write a thread as a zip (signed versions, thread.json, timeline)")
    export.add_argument("thread_id", metavar="THREAD_ID",
                        help="the thread's id (put -- before an older id that starts with -)")
    export.add_argument("-o", "--output", required=True, help="the zip file to write")

    imp = sub.add_parser("import", help="make a new thread from an export zip")
    imp.add_argument("archive", metavar="FILE.zip")
    owner = imp.add_mutually_exclusive_group()
    owner.add_argument("--owner-of", metavar="THREAD_ID", help="give it to the owner of this thread")
    owner.add_argument("--owner", metavar="OWNER_ID", help="give it to this owner id (default: a new owner)")

    edit = sub.add_parser("edit", help="run one edit (or generation) with a backend")
    edit.add_argument("--instruction", required=True, help="what to do, in plain words")
    edit.add_argument("--output", required=True, help="where to write the result (PNG)")
    edit.add_argument("--input", help="the image to edit; omit to generate from the instruction")
    edit.add_argument("--mask", help="PNG mask, white = region to edit")
    edit.add_argument("--reference", action="append", default=[], help="reference image (repeatable)")
    edit.add_argument("--backend", help="backend name (default: RETOUCH_BACKEND, else openai with a key, else local)")
    edit.add_argument("--size", help="output size WIDTHxHEIGHT, 'auto', or 'match' (the input's shape; "
                                     "the default for edits)")
    edit.add_argument("--quality", choices=["low", "medium", "high", "xhigh", "max", "auto"],
                      help="as the model takes (xhigh and max: the gpt-image-2.5 models)")
    edit.add_argument("--model", help="the backend's model (openai: default RETOUCH_OPENAI_MODEL)")
    edit.add_argument("--background", choices=["auto", "opaque", "transparent"])
    edit.add_argument("--markup", help="PNG of the input's size: strokes that guide the edit, transparent "
                                       "elsewhere (models that take markup; not with --mask)")

    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage already
        return int(exc.code or 0)

    if args.command == "serve":
        return _serve(args.host, args.port, workers=args.workers, migrate=not args.no_migrate)
    if args.command == "worker":
        return _worker(args.concurrency)
    if args.command in ("migrate", "db"):
        from app.db import migrate

        migrate()
        return EXIT_OK
    if args.command == "migrate-data":
        from app.migrate_data import migrate_data_command

        return migrate_data_command(args)
    if args.command == "gc":
        return _gc(args.grace_seconds, args.dry_run)
    if args.command in ("export", "import"):
        from app.archive_cli import export_command, import_command

        if args.command == "export":
            return export_command(args.thread_id, args.output)
        return import_command(args.archive, owner=args.owner, owner_of=args.owner_of)
    return _edit(args)


def _gc(grace_seconds: float | None, dry_run: bool) -> int:
    """``retouch gc``: print each removed file and a summary; exit 0, or 2
    for a negative grace period or a database without Retouch tables."""
    from app.config import get_settings
    from app.db import make_engine
    from app.gc import DEFAULT_GRACE_SECONDS, NotARetouchDatabase, collect_garbage
    from app.storage import StorageError, open_store

    grace = DEFAULT_GRACE_SECONDS if grace_seconds is None else grace_seconds
    if grace < 0:
        return _fail(EXIT_USAGE, "--grace-seconds must be 0 or more")
    settings = get_settings()
    engine = make_engine(settings.sqlalchemy_url)
    try:
        result = collect_garbage(engine, open_store(settings), grace_seconds=grace, dry_run=dry_run,
                                 purge_deleted_after=settings.delete_undo_seconds)
    except (NotARetouchDatabase, StorageError) as exc:
        return _fail(EXIT_USAGE, str(exc))
    finally:
        engine.dispose()
    verb = "would remove" if dry_run else "removed"
    if result.threads_purged:
        print(f"{'would purge' if dry_run else 'purged'} {result.threads_purged} deleted threads")
    for path in result.removed:
        print(f"{verb} {path}")
    print(
        f"{verb} {result.blobs_removed} blobs, {result.thumbnails_removed} thumbnails and "
        f"{result.temp_files_removed} temporary files ({result.bytes_freed} bytes); "
        f"kept {result.kept_young} unreferenced files younger than {grace:g} s; "
        f"{result.referenced} images are in use"
        + (f"; {verb} {result.sources_removed} vendors' original result files (.source) too, "
           "counted in the bytes" if result.sources_removed else "")
    )
    for sha in result.missing:
        print(f"warning: the image {sha} is in use but its file is missing", file=sys.stderr)
    return EXIT_OK


def _serve(host: str, port: int, *, workers: int | None = None, migrate: bool = True) -> int:
    """``retouch serve``: migrate (unless ``migrate`` is False), then serve
    with ``workers`` turn workers in this process (None: ``RETOUCH_WORKERS``;
    0: none). The options reach the app through its environment settings."""
    import uvicorn

    from app.config import get_settings
    from app.db import migrate as apply_migrations

    if workers is not None:
        if workers < 0:
            return _fail(EXIT_USAGE, "--workers must be 0 or more")
        os.environ["RETOUCH_WORKERS"] = str(workers)
    if migrate:
        apply_migrations()
    os.environ["RETOUCH_MIGRATE_ON_START"] = "false"  # done just now, or left to `retouch db upgrade`
    get_settings.cache_clear()
    uvicorn.run("app.main:app", host=host, port=port, log_level="info", proxy_headers=False)
    return EXIT_OK


def _worker(concurrency: int | None) -> int:
    """``retouch worker``: run queued turns until SIGTERM or SIGINT, then
    stop claiming and wait (up to 10 s) for running turns; one still running
    is taken over by another worker when its lease runs out. ``concurrency``
    turns run side by side (None: ``RETOUCH_WORKERS``, at least 1). Does
    not migrate: run ``retouch db upgrade`` first. Returns the exit code."""
    import asyncio
    import logging
    import signal

    from app import metrics
    from app.config import get_settings
    from app.events import make_events
    from app.partials import make_partials
    from app.storage import open_store
    from app.db import make_engine, make_sessionmaker
    from app.worker import TurnWorker

    if concurrency is not None and concurrency < 1:
        return _fail(EXIT_USAGE, "--concurrency must be 1 or more")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    engine = make_engine(settings.sqlalchemy_url)
    store = open_store(settings)  # the data folder, or S3 (RETOUCH_STORAGE_URL)
    events = make_events(settings)  # across processes when the settings say so (Redis, PostgreSQL), else in-process
    partials = make_partials(settings)
    sessions = make_sessionmaker(engine)
    worker = TurnWorker(sessions, store, workers=concurrency or max(1, settings.workers),
                        on_change=events.publish, partials=partials, lease_seconds=settings.lease_seconds,
                        database_url=settings.sqlalchemy_url, on_ended=metrics.turn_ended)
    if settings.metrics_port:  # this process has no web server: its own /metrics port
        metrics.serve_in_background(settings.metrics_port, sessions)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        events.start()
        await worker.start()
        logging.getLogger("retouch").info("worker running %d turns side by side", worker.workers)
        try:
            await stop.wait()
        finally:
            await worker.stop()
            await events.stop()

    try:
        asyncio.run(run())
    finally:
        engine.dispose()
    return EXIT_OK


def _fail(code: int, message: str) -> int:
    print(f"retouch: {message}", file=sys.stderr)
    return code


def _edit(args: argparse.Namespace) -> int:
    from app.backends import (
        BackendDeclined,
        BackendFailed,
        EditRequest,
        OptionRejected,
        UnknownBackend,
        default_backend_name,
        get_backend,
    )
    from app.config import get_settings
    from app.imaging import ImageRejected, decode_image, decode_markup, decode_mask, encode_png
    from app.services import MAX_REFERENCES, InvalidInput, clean_options

    settings = get_settings()
    limits = {"max_bytes": settings.max_upload_bytes, "max_pixels": settings.max_upload_pixels,
              "max_side": settings.max_upload_side}
    instruction = args.instruction.strip()
    if not instruction or len(instruction) > 4000:
        return _fail(EXIT_USAGE, "the instruction must be 1 to 4000 characters")
    if (args.mask or args.markup) and not args.input:
        return _fail(EXIT_USAGE, "--mask and --markup need --input")
    if args.mask and args.markup:
        return _fail(EXIT_USAGE, "use --mask (limits the edit) or --markup (guides it), not both")
    if len(args.reference) > MAX_REFERENCES:
        return _fail(EXIT_USAGE, f"at most {MAX_REFERENCES} --reference images")
    try:
        size, quality, background = clean_options(args.size, args.quality, args.background)
    except InvalidInput as exc:
        return _fail(EXIT_USAGE, exc.message)

    def read(path: str) -> bytes:
        return Path(path).read_bytes()

    try:
        # The file's own pixel values: an exact edit must not colour-convert them
        # (uploads to the web app are converted to sRGB once, as version 1).
        image = decode_image(read(args.input), **limits, what="input image", to_srgb=False) if args.input else None
        mask = decode_mask(read(args.mask), image.size, **limits) if args.mask else None
        markup = decode_markup(read(args.markup), image.size, **limits) if args.markup else None
        refs = tuple(decode_image(read(p), **limits, what="reference image", to_srgb=False) for p in args.reference)
    except OSError as exc:
        return _fail(EXIT_USAGE, f"cannot read {exc.filename}: {exc.strerror}")
    except ImageRejected as exc:
        return _fail(EXIT_USAGE, exc.message)

    try:
        backend = get_backend(args.backend or default_backend_name())
    except UnknownBackend as exc:
        return _fail(EXIT_USAGE, str(exc.args[0]))

    request = EditRequest(
        instruction=instruction,
        image=image,
        mask=mask,
        references=refs,
        size=size,
        quality=quality,
        model=args.model,
        background=background,
        markup=markup,
    )
    try:
        result = backend.edit(request)
    except OptionRejected as exc:
        return _fail(EXIT_USAGE, exc.message)
    except BackendDeclined as exc:
        return _fail(EXIT_DECLINED, f"declined: {exc.message}")
    except BackendFailed as exc:
        return _fail(EXIT_ERROR, f"failed: {exc.message}")

    if result.image is None:  # words only: a question back, or a refusal
        print(result.reply or "")
        return EXIT_ANSWERED
    if result.reply:
        print(result.reply)
    out = Path(args.output)
    data = encode_png(result.image)
    try:
        # Write atomically so a crash never leaves a half-written output.
        fd, tmp = tempfile.mkstemp(dir=out.parent or ".", prefix=".retouch-", suffix=".png")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, out)
    except OSError as exc:
        return _fail(EXIT_ERROR, f"cannot write {out}: {exc.strerror}")
    if result.message:
        print(result.message, file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
