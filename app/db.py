"""Database helpers: timezone-safe timestamps, the unit of work, and bounded retries."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, Row, Table, TextClause, text, types
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from app.common.partitions import conflict_clause
from app.extensions import db

log = logging.getLogger(__name__)
T = TypeVar("T")

# serialization failure, deadlock detected, unique violation (a racing insert of the same key:
# run again, the work then finds the winner's row)
RETRYABLE_PGCODES = {"40001", "40P01", "23505"}
ATTEMPTS = 6


class UTCDateTime(types.TypeDecorator):
    """Stored as UTC; always returned timezone-aware (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def session() -> Session:
    return db.session


def reads() -> Session:
    """The session for reports (KPIs) and segment counts and previews: the one place that
    picks their database. With ``REPORTS_DATABASE_URL`` set it reads the replica (one session
    per app context, read only, closed when the context ends); unset, the primary's session.

    What it reads may lag the primary by the replica's replay delay (about a second), which
    is fine for figures and counts; never use it for what a write decides on."""
    from flask import current_app, g

    engine = current_app.extensions.get("reports_engine")
    if engine is None:
        return db.session
    if "reports_session" not in g:
        g.reports_session = Session(bind=engine, autoflush=False, expire_on_commit=False)
    return g.reports_session


def init_reads(app: Any) -> None:
    """Create the replica's engine when ``REPORTS_DATABASE_URL`` is set."""
    url = app.config.get("REPORTS_DATABASE_URL")
    if not url:
        return
    from sqlalchemy import create_engine

    from app.config import engine_options

    threshold = app.config.get("DATABASE_PREPARE_THRESHOLD")
    app.extensions["reports_engine"] = create_engine(url, **engine_options(url, threshold))

    @app.teardown_appcontext
    def _close_reads(_exc: BaseException | None) -> None:
        from flask import g

        reads_session = g.pop("reports_session", None)
        if reads_session is not None:
            reads_session.close()


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction: committed when the block ends normally, rolled back otherwise."""
    s = db.session
    try:
        yield s
        s.commit()
    except BaseException:
        s.rollback()
        raise


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if code in RETRYABLE_PGCODES:
            return True
        text = str(orig)
        if isinstance(exc, OperationalError) and "database is locked" in text:
            return True
        if isinstance(exc, IntegrityError) and "UNIQUE constraint failed" in text:
            return True  # SQLite's unique violation
    return False


def transaction(
    fn: Callable[[], T],
    *,
    attempts: int = ATTEMPTS,
    retry_on: tuple[type[Exception], ...] = (),
) -> T:
    """The transaction runner at a service entry: ``fn`` runs in one transaction.

    Committed when ``fn`` returns, rolled back when it raises. A serialization failure, a
    deadlock or a unique violation (a concurrent insert of the same business key) runs ``fn``
    again from the start, at most ``attempts`` times, with a short backoff; any other error
    propagates after the rollback. ``fn`` must therefore be safe to run again: it reads what
    it needs inside the transaction and keeps nothing from a failed attempt. ``retry_on``: more
    exception types that mean "the facts changed under us, run again" (a service's own check).
    """
    for attempt in range(1, attempts + 1):
        try:
            with unit_of_work():
                return fn()
        except DBAPIError as exc:
            if not is_retryable(exc) or attempt == attempts:
                raise
            log.info("retrying after %s (attempt %d)", type(exc.orig).__name__, attempt)
        except retry_on:
            if attempt == attempts:
                raise
        time.sleep(min(0.005 * 2**attempt, 0.3))
    raise AssertionError("unreachable")


_PG_ARRAY_TYPES = (
    (types.Boolean, "boolean[]"),
    (types.BigInteger, "bigint[]"),
    (types.Integer, "bigint[]"),
    (types.Numeric, "numeric[]"),
    (types.DateTime, "timestamptz[]"),
    (types.Date, "date[]"),
    (types.JSON, "json[]"),
    (types.String, "text[]"),
)


def insert_rows(
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    returning: Sequence[str] = (),
    conflict: Sequence[str] = (),
) -> list[Row]:
    """Insert many rows in one statement (``conflict``: ``ON CONFLICT (…) DO NOTHING``),
    answering the ``returning`` columns of the rows inserted (map them by a key column: with a
    conflict some rows are not inserted).

    On PostgreSQL the rows travel as one array per column (``INSERT … SELECT * FROM
    unnest(…)``): the statement text is the same for any number of rows, so the driver's
    statement cache keeps it, where a multi-row ``VALUES`` list of thousands of parameters is
    parsed again each time. Elsewhere a multi-row insert.
    """
    if not rows:
        return []
    columns = tuple(rows[0])
    if db.session.get_bind().dialect.name != "postgresql":
        if conflict:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table).on_conflict_do_nothing(index_elements=list(conflict))
        else:
            from sqlalchemy import insert

            stmt = insert(table)
        if returning:
            return list(db.session.execute(stmt.returning(*[table.c[c] for c in returning]), rows))
        db.session.execute(stmt, list(rows))
        return []
    stmt = _unnest_insert(table, columns, tuple(returning), tuple(conflict))
    result = db.session.execute(stmt, _array_params(table, columns, rows))
    return list(result) if returning else []


def update_rows(table: Table, key: str, rows: Sequence[dict[str, Any]]) -> None:
    """Update many rows, each found by its ``key`` column, in one statement.

    On PostgreSQL ``UPDATE … FROM unnest(…)`` with one array per column (one statement
    whatever the number of rows, where an ORM flush sends one ``UPDATE`` per row); elsewhere
    an executemany. Every row gives the same columns.
    """
    if not rows:
        return
    columns = tuple(c for c in rows[0] if c != key)
    if db.session.get_bind().dialect.name != "postgresql":
        from sqlalchemy import bindparam, update

        stmt = (
            update(table)
            .where(table.c[key] == bindparam("_key"))
            .values({c: bindparam(f"_v_{c}") for c in columns})
        )
        db.session.execute(
            stmt,
            [{"_key": r[key], **{f"_v_{c}": r[c] for c in columns}} for r in rows],
            execution_options={"synchronize_session": False},
        )
        return
    names = (key, *columns)
    db.session.execute(_unnest_update(table, names), _array_params(table, names, rows))


def _array_params(
    table: Table, columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> dict[str, list]:
    params = {}
    for i, name in enumerate(columns):
        values = [row[name] for row in rows]
        column_type = table.c[name].type
        if isinstance(column_type, types.JSON):
            values = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
        elif isinstance(column_type, UTCDateTime):
            values = [None if v is None else v.astimezone(UTC) for v in values]
        params[f"c{i}"] = values
    return params


def _array_casts(table: Table, columns: Sequence[str]) -> list[str]:
    casts = []
    for i, name in enumerate(columns):
        column_type = table.c[name].type
        if isinstance(column_type, UTCDateTime):
            array = "timestamptz[]"
        else:
            array = next(a for t, a in _PG_ARRAY_TYPES if isinstance(column_type, t))
        casts.append(f"CAST(:c{i} AS {array})")
    return casts


@functools.cache
def _unnest_update(table: Table, columns: tuple[str, ...]) -> TextClause:
    key, rest = columns[0], columns[1:]
    sql = (
        f"UPDATE {table.name} AS t SET {', '.join(f'{c} = v.{c}' for c in rest)}"  # noqa: S608
        f" FROM unnest({', '.join(_array_casts(table, columns))}) AS v({', '.join(columns)})"
        f" WHERE t.{key} = v.{key}"
    )
    return text(sql)


@functools.cache
def _unnest_insert(
    table: Table, columns: tuple[str, ...], returning: tuple[str, ...], conflict: tuple[str, ...]
) -> TextClause:
    casts = _array_casts(table, columns)
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({', '.join(casts)})"  # noqa: S608
    )
    if conflict:
        sql += " " + conflict_clause(table.name, conflict, "postgresql")
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    return text(sql)
