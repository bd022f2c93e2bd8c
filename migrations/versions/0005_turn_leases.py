"""turn leases: which worker holds a running turn, and until when

A turn is claimed by one conditional update (see app/turns.py); the claimer
renews ``lease_expires_at`` with a heartbeat, and recovery touches only
turns whose lease has expired, so several processes can share one database.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 17:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('turns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('turns', schema=None) as batch_op:
        batch_op.drop_column('lease_expires_at')
        batch_op.drop_column('claimed_by')
