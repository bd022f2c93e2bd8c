"""turn actions: a pinned base for regenerate and edit-and-resend, and a
decline's suggestions

``turns.pinned_base``: True when the turn starts from ``base_version`` as it
was set when the turn was queued (regenerate, edit and resend: a sibling of
the original's result), False when it starts from the thread's head at claim
time (every other turn). ``turns.suggestions``: example instructions a
declined turn offers instead (JSON list of strings), shown as buttons. The
new status ``cancelled`` needs no schema change (``status`` is a string).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 18:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('turns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pinned_base', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('suggestions', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('turns', schema=None) as batch_op:
        batch_op.drop_column('suggestions')
        batch_op.drop_column('pinned_base')
