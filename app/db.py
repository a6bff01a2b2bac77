"""Database helpers: timezone-safe timestamps, the unit of work, and bounded retries."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ARRAY,
    BindParameter,
    ColumnElement,
    DateTime,
    Row,
    Table,
    TextClause,
    any_,
    bindparam,
    literal,
    text,
    types,
)
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


class BinaryArray(list):
    """A column's values for ``unnest``, sent by psycopg in PostgreSQL's binary array format.

    psycopg sends a plain list in the text format (it may mix types), which costs Python time
    per element: measured per 100 elements, 40 µs for integers, 46 µs for strings and 230 µs
    for timestamps, against 16, 14 and 15 µs in binary. ``_array_params`` wraps a column's
    values in this type only when its non-null values are all of one Python type.
    """


try:  # PostgreSQL's driver; not needed on SQLite
    import psycopg
    from psycopg.types.array import ListBinaryDumper

    psycopg.adapters.register_dumper(BinaryArray, ListBinaryDumper)
except ImportError:  # pragma: no cover
    pass


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


def read_only(fn: Callable[[], T]) -> T:
    """``fn``, which only reads, at a service entry, without a transaction on PostgreSQL.

    Each statement then runs on its own (autocommit): no ``BEGIN`` and ``COMMIT`` round trips,
    two of a till identify's five. Under READ COMMITTED, the server's level, a transaction's
    statements each take their own snapshot anyway, so what ``fn`` reads is as consistent as
    it would be inside one. Inside a transaction already begun, ``fn`` joins it; elsewhere
    (SQLite) it runs in :func:`transaction`.
    """
    s = db.session()
    if s.in_transaction():
        return fn()
    if s.get_bind().dialect.name != "postgresql":
        return transaction(fn)
    # the driver's own switch, which SQLAlchemy's AUTOCOMMIT isolation level also sets, without
    # that option's per-checkout bookkeeping; switched back before the connection returns to
    # the pool
    conn = s.connection()
    driver = conn.connection.dbapi_connection
    driver.autocommit = True
    try:
        return fn()
    finally:
        try:
            driver.autocommit = False
        except psycopg.Error:  # a broken connection: not returned to the pool as it is
            conn.invalidate()
        s.rollback()  # ends the session's transaction; nothing to send in autocommit


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


def per_transaction(key: str, load: Callable[[], T]) -> T:
    """``load()`` once per transaction of the session, then its value again: for settings a
    batch reads in every wave (a ladder, thresholds, journeys). ``forget(key)`` after
    changing what it read, in the same transaction."""
    info = db.session.info
    current = db.session().get_transaction()
    cached = info.get(key)
    if cached is not None and current is not None and cached[0] is current:
        return cached[1]
    value = load()
    info[key] = (db.session().get_transaction(), value)
    return value


def forget(key: str) -> None:
    db.session.info.pop(key, None)


def among(column: ColumnElement[Any], values: Any) -> ColumnElement[bool]:
    """``column IN values``, as one parameter on PostgreSQL: ``column = ANY(:array)``.

    An ``IN`` list renders one parameter per value, so its text changes with the count: the
    driver parses it again each time (psycopg keeps statements of at most 50 parameters) and
    PostgreSQL plans it again. Measured on a till batch of 100 sales, six such statements of
    75–150 parameters. The ``ANY`` form is one text for any count, kept and prepared once.
    Elsewhere (SQLite) the plain ``IN``.
    """
    values = list(values)
    if db.session.get_bind().dialect.name != "postgresql":
        return column.in_(values)
    return column == any_(literal(values, type_=ARRAY(column.type)))


def among_param(column: ColumnElement[Any], name: str, dialect: str) -> ColumnElement[bool]:
    """:func:`among` with a named parameter, for a statement built once per dialect."""
    if dialect != "postgresql":
        return column.in_(bindparam(name, expanding=True))
    param: BindParameter[Any] = bindparam(name, type_=ARRAY(column.type))
    return column == any_(param)


def execute_core(stmt: Any, params: Any = None) -> Any:
    """Run a Core statement on the session's connection, in its transaction.

    The session's own ``execute`` adds an ORM layer (about 40 µs a statement) that a
    statement naming tables, not entities, does not need; pending ORM changes are flushed
    first, as the session would.
    """
    session = db.session
    if session.new or session.dirty or session.deleted:
        session.flush()
    return session.connection().execute(stmt, params)


@dataclass
class _DriverRead:
    """A read statement compiled once for the driver: its text, each parameter's bind
    processor, the columns' types and result processors, and the row type (a named tuple:
    attribute access and ``_asdict()``, as SQLAlchemy's rows)."""

    statement: Any  # kept so that the id that keys it is never reused
    sql: str
    binds: tuple[tuple[str, str, Any, Callable[[Any], Any] | None], ...]  # name, key, value
    types: tuple[Any, ...]
    row: type
    # from the first answer: some processors depend on the type the server sent
    results: tuple[Callable[[Any], Any] | None, ...] | None = None


_DRIVER_READS: dict[int, _DriverRead] = {}


def _driver_read(stmt: Any, dialect: Any) -> _DriverRead:
    found = _DRIVER_READS.get(id(stmt))
    if found is not None and found.statement is stmt:
        return found
    compiled = stmt.compile(dialect=dialect)
    if compiled.positiontup is not None or any(b.expanding for b in compiled.bind_names):
        raise ValueError("fetch_rows takes named, non-expanding parameters only")
    made = _DriverRead(
        statement=stmt,
        sql=compiled.string,
        binds=tuple(
            (name, bind.key, bind.value, bind.type.dialect_impl(dialect).bind_processor(dialect))
            for bind, name in compiled.bind_names.items()
        ),
        types=tuple(c.type.dialect_impl(dialect) for c in stmt.selected_columns),
        row=namedtuple("Row", list(stmt.selected_columns.keys())),  # type: ignore[misc]
    )
    _DRIVER_READS[id(stmt)] = made
    return made


def fetch_rows(stmt: Any, params: dict[str, Any]) -> list[Any]:
    """The rows of a hot read statement built once (``functools.cache``), as named tuples.

    On PostgreSQL the statement's text, compiled once, runs on the session connection's
    driver cursor, with the same bind and result processing as SQLAlchemy's: a till identify
    runs three such reads, and SQLAlchemy's execution around each cost 1.9 times the
    driver's own CPU (``bench/statement_cost.py``: 0.129 against 0.069 ms, 2026-11-24).
    Elsewhere (SQLite) :func:`execute_core`. Named, non-expanding parameters only.
    """
    session = db.session
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return list(execute_core(stmt, params))
    if session.new or session.dirty or session.deleted:
        session.flush()
    read = _driver_read(stmt, connection.dialect)
    values = {}
    for name, key, default, process in read.binds:
        value = params.get(key, default)
        values[name] = value if process is None else process(value)
    driver = connection.connection.dbapi_connection
    try:
        with driver.cursor() as cursor:
            cursor.execute(read.sql, values)
            rows = cursor.fetchall()
            if read.results is None:
                read.results = tuple(
                    kind.result_processor(connection.dialect, column.type_code)
                    for kind, column in zip(read.types, cursor.description, strict=True)
                )
    except psycopg.Error as exc:
        # as SQLAlchemy would raise it (its handlers answer 503 for a lost server), and a
        # connection the server dropped is not given back to the pool
        lost = connection.dialect.is_disconnect(exc, driver, None)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            read.sql,
            values,
            exc,
            psycopg.Error,
            hide_parameters=True,  # a phone may be one
            connection_invalidated=lost,
            dialect=connection.dialect,
        ) from exc
    processors = read.results
    if any(processors):
        return [
            read.row._make(
                value if process is None else process(value)
                for value, process in zip(row, processors, strict=True)
            )
            for row in rows
        ]
    return [read.row._make(row) for row in rows]


def insert_rows(
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    returning: Sequence[str] = (),
    conflict: Sequence[str] = (),
    add: Sequence[str] = (),
    replace: Sequence[str] = (),
    add_floor0: Sequence[str] = (),
) -> list[Row]:
    """Insert many rows in one statement (``conflict``: ``ON CONFLICT (…) DO NOTHING``),
    answering the ``returning`` columns of the rows inserted (map them by a key column: with a
    conflict some rows are not inserted).

    With ``add`` or ``replace`` (and ``conflict`` naming the key), a row whose key exists
    updates it instead: ``add`` columns are added to the existing values (counters),
    ``add_floor0`` likewise but never below zero, ``replace`` columns overwrite them. One
    statement may not update a row twice, so the caller gives each key once
    (``app.common.upsert`` folds repeats).

    On PostgreSQL the rows travel as one array per column (``INSERT … SELECT * FROM
    unnest(…)``): the statement text is the same for any number of rows, so the driver's
    statement cache keeps it, where a multi-row ``VALUES`` list of thousands of parameters is
    parsed again each time. Elsewhere a multi-row insert.
    """
    if not rows:
        return []
    columns = tuple(rows[0])
    updating = bool(add or replace or add_floor0)
    if updating and not conflict:
        raise ValueError("add / replace need the conflict key")
    if db.session.get_bind().dialect.name != "postgresql":
        if conflict:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table)
            if updating:
                from sqlalchemy import case

                summed = {c: table.c[c] + stmt.excluded[c] for c in (*add, *add_floor0)}
                stmt = stmt.on_conflict_do_update(
                    index_elements=list(conflict),
                    set_={
                        **{c: summed[c] for c in add},
                        **{c: case((summed[c] < 0, 0), else_=summed[c]) for c in add_floor0},
                        **{c: stmt.excluded[c] for c in replace},
                    },
                )
            else:
                stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict))
        else:
            from sqlalchemy import insert

            stmt = insert(table)
        if returning:
            return list(db.session.execute(stmt.returning(*[table.c[c] for c in returning]), rows))
        db.session.execute(stmt, list(rows))
        return []
    params, scalar = _array_params(table, columns, rows)
    stmt = _unnest_insert(
        table,
        columns,
        tuple(returning),
        tuple(conflict),
        tuple(add),
        tuple(replace),
        scalar,
        tuple(add_floor0),
    )
    result = execute_core(stmt, params)
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
    params, scalar = _array_params(table, names, rows)
    execute_core(_unnest_update(table, names, scalar), params)


def _array_params(
    table: Table, columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> tuple[dict[str, Any], tuple[bool, ...]]:
    """The statement's parameters, and which columns are one value for every row.

    Such a column travels as a single parameter rather than an array of equal elements (the
    driver dumps arrays element by element); the first column always stays an array, as the
    row count. Returns ``(params, scalar)``, ``scalar[i]`` true for a single-value column.
    """
    params: dict[str, Any] = {}
    scalar = []
    for i, name in enumerate(columns):
        values = [row[name] for row in rows]
        first = values[0]
        one = i > 0 and all(v == first and type(v) is type(first) for v in values)
        column_type = table.c[name].type
        if isinstance(column_type, types.JSON):
            values = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
        elif isinstance(column_type, UTCDateTime):
            values = [None if v is None else v.astimezone(UTC) for v in values]
        if one:
            params[f"c{i}"] = values[0]
        elif len({type(v) for v in values if v is not None}) == 1:
            params[f"c{i}"] = BinaryArray(values)
        else:  # no value, or several types (an int beside a Decimal): the text format
            params[f"c{i}"] = values
        scalar.append(one)
    return params, tuple(scalar)


def _pg_array_type(column_type: Any) -> str:
    if isinstance(column_type, UTCDateTime):
        return "timestamptz[]"
    return next(a for t, a in _PG_ARRAY_TYPES if isinstance(column_type, t))


def _unnest_source(table: Table, columns: Sequence[str], scalar: tuple[bool, ...]) -> list[str]:
    """Each column's expression (``v.<name>`` or a cast parameter) and, last, the ``unnest``
    row source they read from."""
    exprs, arrays, names = [], [], []
    for i, name in enumerate(columns):
        array_type = _pg_array_type(table.c[name].type)
        if scalar[i]:
            exprs.append(f"CAST(:c{i} AS {array_type[:-2]})")
        else:
            exprs.append(f"v.{name}")
            arrays.append(f"CAST(:c{i} AS {array_type})")
            names.append(name)
    return [*exprs, f"unnest({', '.join(arrays)}) AS v({', '.join(names)})"]


@functools.cache
def _unnest_update(table: Table, columns: tuple[str, ...], scalar: tuple[bool, ...]) -> TextClause:
    key = columns[0]
    *exprs, source = _unnest_source(table, columns, scalar)
    sets = ", ".join(f"{c} = {e}" for c, e in zip(columns[1:], exprs[1:], strict=True))
    sql = f"UPDATE {table.name} AS t SET {sets} FROM {source} WHERE t.{key} = v.{key}"  # noqa: S608
    return text(sql)


@functools.cache
def _unnest_insert(
    table: Table,
    columns: tuple[str, ...],
    returning: tuple[str, ...],
    conflict: tuple[str, ...],
    add: tuple[str, ...] = (),
    replace: tuple[str, ...] = (),
    scalar: tuple[bool, ...] = (),
    add_floor0: tuple[str, ...] = (),
) -> TextClause:
    *exprs, source = _unnest_source(table, columns, scalar or (False,) * len(columns))
    names = ", ".join(columns)
    sql = f"INSERT INTO {table.name} AS t ({names}) SELECT {', '.join(exprs)} FROM {source}"  # noqa: S608
    if add or replace or add_floor0:
        sets = [f"{c} = t.{c} + excluded.{c}" for c in add]
        sets += [f"{c} = GREATEST(t.{c} + excluded.{c}, 0)" for c in add_floor0]
        sets += [f"{c} = excluded.{c}" for c in replace]
        sql += f" ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {', '.join(sets)}"
    elif conflict:
        sql += " " + conflict_clause(table.name, conflict, "postgresql")
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    return text(sql)
