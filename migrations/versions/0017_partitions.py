"""partitions: the append-only history partitioned by month on PostgreSQL

Ledger entries, purchases, POS sales and lines, the money journal, the outbox and the clerk
access log become ``PARTITION BY RANGE`` tables with one partition per month (this month and
the next three; earlier months that hold rows; a default partition so no insert ever fails).
Each former unique key moves to an unpartitioned ``<table>_keys`` table filled by a ``BEFORE
INSERT`` trigger, so a duplicate is still refused whatever month it would land in. Foreign keys
pointing *into* these tables are dropped (PostgreSQL would need the partition key in them);
the rows are written in the same transactions as what they point at. SQLite: only the new
``pos_sale_lines.created_at`` column.

Revision ID: 0017_partitions
Revises: 0018_job_progress
Create Date: 2026-11-23 22:20:00

"""
from datetime import date, datetime, timedelta, timezone

from alembic import op
import sqlalchemy as sa


revision = '0017_partitions'
down_revision = '0018_job_progress'
branch_labels = None
depends_on = None

# frozen copy of app/common/partitions.PARTITIONED as of this revision:
# table -> (partition column, [(key columns, constraint name, on duplicate)])
TABLES = {
    'points_entries': ('created_at', [(('idempotency_key',), 'uq_points_entries_idempotency_key', 'raise')]),
    'purchases': ('created_at', [(('source', 'external_id'), 'uq_purchases_source_external_id', 'skip')]),
    'pos_sales': ('created_at', [(('store_id', 'sale_id'), 'uq_pos_sales_store_id_sale_id', 'raise')]),
    'pos_sale_lines': ('created_at', []),
    'money_events': ('received_at', [(('event_key',), 'uq_money_events_event_key', 'skip')]),
    'outbox_messages': ('created_at', [(('channel', 'dedupe_key'), 'uq_outbox_messages_channel_dedupe_key', 'skip')]),
    'clerk_access_log': ('created_at', []),
}
# foreign keys into them, dropped on upgrade and restored on downgrade
INBOUND = [
    ('points_lots', 'fk_points_lots_entry_id_points_entries', 'entry_id', 'points_entries'),
    ('points_lot_consumptions', 'fk_points_lot_consumptions_entry_id_points_entries', 'entry_id', 'points_entries'),
    ('purchase_refunds', 'fk_purchase_refunds_purchase_id_purchases', 'purchase_id', 'purchases'),
    ('pos_sales', 'fk_pos_sales_purchase_id_purchases', 'purchase_id', 'purchases'),
    ('pos_sale_lines', 'fk_pos_sale_lines_sale_pk_pos_sales', 'sale_pk', 'pos_sales'),
]
MONTHS_AHEAD = 3


def _next_month(d):
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


def _rows(sql, **params):
    return op.get_bind().execute(sa.text(sql), params).all()


def _partition(table, column, keys):
    old = f'{table}_unpartitioned'
    indexes = [
        r[0] for r in _rows(
            "SELECT indexdef FROM pg_indexes i WHERE tablename = :t AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)", t=table)
    ]
    fks = _rows(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = to_regclass(:t) AND contype = 'f'", t=table)
    seq = _rows("SELECT pg_get_serial_sequence(:t, 'id')", t=table)[0][0]
    op.execute(f'ALTER TABLE {table} RENAME TO {old}')
    for (idx,) in _rows("SELECT indexname FROM pg_indexes i WHERE tablename = :t AND NOT EXISTS "
                        "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)", t=old):
        op.execute(f'DROP INDEX {idx}')
    for name, kind in _rows("SELECT conname, contype FROM pg_constraint WHERE conrelid = to_regclass(:t)", t=old):
        op.execute(f'ALTER TABLE {old} DROP CONSTRAINT {name}')
    op.execute(f'CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS) PARTITION BY RANGE ({column})')
    op.execute(f'CREATE TABLE {table}_default PARTITION OF {table} DEFAULT')
    first = _rows(f'SELECT min({column}) FROM {old}')[0][0]
    now = datetime.now(timezone.utc).date().replace(day=1)
    month = min(first.astimezone(timezone.utc).date().replace(day=1), now) if first else now
    last = now
    for _ in range(MONTHS_AHEAD):
        last = _next_month(last)
    while month <= last:
        nxt = _next_month(month)
        op.execute(
            f"CREATE TABLE {table}_p{month:%Y%m} PARTITION OF {table} "
            f"FOR VALUES FROM ('{month} 00:00:00+00') TO ('{nxt} 00:00:00+00')")
        month = nxt
    op.execute(f'INSERT INTO {table} SELECT * FROM {old}')
    op.execute(f'ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY (id, {column})')
    for sql in indexes:
        op.execute(sql)
    for name, definition in fks:
        op.execute(f'ALTER TABLE {table} ADD CONSTRAINT {name} {definition}')
    if seq:
        op.execute(f'ALTER SEQUENCE {seq} OWNED BY {table}.id')
    op.execute(f'DROP TABLE {old}')
    for cols, constraint, on_duplicate in keys:
        _keys_table(table, column, cols, constraint, on_duplicate)


def _keys_table(table, column, cols, constraint, on_duplicate):
    keys = f'{table}_keys'
    types = dict(_rows(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = to_regclass(:t) AND attnum > 0", t=table))
    names = ', '.join(cols)
    op.execute(
        f"CREATE TABLE {keys} ({', '.join(f'{c} {types[c]} NOT NULL' for c in cols)}, "
        f"id bigint NOT NULL, {column} timestamptz NOT NULL, "
        f"CONSTRAINT {constraint} PRIMARY KEY ({names}))")
    op.execute(f'INSERT INTO {keys} ({names}, id, {column}) SELECT {names}, id, {column} FROM {table}')
    op.execute(f'CREATE INDEX ix_{table}_key ON {table} ({names})')
    values = ', '.join(f'NEW.{c}' for c in cols)
    if on_duplicate == 'skip':  # as INSERT … ON CONFLICT DO NOTHING: the duplicate row is dropped
        body = (f'INSERT INTO {keys} ({names}, id, {column}) VALUES ({values}, NEW.id, NEW.{column}) '
                'ON CONFLICT DO NOTHING; IF NOT FOUND THEN RETURN NULL; END IF; RETURN NEW;')
    else:  # the unique violation the table raised, under the same constraint name
        body = (f'INSERT INTO {keys} ({names}, id, {column}) VALUES ({values}, NEW.id, NEW.{column}); '
                'RETURN NEW;')
    op.execute(f'CREATE FUNCTION {table}_claim_key() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} END $$')
    op.execute(f'CREATE TRIGGER {table}_claim_key BEFORE INSERT ON {table} '
               f'FOR EACH ROW EXECUTE FUNCTION {table}_claim_key()')
    op.execute(f'CREATE FUNCTION {table}_truncate_keys() RETURNS trigger LANGUAGE plpgsql AS '
               f'$$ BEGIN TRUNCATE {keys}; RETURN NULL; END $$')
    op.execute(f'CREATE TRIGGER {table}_truncate_keys AFTER TRUNCATE ON {table} '
               f'FOR EACH STATEMENT EXECUTE FUNCTION {table}_truncate_keys()')


def _unpartition(table, column, keys):
    old = f'{table}_partitioned'
    indexes = [
        r[0] for r in _rows(
            "SELECT indexdef FROM pg_indexes i WHERE tablename = :t AND indexname <> :k AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)", t=table, k=f'ix_{table}_key')
    ]
    fks = _rows("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = to_regclass(:t) AND contype = 'f'", t=table)
    seq = _rows("SELECT pg_get_serial_sequence(:t, 'id')", t=table)[0][0]
    op.execute(f'ALTER TABLE {table} RENAME TO {old}')
    for (idx,) in _rows("SELECT indexname FROM pg_indexes i WHERE tablename = :t AND NOT EXISTS "
                        "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)", t=old):
        op.execute(f'DROP INDEX IF EXISTS {idx}')
    for (name,) in _rows("SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:t) "
                         "AND contype IN ('p', 'f')", t=old):
        op.execute(f'ALTER TABLE {old} DROP CONSTRAINT {name}')
    op.execute(f'CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS)')
    op.execute(f'INSERT INTO {table} SELECT * FROM {old}')
    op.execute(f'ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY (id)')
    if seq:
        op.execute(f'ALTER SEQUENCE {seq} OWNED BY {table}.id')
    op.execute(f'DROP TABLE {old}')
    for cols, constraint, _ in keys:
        op.execute(f'DROP TABLE {table}_keys')
        op.execute(f'DROP FUNCTION {table}_claim_key()')
        op.execute(f'DROP FUNCTION {table}_truncate_keys()')
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {constraint} UNIQUE ({', '.join(cols)})")
    for sql in indexes:
        op.execute(sql)
    for name, definition in fks:
        op.execute(f'ALTER TABLE {table} ADD CONSTRAINT {name} {definition}')


def upgrade():
    with op.batch_alter_table('pos_sale_lines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_at', sa.DateTime(timezone=True), nullable=True))
    op.execute('UPDATE pos_sale_lines SET created_at = (SELECT s.created_at FROM pos_sales s '
               'WHERE s.id = pos_sale_lines.sale_pk)')
    with op.batch_alter_table('pos_sale_lines', schema=None) as batch_op:
        batch_op.alter_column('created_at', existing_type=sa.DateTime(timezone=True), nullable=False)
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, name, _, _ in INBOUND:
        op.execute(f'ALTER TABLE {table} DROP CONSTRAINT {name}')
    for table, (column, keys) in TABLES.items():
        _partition(table, column, keys)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for table, (column, keys) in TABLES.items():
            _unpartition(table, column, keys)
        for table, name, col, target in INBOUND:
            op.execute(f'ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({col}) REFERENCES {target}(id)')
    with op.batch_alter_table('pos_sale_lines', schema=None) as batch_op:
        batch_op.drop_column('created_at')
