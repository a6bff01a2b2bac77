"""intel: SKU catalog with categories (segments: bought_category); members no longer live,
indexed, so segment counts leave them out without joining every member

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

    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.create_index('ix_members_not_live', ['id'], unique=False, postgresql_where=sa.text("status <> 'active'"), sqlite_where=sa.text("status <> 'active'"))


def downgrade():
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index('ix_members_not_live', postgresql_where=sa.text("status <> 'active'"), sqlite_where=sa.text("status <> 'active'"))

    with op.batch_alter_table('skus', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_skus_category'))

    op.drop_table('skus')
