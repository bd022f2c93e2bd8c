"""per-turn model, background, markup and reported output; the thread's last model

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 12:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('turns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('model', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('background', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('markup_sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('output', sa.JSON(), nullable=True))
    with op.batch_alter_table('threads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('model', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('threads', schema=None) as batch_op:
        batch_op.drop_column('model')
    with op.batch_alter_table('turns', schema=None) as batch_op:
        batch_op.drop_column('output')
        batch_op.drop_column('markup_sha256')
        batch_op.drop_column('background')
        batch_op.drop_column('model')
