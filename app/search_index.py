"""The SQLite search index of thread titles and instructions (FTS5), kept
in sync by triggers (https://www.sqlite.org/fts5.html §4.4.3, "External
Content Tables"). Migration 0007 creates it; :func:`ensure_sqlite_search`
puts back triggers a later migration dropped.

SQLite drops a table's triggers with the table, and Alembic's batch mode
rebuilds a table (create a copy, move the rows, drop the original) for any
change ``ALTER TABLE`` cannot make, such as adding a column whose default
is an expression (migration 0008 does, on ``turns``). :func:`app.db.migrate`
therefore calls :func:`ensure_sqlite_search` after every upgrade. PostgreSQL
needs none of this: its search uses expression indexes (migration 0007).
"""
from __future__ import annotations

TABLES = {
    "threads_fts": "CREATE VIRTUAL TABLE threads_fts USING fts5(thread_id UNINDEXED, title)",
    "turns_fts": "CREATE VIRTUAL TABLE turns_fts USING fts5(instruction, content='turns', content_rowid='pk')",
}

TRIGGERS = {
    "threads_fts_ai": """CREATE TRIGGER threads_fts_ai AFTER INSERT ON threads BEGIN
         INSERT INTO threads_fts(thread_id, title) VALUES (new.id, new.title);
       END""",
    "threads_fts_ad": """CREATE TRIGGER threads_fts_ad AFTER DELETE ON threads BEGIN
         DELETE FROM threads_fts WHERE thread_id = old.id;
       END""",
    "threads_fts_au": """CREATE TRIGGER threads_fts_au AFTER UPDATE OF title ON threads BEGIN
         DELETE FROM threads_fts WHERE thread_id = old.id;
         INSERT INTO threads_fts(thread_id, title) VALUES (new.id, new.title);
       END""",
    "turns_fts_ai": """CREATE TRIGGER turns_fts_ai AFTER INSERT ON turns BEGIN
         INSERT INTO turns_fts(rowid, instruction) VALUES (new.pk, new.instruction);
       END""",
    "turns_fts_ad": """CREATE TRIGGER turns_fts_ad AFTER DELETE ON turns BEGIN
         INSERT INTO turns_fts(turns_fts, rowid, instruction) VALUES ('delete', old.pk, old.instruction);
       END""",
    "turns_fts_au": """CREATE TRIGGER turns_fts_au AFTER UPDATE OF instruction ON turns BEGIN
         INSERT INTO turns_fts(turns_fts, rowid, instruction) VALUES ('delete', old.pk, old.instruction);
         INSERT INTO turns_fts(rowid, instruction) VALUES (new.pk, new.instruction);
       END""",
}

#: Fill the index from the tables (after creating it, or after triggers were missing).
REBUILD = [
    "DELETE FROM threads_fts",
    "INSERT INTO threads_fts(thread_id, title) SELECT id, title FROM threads",
    "INSERT INTO turns_fts(turns_fts) VALUES ('rebuild')",
]


def ensure_sqlite_search(connection) -> bool:
    """On an SQLite ``connection`` (SQLAlchemy) whose schema has the search
    tables (migration 0007 or later), create any missing trigger and, if one
    was missing, rebuild the index from the tables. The caller commits.
    Returns True when it repaired something; False when all was in place or
    the database is not SQLite or not yet at 0007."""
    from sqlalchemy import text

    if connection.dialect.name != "sqlite":
        return False
    names = {row[0] for row in connection.execute(text("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')"))}
    if not set(TABLES) <= names:
        return False
    missing = [sql for name, sql in TRIGGERS.items() if name not in names]
    for sql in missing:
        connection.execute(text(sql))
    if missing:
        for sql in REBUILD:
            connection.execute(text(sql))
    return bool(missing)
