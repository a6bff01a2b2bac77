"""Monthly partitions of the append-only history on PostgreSQL (SQLite stays unpartitioned).

Which tables are partitioned, on which timestamp, and how their unique keys stay enforced
(``docs/scaling.md``, "Time-partitioned history"). PostgreSQL's unique indexes on a partitioned
table must contain the partition key, which would let a duplicate event written in another
month through; so each unique key lives in a small unpartitioned table ``<table>_keys``,
filled by a trigger on the partitioned table:

- ``raise``: a duplicate key fails the insert with the unique violation the table used to raise
  (same constraint name), for rows written by plain inserts. One ``AFTER INSERT … FOR EACH
  STATEMENT`` trigger claims the keys of all the statement's rows from its transition table
  (migration ``0021_statement_key_claims``), before the statement returns;
- ``skip``: a duplicate key drops the row, as ``INSERT … ON CONFLICT DO NOTHING`` did (the
  statement must then name no conflict target: see ``conflict_clause``), by a ``BEFORE INSERT
  … FOR EACH ROW`` trigger that claims the key and returns ``NULL`` on a duplicate.

This module holds the list and the maintenance done on it: partitions made ahead of time,
retention of the journal and outbox, detaching old months for archiving.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    MetaData,
    Select,
    Table,
    and_,
    cast,
    func,
    select,
    text,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement


@dataclass(frozen=True)
class UniqueKey:
    columns: tuple[str, ...]
    constraint: str  # the name the unique violation carries (the table's former constraint)
    on_duplicate: str  # "raise" | "skip"


@dataclass(frozen=True)
class Partitioned:
    table: str
    column: str  # the timestamp partitioned by month
    keys: tuple[UniqueKey, ...] = ()
    # retention: rows older than the setting's days (and in a final state) are deleted
    retention_setting: str | None = None
    final_states: tuple[str, ...] = ()
    state_column: str | None = None


PARTITIONED: dict[str, Partitioned] = {
    p.table: p
    for p in (
        Partitioned(
            "points_entries",
            "created_at",
            (UniqueKey(("idempotency_key",), "uq_points_entries_idempotency_key", "raise"),),
        ),
        Partitioned(
            "purchases",
            "created_at",
            (UniqueKey(("source", "external_id"), "uq_purchases_source_external_id", "skip"),),
        ),
        Partitioned(
            "pos_sales",
            "created_at",
            (UniqueKey(("store_id", "sale_id"), "uq_pos_sales_store_id_sale_id", "raise"),),
        ),
        Partitioned("pos_sale_lines", "created_at"),
        Partitioned(
            "money_events",
            "received_at",
            (UniqueKey(("event_key",), "uq_money_events_event_key", "skip"),),
            retention_setting="JOURNAL_RETENTION_DAYS",
            final_states=("applied", "rejected"),
            state_column="state",
        ),
        Partitioned(
            "outbox_messages",
            "created_at",
            (
                UniqueKey(
                    ("channel", "dedupe_key"), "uq_outbox_messages_channel_dedupe_key", "skip"
                ),
            ),
            retention_setting="OUTBOX_RETENTION_DAYS",
            final_states=("sent", "failed", "skipped"),
            state_column="status",
        ),
        Partitioned("clerk_access_log", "created_at"),
    )
}

DEFAULT_MONTHS_AHEAD = 3


def keys_table(table: str) -> str:
    return f"{table}_keys"


@functools.cache
def _keys_of(table: Table) -> Table:
    """``table``'s keys table as a Core table (not part of the models' metadata)."""
    spec = PARTITIONED[table.name]
    columns = [Column(name, table.c[name].type) for name in spec.keys[0].columns]
    columns += [Column("id", BigInteger), Column(spec.column, table.c[spec.column].type)]
    return Table(keys_table(table.name), MetaData(), *columns)


def key_source(table: Table, dialect: str) -> Table:
    """Where ``table``'s unique key can be looked up: its keys table for a partitioned table on
    PostgreSQL (the partitions carry no index on the key), else the table itself. Both have the
    key's columns and ``id``; a keys table also the partition column."""
    if dialect == "postgresql" and table.name in PARTITIONED:
        return _keys_of(table)
    return table


def _same_row(table: Table, keys: Table) -> ColumnElement[bool]:
    """A keys table's row names its row: same id, same partition timestamp (one partition)."""
    month = PARTITIONED[table.name].column
    return and_(table.c.id == keys.c.id, table.c[month] == keys.c[month])


def where_key(stmt: Select, table: Table, dialect: str, **key: Any) -> Select:
    """``stmt`` (selecting from ``table``) limited to the row whose unique key is ``key``, every
    key column given. On PostgreSQL a partitioned table's row is found through its keys table:
    one probe of the key there, then the primary key (``id`` and month) in one partition."""
    source = key_source(table, dialect)
    if source is not table:
        stmt = stmt.join(source, _same_row(table, source))
    return stmt.where(*(source.c[name] == value for name, value in key.items()))


def join_by_key(
    stmt: Select, table: Table, dialect: str, key: Mapping[str, Any], *, outer: bool = False
) -> Select:
    """``stmt`` joined to ``table``'s rows whose unique key equals ``key`` (column name →
    expression of ``stmt``): on PostgreSQL through a partitioned table's keys table, then on to
    the row itself, so a row deleted by hand is missing from the join as it would be without
    the keys table."""
    source = key_source(table, dialect)
    stmt = stmt.join(
        source, and_(*(source.c[name] == value for name, value in key.items())), isouter=outer
    )
    if source is table:
        return stmt
    return stmt.join(table, _same_row(table, source), isouter=outer)


def rows_by_key(
    table: Table,
    columns: Sequence[Any],
    fixed: Mapping[str, Any],
    name: str | tuple[str, ...],
    values: Sequence[Any],
    dialect: str,
) -> Select:
    """``SELECT columns FROM table`` for the rows whose unique key is ``fixed`` plus each of
    ``values`` for the key column ``name`` (or, ``name`` a tuple, each tuple of ``values``
    for those columns): one index probe per value, whatever the planner's statistics say.

    An ``IN`` list on the last columns of a key lets a planner without fresh statistics (a
    new partition, autovacuum not run yet) read every row of the leading columns instead (all
    the openids of an app, all the sales of a store). On PostgreSQL each value is one
    ``LIMIT 1`` lateral probe of the unique index with every key column given: of the table,
    or of a partitioned table's keys table and then the row by primary key in its month.
    Elsewhere it is the plain ``IN``.
    """
    names = (name,) if isinstance(name, str) else tuple(name)
    rows = [(v,) for v in values] if isinstance(name, str) else [tuple(v) for v in values]
    if dialect != "postgresql":
        conds: list[ColumnElement] = [table.c[k] == v for k, v in fixed.items()]
        if len(names) == 1:
            return select(*columns).where(*conds, table.c[names[0]].in_([r[0] for r in rows]))
        return select(*columns).where(*conds, tuple_(*(table.c[n] for n in names)).in_(rows))
    wanted = (
        func.unnest(
            *(cast([r[i] for r in rows], ARRAY(table.c[n].type)) for i, n in enumerate(names))
        )
        .table_valued(*(f"v{i}" for i in range(len(names))))
        .render_derived(name="w", with_types=False)
    )
    partitioned = table.name in PARTITIONED
    source = _keys_of(table) if partitioned else table
    month = PARTITIONED[table.name].column if partitioned else None
    inner = (source.c.id, source.c[month]) if month else [table.c[c.key] for c in columns]
    probe = (
        select(*inner)
        .where(
            *[source.c[k] == v for k, v in fixed.items()],
            *[source.c[n] == wanted.c[f"v{i}"] for i, n in enumerate(names)],
        )
        .limit(1)
        .lateral("k")
    )
    if month is None:
        return select(*(probe.c[c.key] for c in columns)).select_from(wanted.join(probe, true()))
    return select(*columns).select_from(
        wanted.join(probe, true()).join(
            table, and_(table.c.id == probe.c.id, table.c[month] == probe.c[month])
        )
    )


def month_partition(table: str, month: date) -> str:
    return f"{table}_p{month:%Y%m}"


def is_partition_name(name: str) -> bool:
    """A table that exists only because of partitioning (a month, the default, the keys)."""
    for table in PARTITIONED:
        rest = name.removeprefix(table + "_")
        if rest != name and (
            rest in ("default", "keys") or (rest[:1] == "p" and rest[1:].isdigit())
        ):
            return True
    return False


def schema_filter(dialect: str) -> Callable[..., bool]:
    """Alembic's ``include_object`` for comparing the models with a migrated database: on
    PostgreSQL the monthly partitions, the keys tables and what partitioning changes (unique
    keys moved to the keys tables, foreign keys into partitioned tables) belong to the
    partitions migration, not to the models."""

    def include_object(
        obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
    ) -> bool:
        if dialect != "postgresql":
            return True
        if type_ == "table":
            return not (reflected and name is not None and is_partition_name(name))
        table = getattr(getattr(obj, "table", None), "name", None)
        if type_ == "unique_constraint" and table in PARTITIONED:
            return False
        if type_ == "foreign_key_constraint":
            return obj.referred_table.name not in PARTITIONED
        return True

    return include_object


def conflict_clause(table: str, columns: tuple[str, ...], dialect: str) -> str:
    """``ON CONFLICT … DO NOTHING`` for a key of ``table``: without a target on PostgreSQL for
    a partitioned table, whose key is arbitrated by its keys table's trigger."""
    if dialect == "postgresql" and table in PARTITIONED:
        return "ON CONFLICT DO NOTHING"
    return f"ON CONFLICT ({', '.join(columns)}) DO NOTHING"


def is_partitioned(conn: Connection, table: str) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    return bool(
        conn.execute(
            text("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(:t)"),
            {"t": table},
        ).first()
    )


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def ensure_month(conn: Connection, table: str, month: date) -> bool:
    """Create ``table``'s partition for ``month`` unless it exists (True when created).

    Rows already in the default partition for that month are moved into it, keys untouched.
    """
    name = month_partition(table, month)
    if conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None:
        return False
    spec = PARTITIONED[table]
    lo, hi = month.isoformat(), _next_month(month).isoformat()
    bounds = f"FROM ('{lo} 00:00:00+00') TO ('{hi} 00:00:00+00')"
    default = f"{table}_default"
    # creating a partition locks the table: give up (and leave it to the next run, months
    # ahead) rather than queue every insert behind a lock waiting on a long transaction
    conn.execute(text("SET LOCAL lock_timeout = '5s'"))
    conn.execute(text(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
    stray = conn.execute(
        text(
            f"SELECT 1 FROM {default} WHERE {spec.column} >= :lo AND {spec.column} < :hi LIMIT 1"  # noqa: S608
        ),
        {"lo": lo, "hi": hi},
    ).first()
    if stray is None:
        conn.execute(text(f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES {bounds}"))
        return True
    # the default holds rows of that month: move them into a new table, then attach it
    conn.execute(text(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)"))
    conn.execute(
        text(
            f"WITH moved AS (DELETE FROM ONLY {default} WHERE {spec.column} >= :lo "  # noqa: S608
            f"AND {spec.column} < :hi RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        ),
        {"lo": lo, "hi": hi},
    )
    conn.execute(text(f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES {bounds}"))
    return True


def ensure_partitions(
    conn: Connection, now: datetime, months_ahead: int = DEFAULT_MONTHS_AHEAD
) -> list[str]:
    """This month's and the next ``months_ahead`` months' partitions of every partitioned
    table (idempotent); the names of those created."""
    created = []
    for table in PARTITIONED:
        if not is_partitioned(conn, table):
            continue
        month = _month_start(now.astimezone(UTC).date())
        for _ in range(months_ahead + 1):
            if ensure_month(conn, table, month):
                created.append(month_partition(table, month))
            month = _next_month(month)
    return created


def prune(
    conn_factory: Callable[[], object],
    table: str,
    days: int,
    now: datetime,
    batch: int = 5000,
) -> int:
    """Delete ``table``'s rows in a final state older than ``days`` (journal, outbox), in
    batches each its own transaction, with their keys; the number deleted.

    ``conn_factory`` returns a context manager yielding a connection in a transaction
    (``engine.begin``).
    """
    spec = PARTITIONED[table]
    cutoff = now - timedelta(days=days)
    states = ", ".join(f"'{s}'" for s in spec.final_states)
    key_cols = spec.keys[0].columns if spec.keys else ()
    total = 0
    while True:
        with conn_factory() as conn:  # type: ignore[attr-defined]
            partitioned = is_partitioned(conn, table)
            returning = ", ".join(key_cols) if key_cols else "id"
            rows = conn.execute(
                text(
                    f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} "  # noqa: S608
                    f"WHERE {spec.column} < :cutoff AND {spec.state_column} IN ({states}) "
                    f"LIMIT {int(batch)}) RETURNING {returning}"
                ),
                {"cutoff": cutoff},
            ).all()
            if rows and partitioned and key_cols:
                where = " AND ".join(f"k.{c} = d.{c}" for c in key_cols)
                arrays = ", ".join(f"CAST(:c{i} AS text[])" for i in range(len(key_cols)))
                names = ", ".join(key_cols)
                conn.execute(
                    text(
                        f"DELETE FROM {keys_table(table)} k USING unnest({arrays}) "  # noqa: S608
                        f"AS d({names}) WHERE {where}"
                    ),
                    {f"c{i}": [str(r[i]) for r in rows] for i in range(len(key_cols))},
                )
        total += len(rows)
        if len(rows) < batch:
            return total


def detach_before(conn: Connection, table: str, before: date, schema: str = "archive") -> list[str]:
    """Detach ``table``'s monthly partitions that end on or before ``before`` and move them to
    ``schema`` (to dump and drop there); their keys stay, so the events they hold are still
    refused if delivered again. The names of those detached."""
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:t) ORDER BY c.relname"
        ),
        {"t": table},
    ).scalars()
    detached = []
    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    for name in rows:
        suffix = name.removeprefix(f"{table}_p")
        if suffix == name or not suffix.isdigit():
            continue
        month = date(int(suffix[:4]), int(suffix[4:]), 1)
        if _next_month(month) > before:
            continue
        conn.execute(text(f"ALTER TABLE {table} DETACH PARTITION {name}"))
        conn.execute(text(f'ALTER TABLE {name} SET SCHEMA "{schema}"'))
        detached.append(f"{schema}.{name}")
    return detached
