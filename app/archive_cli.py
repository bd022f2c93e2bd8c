"""``retouch export`` and ``retouch import``: the same :mod:`app.archive`
functions the API and pages call, on the database and data folder the
settings name. Exit codes: 0 done; 2 bad usage, an unknown thread or a zip
that cannot be imported (the reason on stderr); 1 any other error."""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _fail(code: int, message: str) -> int:
    print(f"retouch: {message}", file=sys.stderr)
    return code


def _open():
    from app import provenance
    from app.config import get_settings
    from app.db import make_engine, make_sessionmaker, migrate
    from app.storage import open_store

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    return settings, engine, make_sessionmaker(engine), open_store(settings), provenance.for_settings(settings)


def export_command(thread_id: str, output: str) -> int:
    """Write thread ``thread_id`` (any owner's) to ``output`` as an export
    zip, atomically; prints what it wrote. Returns the exit code."""
    from app import archive, services

    settings, engine, sessions, store, prov = _open()
    out = Path(output)
    try:
        fd, tmp = tempfile.mkstemp(dir=out.parent if str(out.parent) else ".", prefix=".retouch-", suffix=".zip")
        try:
            started = time.perf_counter()
            with os.fdopen(fd, "wb") as fh, sessions() as session:
                thread = archive.export_thread(session, store, prov, None, thread_id, fh)
                count = len(thread.versions)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except services.NotFound:
        return _fail(EXIT_USAGE, f"there is no thread {thread_id!r}")
    except FileNotFoundError as exc:
        return _fail(EXIT_ERROR, f"an image of the thread is missing from storage ({exc.filename})")
    except OSError as exc:
        return _fail(EXIT_ERROR, f"cannot write {out}: {exc.strerror}")
    finally:
        engine.dispose()
    print(f"wrote {out} ({count} versions, {out.stat().st_size} bytes) in {time.perf_counter() - started:.2f} s")
    return EXIT_OK


def import_command(path: str, *, owner: str | None = None, owner_of: str | None = None) -> int:
    """Import the export zip at ``path`` as a new thread owned by ``owner``,
    by the owner of thread ``owner_of``, or by a new owner id; prints the
    new thread's id and owner. Returns the exit code."""
    from app import archive, services
    from app.models import Thread, new_id
    from app.services import Limits

    settings, engine, sessions, store, _ = _open()
    limits = Limits(settings.max_upload_bytes, settings.max_upload_pixels, settings.max_upload_side)
    try:
        with sessions() as session:
            if owner_of:
                source = session.get(Thread, owner_of)
                if source is None:
                    return _fail(EXIT_USAGE, f"there is no thread {owner_of!r} (--owner-of)")
                owner = source.owner_id
            new_owner = not owner
            owner = owner or new_id()
            thread = archive.import_file(session, store, owner, Path(path), limits)
            print(f"imported thread {thread.id} ({len(thread.versions)} versions) for owner {owner}")
            if new_owner:
                print("note: that is a new owner id, which no browser has; use --owner-of THREAD_ID to give the "
                      "thread to the person who owns THREAD_ID", file=sys.stderr)
    except services.InvalidInput as exc:
        return _fail(EXIT_USAGE, exc.message)
    except OSError as exc:
        return _fail(EXIT_USAGE, f"cannot read {path}: {exc.strerror}")
    finally:
        engine.dispose()
    return EXIT_OK
