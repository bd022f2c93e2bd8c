"""thread delete (soft, with an undo window) and search

``threads.deleted_at``: set when the owner deletes a thread; the thread then
answers 404 everywhere and is purged once ``RETOUCH_DELETE_UNDO_SECONDS``
have passed (``app/services.py``).

Search over titles and instructions (``app.services.search_threads``):

- SQLite: two FTS5 tables kept in sync by triggers
  (https://www.sqlite.org/fts5.html). ``turns_fts`` is an external-content
  table over ``turns.instruction`` keyed by ``turns.pk`` (an INTEGER PRIMARY
  KEY, so its rowid never changes, not even on VACUUM; §4.4.3 "External
  Content Tables" and its trigger recipe). ``threads_fts`` holds each
  thread's id (UNINDEXED) and title: ``threads`` has a text primary key, and
  its implicit rowid may change on VACUUM, so it cannot back an
  external-content table safely.
- PostgreSQL: GIN indexes on ``to_tsvector('simple', title)`` and
  ``to_tsvector('simple', instruction)`` (PostgreSQL docs, 12.2.2 "Creating
  Indexes"); the query names the same expressions, so the indexes serve it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 19:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

# The DDL lives in app/search_index.py, which also repairs triggers a later table rebuild drops.
from app.search_index import REBUILD, TABLES, TRIGGERS  # noqa: E402

SQLITE_UP = [*TABLES.values(), *TRIGGERS.values(), *REBUILD]

SQLITE_DOWN = ["DROP TRIGGER IF EXISTS " + t for t in (
    "threads_fts_ai", "threads_fts_ad", "threads_fts_au", "turns_fts_ai", "turns_fts_ad", "turns_fts_au")] + [
    "DROP TABLE IF EXISTS threads_fts", "DROP TABLE IF EXISTS turns_fts"]


def upgrade() -> None:
    with op.batch_alter_table('threads') as batch:
        batch.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_threads_deleted_at', 'threads', ['deleted_at'])
    if op.get_bind().dialect.name == 'sqlite':
        for statement in SQLITE_UP:
            op.execute(statement)
    else:
        op.execute("CREATE INDEX ix_threads_title_tsv ON threads USING gin (to_tsvector('simple'::regconfig, title))")
        op.execute("CREATE INDEX ix_turns_instruction_tsv ON turns "
                   "USING gin (to_tsvector('simple'::regconfig, instruction))")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for statement in SQLITE_DOWN:
            op.execute(statement)
    else:
        op.execute("DROP INDEX IF EXISTS ix_turns_instruction_tsv")
        op.execute("DROP INDEX IF EXISTS ix_threads_title_tsv")
    op.drop_index('ix_threads_deleted_at', table_name='threads')
    with op.batch_alter_table('threads') as batch:
        batch.drop_column('deleted_at')
