"""Dialect-neutral ``INSERT … ON CONFLICT`` for counters and once-only rows (PostgreSQL, SQLite)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.extensions import db


def insert_statement(table: Table) -> Any:
    """``INSERT`` of the session's dialect, with its ``on_conflict_…`` methods."""
    dialect = db.session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


def insert_ignore(table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert the rows whose key is not there yet; the others are left as they are."""
    if rows:
        db.session.execute(
            insert_statement(table).on_conflict_do_nothing(index_elements=list(keys)), rows
        )


def upsert_add(
    table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str], add: Sequence[str]
) -> None:
    """Insert each row, or add its ``add`` columns to the existing row's: atomic counters."""
    if not rows:
        return
    stmt = insert_statement(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: table.c[name] + stmt.excluded[name] for name in add},
    )
    db.session.execute(stmt, rows)


def upsert_replace(
    table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str], replace: Sequence[str]
) -> None:
    """Insert each row, or overwrite the existing row's ``replace`` columns with its values."""
    if not rows:
        return
    stmt = insert_statement(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={name: stmt.excluded[name] for name in replace}
    )
    db.session.execute(stmt, rows)
