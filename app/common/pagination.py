"""Keyset pagination: ``limit`` and an opaque ``cursor`` in, ``next_cursor`` out."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import marshmallow as ma
from sqlalchemy import Select

from app.errors import ValidationFailed

MAX_LIMIT = 100


class PageQuerySchema(ma.Schema):
    limit = ma.fields.Integer(load_default=20, validate=ma.validate.Range(1, MAX_LIMIT))
    cursor = ma.fields.String(
        load_default=None, metadata={"description": "next_cursor of the previous page"}
    )


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationFailed(
            "cursor is not valid", code="INVALID_CURSOR", details={"cursor": ["not valid"]}
        ) from exc


def paginate(
    stmt: Select, id_column: Any, *, limit: int, cursor: str | None, newest_first: bool = True
) -> tuple[list[Any], str | None]:
    """Rows of ``stmt`` ordered by ``id_column``, one page, and the cursor of the next page."""
    from app.extensions import db

    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(id_column < after if newest_first else id_column > after)
    stmt = stmt.order_by(id_column.desc() if newest_first else id_column.asc()).limit(limit + 1)
    rows = list(db.session.scalars(stmt))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(getattr(rows[-1], id_column.key))
    return rows, next_cursor
