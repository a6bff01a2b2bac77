"""scaleload: drop ix_points_lots_entry_id, an index no query uses

A lot's ``entry_id`` names the credit it came from; nothing looks lots up by it (lots are read
by member, by id and by expiry: ``ix_points_lots_open``, the primary key, ``ix_points_lots_due``),
and the ledger entries it points at are never updated or deleted, so the foreign key needs no
index on this side either (on PostgreSQL that foreign key was dropped with the partitioning).
At ten million members the index held a row per purchase: about 22 bytes per purchase, 2.2 GB
at 100 M purchases (``docs/scaling.md``).

Revision ID: 0019_scaleload
Revises: 0017_partitions
Create Date: 2026-11-24 00:55:00

"""
from alembic import op


revision = '0019_scaleload'
down_revision = '0017_partitions'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('points_lots', schema=None) as batch_op:
        batch_op.drop_index('ix_points_lots_entry_id')


def downgrade():
    with op.batch_alter_table('points_lots', schema=None) as batch_op:
        batch_op.create_index('ix_points_lots_entry_id', ['entry_id'], unique=False)
