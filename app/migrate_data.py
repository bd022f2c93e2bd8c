"""``retouch migrate-data``: move an instance to another database and store,
typically the embedded SQLite file and data folder to PostgreSQL and S3.

Order of work, so that a failure leaves nothing half-done that a rerun
cannot finish:

1. **Check.** The source database must be a Retouch database (it has an
   ``alembic_version`` row). The target database is migrated with Alembic
   to the *same* revision, then must be empty (every table without rows):
   a non-empty target is refused, nothing is written.
2. **Images.** Every object of the source store's blob area (images,
   thumbnails, previews, vendors' ``.source`` files) is copied to the
   target store, written once (``Store.put_object``), so a rerun copies
   only what is missing. Images and ``.source`` files are named by the
   sha256 of their bytes: each is hashed when read from the source and
   again when read back from the target, and a mismatch is an error.
   Thumbnails and previews are named after their image, not their own
   bytes; they are copied as they are. The signed-copy cache is not
   copied: it is made again on demand.
3. **Rows.** Every table's rows, in foreign-key order (SQLAlchemy
   ``MetaData.sorted_tables`` of the models' metadata; a table the
   migrations made that no model maps is reflected from the source), in
   one transaction on the target, read from one snapshot of the source.
   PostgreSQL sequences of integer keys are then moved past the copied
   keys (``setval``), so new rows do not collide.
4. **Verify.** Every image a row refers to must be in the target store.

Stop the server first: rows or images written during the copy may be left
behind.
"""
from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import DateTime, Engine, Integer, MetaData, Table, func, insert, inspect, select, text

from app.storage import Store

#: Rows read and inserted per batch.
BATCH_ROWS = 1000
#: Objects copied at once (S3 requests are mostly waiting on the network).
COPY_THREADS = 8
_SELF_NAMED = re.compile(r"^[0-9a-f]{2}/(?P<sha>[0-9a-f]{64})\.(png|source)$")
_DERIVED = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{64}\.(thumb\.webp|w\d{1,5}\.webp)$")


class MigrateDataError(RuntimeError):
    """The move cannot be done or did not verify; the message says why."""


class MigrateRefused(MigrateDataError):
    """Nothing was written: the source is not a Retouch database, or the
    target is not empty (or is the source)."""


@dataclass
class MigrateResult:
    """What one run did: ``rows`` per table (name: count), objects
    ``copied`` and ``already_there`` in the target store, and their
    ``bytes_copied``."""

    revision: str = ""
    rows: dict[str, int] = field(default_factory=dict)
    copied: int = 0
    already_there: int = 0
    bytes_copied: int = 0


def source_revision(engine: Engine) -> str:
    """The Alembic revision of ``engine``'s database. Raises
    :class:`MigrateDataError` when it has none (not a Retouch database)."""
    if "alembic_version" not in inspect(engine).get_table_names():
        raise MigrateRefused(f"{_name(engine)} is not a Retouch database (no alembic_version table)")
    with engine.connect() as conn:
        rev = conn.scalar(text("SELECT version_num FROM alembic_version"))
    if not rev:
        raise MigrateRefused(f"{_name(engine)} has no Alembic revision; run `retouch migrate` on it first")
    return rev


def migrate_to(url: str, revision: str) -> None:
    """Apply the Alembic migrations to ``url`` up to ``revision`` (as
    :func:`app.db.migrate` does up to head). Raises what Alembic raises."""
    from alembic import command
    from alembic.config import Config

    from app.db import MIGRATIONS_DIR, make_engine

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["url"] = url
    if url.startswith("sqlite"):
        make_engine(url).dispose()
    command.upgrade(cfg, revision)


def _name(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _tables(source: Engine) -> list[Table]:
    """The source's tables (but ``alembic_version``) in foreign-key order:
    the models' tables as mapped, then any other table as reflected."""
    from app import models  # noqa: F401  (registers the tables)
    from app.db import Base

    present = set(inspect(source).get_table_names()) - {"alembic_version"}
    # SQLite's search tables (FTS5, migration 0007) and their shadow tables are derived: the target's
    # own triggers or indexes fill them.
    present = {n for n in present if not n.startswith(("threads_fts", "turns_fts"))}
    tables = [t for t in Base.metadata.sorted_tables if t.name in present]
    extra = sorted(present - {t.name for t in tables})
    if extra:
        reflected = MetaData()
        reflected.reflect(source, only=extra)
        tables += list(reflected.sorted_tables)
    return tables


def check_empty(target: Engine) -> None:
    """Raise :class:`MigrateDataError` when a table of ``target`` (other
    than ``alembic_version``) has a row."""
    with target.connect() as conn:
        for name in inspect(target).get_table_names():
            if name == "alembic_version":
                continue
            count = conn.scalar(select(func.count()).select_from(Table(name, MetaData())))
            if count:
                raise MigrateRefused(f"the target database {_name(target)} is not empty (table {name} has "
                                       f"{count} rows); migrate-data only fills a new, empty database")


def copy_rows(source: Engine, target: Engine, *, log: Callable[[str], None] = print) -> dict[str, int]:
    """Copy every row of every table from ``source`` to ``target`` (same
    schema revision, target empty) in foreign-key order, in one target
    transaction, reading one source snapshot. Returns rows per table."""
    tables = _tables(source)
    counts: dict[str, int] = {}
    with source.connect() as src, target.begin() as dst:
        if source.dialect.name == "sqlite":
            src.exec_driver_sql("BEGIN")  # one read snapshot for every table (WAL)
        else:
            src.execution_options(isolation_level="REPEATABLE READ")
        for table in tables:
            order = list(table.primary_key.columns) or list(table.columns)
            result = src.execution_options(yield_per=BATCH_ROWS).execute(select(table).order_by(*order))
            n = 0
            zoned = [c.name for c in table.columns if isinstance(c.type, DateTime) and c.type.timezone]
            for batch in result.mappings().partitions(BATCH_ROWS):
                dst.execute(insert(table), [_utc(dict(row), zoned) for row in batch])
                n += len(batch)
            counts[table.name] = n
            log(f"  {table.name}: {n} rows")
        if target.dialect.name == "postgresql":
            _advance_sequences(dst, tables)
    return counts


def _utc(row: dict, zoned: list[str]) -> dict:
    """``row`` with the naive datetimes of ``zoned`` columns marked UTC:
    SQLite keeps no time zone, and Retouch writes every time in UTC
    (``app.models.utcnow``); PostgreSQL would read a naive value in its
    session's ``TimeZone``."""
    for name in zoned:
        value = row.get(name)
        if isinstance(value, datetime.datetime) and value.tzinfo is None:
            row[name] = value.replace(tzinfo=datetime.timezone.utc)
    return row


def _advance_sequences(conn, tables: list[Table]) -> None:
    """Move each serial/identity sequence of an integer primary key past
    the largest copied key (PostgreSQL ``setval``, ``pg_get_serial_sequence``)."""
    for table in tables:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not isinstance(keys[0].type, Integer):
            continue
        seq = conn.scalar(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": keys[0].name})
        if seq:
            conn.execute(text(f'SELECT setval(:s, COALESCE((SELECT MAX("{keys[0].name}") FROM "{table.name}"), 0) + 1, '
                              "false)"), {"s": seq})


def copy_objects(source: Store, target: Store, *, threads: int = COPY_THREADS,
                 log: Callable[[str], None] = print) -> tuple[int, int, int, set[str]]:
    """Copy every object of ``source``'s blob area to ``target`` (written
    once; present objects are skipped after verifying them). Returns
    (copied, already there, bytes copied, the sha256 of every image copied
    or present). Raises :class:`MigrateDataError` listing each object whose
    bytes do not match its name (in the source or in the target copy)."""
    names = [e.name for e in source.entries() if _SELF_NAMED.match(e.name) or _DERIVED.match(e.name)]
    problems: list[str] = []

    def verify(name: str, data: bytes, where: str) -> bool:
        m = _SELF_NAMED.match(name)
        if m and hashlib.sha256(data).hexdigest() != m["sha"]:
            problems.append(f"{where} {name}: sha256 {hashlib.sha256(data).hexdigest()} does not match its name")
            return False
        return True

    def one(name: str) -> tuple[bool, int]:
        there = target.stat(name)
        if there is not None:
            if _SELF_NAMED.match(name):
                verify(name, target.get_object(name), "target")
            return False, 0
        data = source.get_object(name)
        if not verify(name, data, "source"):
            return False, 0
        target.put_object(name, data)
        if _SELF_NAMED.match(name):
            verify(name, target.get_object(name), "target")
        return True, len(data)

    copied = present = nbytes = 0
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for i, (was_copied, size) in enumerate(pool.map(one, names), 1):
            copied += was_copied
            present += not was_copied
            nbytes += size
            if i % 500 == 0:
                log(f"  {i}/{len(names)} objects")
    if problems:
        raise MigrateDataError("images did not verify:\n  " + "\n  ".join(sorted(problems)))
    shas = {m["sha"] for n in names if (m := _SELF_NAMED.match(n)) and n.endswith(".png")}
    return copied, present, nbytes, shas


def migrate_data(source_engine: Engine, source_store: Store, target_url: str, target_store: Store, *,
                 log: Callable[[str], None] = print, threads: int = COPY_THREADS) -> MigrateResult:
    """Move the instance in ``source_engine`` + ``source_store`` to the
    database at ``target_url`` and ``target_store`` (see the module
    docstring for the steps). Returns a :class:`MigrateResult`. Raises
    :class:`MigrateDataError` for a source that is not a Retouch database, a
    non-empty target, images that do not verify, or images rows refer to
    that neither store has."""
    from app.db import make_engine
    from app.gc import referenced_digests

    if source_engine.url.render_as_string(hide_password=False) == target_url:
        raise MigrateRefused("the target database is the source database")
    result = MigrateResult(revision=source_revision(source_engine))
    log(f"source: {_name(source_engine)} at revision {result.revision}, images in {source_store.describe()}")
    migrate_to(target_url, result.revision)
    target = make_engine(target_url)
    try:
        check_empty(target)
        log(f"copying images to {target_store.describe()}")
        result.copied, result.already_there, result.bytes_copied, shas = copy_objects(
            source_store, target_store, threads=threads, log=log)
        log(f"copying rows to {_name(target)}")
        result.rows = copy_rows(source_engine, target, log=log)
        missing = sorted(s for s in referenced_digests(target) - shas if not target_store.exists(s))
        if missing:
            raise MigrateDataError(f"{len(missing)} images rows refer to are in neither store (they were "
                                   f"missing in the source too): {', '.join(missing[:10])}")
    finally:
        target.dispose()
    return result


# ---------------------------------------------------------------- command line


def add_parser(sub) -> None:
    """Add ``retouch migrate-data`` to the ``argparse`` subparsers ``sub``."""
    p = sub.add_parser("migrate-data", help="copy this instance (rows and images) to a new database and store, "
                                            "e.g. SQLite + data folder to PostgreSQL + S3")
    p.add_argument("--to-database", required=True, metavar="URL",
                   help="the target SQLAlchemy URL (a new, empty database), e.g. postgresql+psycopg://...")
    p.add_argument("--to-storage", required=True, metavar="URL",
                   help="the target store: s3://bucket/prefix or file:///folder")
    p.add_argument("--to-s3-endpoint", metavar="URL",
                   help="the target's S3-compatible endpoint (default RETOUCH_S3_ENDPOINT_URL)")
    p.add_argument("--from-database", metavar="URL", help="the source (default: RETOUCH_DATABASE_URL or the "
                                                          "SQLite file in RETOUCH_DATA_DIR)")
    p.add_argument("--from-storage", metavar="URL",
                   help="the source store (default: RETOUCH_STORAGE_URL or RETOUCH_DATA_DIR/blobs)")
    p.add_argument("--threads", type=int, default=COPY_THREADS, metavar="N",
                   help=f"objects copied at once (default {COPY_THREADS})")


def migrate_data_command(args) -> int:
    """Run ``retouch migrate-data`` with parsed ``args``; print progress and
    a summary. Returns the exit status: 0 done, 2 refused (a source that is
    not a Retouch database, a non-empty target, a bad storage URL or an
    unusable bucket), 1 failed (images that did not verify, any other
    error; a rerun resumes the image copy)."""
    import sys

    from app.config import get_settings
    from app.db import make_engine
    from app.storage import StorageError, store_for_url

    settings = get_settings()
    source_url = args.from_database or settings.sqlalchemy_url
    source = make_engine(source_url)
    try:
        source_store = store_for_url(args.from_storage if args.from_storage is not None else settings.storage_url,
                                     data_dir=settings.data_dir, endpoint_url=settings.s3_endpoint_url)
        target_store = store_for_url(args.to_storage, data_dir=settings.data_dir,
                                     endpoint_url=args.to_s3_endpoint or settings.s3_endpoint_url)
        result = migrate_data(source, source_store, args.to_database, target_store, threads=args.threads)
    except (StorageError, MigrateDataError) as exc:
        print(f"retouch: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, (StorageError, MigrateRefused)) else 1
    finally:
        source.dispose()
    print(f"done: {sum(result.rows.values())} rows in {len(result.rows)} tables; {result.copied} objects copied "
          f"({result.bytes_copied} bytes), {result.already_there} already there; revision {result.revision}")
    return 0
