"""Dialect-neutral ``INSERT … ON CONFLICT`` for counters and once-only rows (PostgreSQL, SQLite).

Each is one statement for the whole list (``app.db.insert_rows``: arrays through ``unnest`` on
PostgreSQL). Rows repeating a key are folded first, as one row at a time would have applied
them: ``insert_ignore`` keeps the first, ``upsert_add`` sums the added columns,
``upsert_replace`` keeps the last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.db import insert_rows
from app.extensions import db


def insert_statement(table: Table) -> Any:
    """``INSERT`` of the session's dialect, with its ``on_conflict_…`` methods."""
    dialect = db.session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


def _folded(
    rows: Sequence[dict[str, Any]], keys: Sequence[str], add: Sequence[str] = (), last: bool = False
) -> list[dict[str, Any]]:
    by_key: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        seen = by_key.get(key)
        if seen is None or last:
            by_key[key] = dict(row) if add else row
        elif add:
            for name in add:
                seen[name] += row[name]
    return list(by_key.values())


def insert_ignore(table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert the rows whose key is not there yet; the others are left as they are."""
    if rows:
        insert_rows(table, _folded(rows, keys), conflict=keys)


def upsert_add(
    table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str], add: Sequence[str]
) -> None:
    """Insert each row, or add its ``add`` columns to the existing row's: atomic counters."""
    if rows:
        insert_rows(table, _folded(rows, keys, add), conflict=keys, add=add)


def upsert_replace(
    table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str], replace: Sequence[str]
) -> None:
    """Insert each row, or overwrite the existing row's ``replace`` columns with its values."""
    if rows:
        insert_rows(table, _folded(rows, keys, last=True), conflict=keys, replace=replace)
