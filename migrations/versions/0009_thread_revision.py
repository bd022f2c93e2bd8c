"""thread revision: a counter raised by every write to a thread's rows

``threads.revision`` goes up by one in every flush that adds, changes or
deletes the thread's row, its turns, versions or share links
(``app/revisions.py``). Rendered thread pages and the Thread JSON are
cached under (thread, revision) (``app/render_cache.py``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 02:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('threads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('threads', schema=None) as batch_op:
        batch_op.drop_column('revision')
