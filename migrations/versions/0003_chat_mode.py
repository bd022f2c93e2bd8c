"""conversational mode (openai-chat): the response each turn produced, the
assistant's words, the prompt the image tool used and the chain depth; the thread's last backend

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 14:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('turns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('response_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('response_image_sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('chain_depth', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('context', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('reply', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('revised_prompt', sa.Text(), nullable=True))
    with op.batch_alter_table('threads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('backend', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('threads', schema=None) as batch_op:
        batch_op.drop_column('backend')
    with op.batch_alter_table('turns', schema=None) as batch_op:
        batch_op.drop_column('revised_prompt')
        batch_op.drop_column('reply')
        batch_op.drop_column('context')
        batch_op.drop_column('chain_depth')
        batch_op.drop_column('response_image_sha256')
        batch_op.drop_column('response_id')
