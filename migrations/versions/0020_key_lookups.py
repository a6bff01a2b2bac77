"""key_lookups: drop the key index on every monthly partition; lookups go through the keys tables

Since ``0017_partitions`` each unique key of a partitioned table lives in its ``<table>_keys``
table, which refuses duplicates in any month. The same key was also indexed on every monthly
partition (``ix_<table>_key``) for the single-row reads by key. Those reads now find the row
through the keys table (one probe there, then the primary key in the row's month:
``app.common.partitions.where_key``), which also spares them a probe of every month's index.
At 100 M purchases the two largest of these indexes held about 8.5 GB (``docs/scaling.md``).
PostgreSQL only: SQLite keeps its unique constraints.

Revision ID: 0020_key_lookups
Revises: 0019_scaleload
Create Date: 2026-11-24 14:30:00

"""
from alembic import op


revision = '0020_key_lookups'
down_revision = '0019_scaleload'
branch_labels = None
depends_on = None

# frozen copy of the keyed tables of app/common/partitions.PARTITIONED as of this revision
KEYS = {
    'points_entries': ('idempotency_key',),
    'purchases': ('source', 'external_id'),
    'pos_sales': ('store_id', 'sale_id'),
    'money_events': ('event_key',),
    'outbox_messages': ('channel', 'dedupe_key'),
}


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in KEYS:
        op.execute(f'DROP INDEX IF EXISTS ix_{table}_key')


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, columns in KEYS.items():
        op.execute(f"CREATE INDEX ix_{table}_key ON {table} ({', '.join(columns)})")
