"""Database engine, sessions and migrations.

SQLite (the default) runs in WAL mode with a busy timeout and foreign keys
on (https://www.sqlite.org/wal.html, https://www.sqlite.org/foreignkeys.html);
PostgreSQL is used through psycopg 3. The schema is owned by the Alembic
migrations in ``migrations/``, applied by :func:`migrate` at start-up.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, MetaData, create_engine, event, text
from sqlalchemy.orm import DeclarativeBase, sessionmaker

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = ROOT / "migrations"

#: Constraint names Alembic can refer to (SQLAlchemy docs, "Configuring
#: Constraint Naming Conventions").
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 10_000
#: Any constant: the PostgreSQL advisory lock held while migrating.
MIGRATION_LOCK = 0x72657475  # "retu"
#: Pooled SQLite connections kept open (see make_engine).
SQLITE_POOL_SIZE = 40


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``. For SQLite the parent folder is created
    and each connection gets WAL mode, ``busy_timeout`` (10 s) and
    ``foreign_keys=ON``."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One pooled connection per worker thread that may hold one (anyio's default limiter is 40
        # threads): connections past the pool are closed after use and reopened, with their PRAGMAs.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                               pool_size=SQLITE_POOL_SIZE, max_overflow=10)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def make_sessionmaker(engine: Engine) -> sessionmaker:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def migrate(url: str | None = None) -> None:
    """Apply all Alembic migrations to ``url`` (default: the configured
    database), creating the database file if needed. On PostgreSQL, also
    the job queue's schema (``app.jobs.apply_schema``), all under an
    advisory lock, so processes starting together migrate once."""
    from alembic import command
    from alembic.config import Config

    from app.config import get_settings

    url = url or get_settings().sqlalchemy_url
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["url"] = url
    if url.startswith("sqlite"):
        make_engine(url).dispose()  # creates the folder
        command.upgrade(cfg, "head")
        from app.search_index import ensure_sqlite_search  # triggers a table rebuild dropped

        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                ensure_sqlite_search(conn)
        finally:
            engine.dispose()
        return
    engine = make_engine(url)
    try:
        # Several processes may start at once: one migrates, the others wait, then find nothing to do.
        with engine.connect() as lock:
            lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            try:
                command.upgrade(cfg, "head")
                from app.jobs import apply_schema

                apply_schema(engine)  # the job queue's tables (procrastinate), once
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                lock.commit()
    finally:
        engine.dispose()


def read_snapshot(session) -> None:
    """Make the rest of ``session``'s transaction read one consistent
    snapshot, for a request that reads a thread in several queries (its
    page, its JSON): a turn is never seen finished without its version, nor
    a version without its finished turn.

    Call it before the session's first query; after one, it does nothing.
    PostgreSQL: the transaction runs at ``REPEATABLE READ``, which reads one
    snapshot taken at its first statement (PostgreSQL docs, "Transaction
    Isolation", 13.2.2). SQLite: an explicit ``BEGIN`` (deferred), so the
    WAL read snapshot taken at the first read lasts until the transaction
    ends (https://www.sqlite.org/isolation.html); the ``sqlite3`` module
    would otherwise run each SELECT in its own implicit transaction. Use it
    only for reading: a write in such an SQLite transaction may fail to
    upgrade if another writer committed meanwhile.
    """
    if session.in_transaction():
        return
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    else:
        session.connection().exec_driver_sql("BEGIN")
