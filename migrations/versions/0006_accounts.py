"""accounts and device links

``accounts``: people who log in (OpenID Connect, or the one password
account); each maps to the ``owner_id`` its threads carry. ``device_links``:
single-use links that carry a cookie owner to another browser, stored as
the SHA-256 of their token.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 18:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'accounts',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('issuer', sa.String(length=255), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('display_name', sa.String(length=200), nullable=False),
        sa.Column('owner_id', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('issuer', 'subject'),
        sa.UniqueConstraint('owner_id'),
    )
    op.create_table(
        'device_links',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('token_sha256', sa.String(length=64), nullable=False),
        sa.Column('owner_id', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_sha256'),
    )
    op.create_index('ix_device_links_owner_id', 'device_links', ['owner_id'])


def downgrade() -> None:
    op.drop_index('ix_device_links_owner_id', table_name='device_links')
    op.drop_table('device_links')
    op.drop_table('accounts')
