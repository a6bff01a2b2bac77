"""Setting and reading the SKU catalog (HQ), set-based: one upsert per request."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.catalog.models import Sku
from app.common.clock import utcnow
from app.common.upsert import upsert_replace
from app.db import unit_of_work
from app.errors import ValidationFailed
from app.extensions import db

MAX_ITEMS = 1000


def set_skus(items: list[dict[str, Any]]) -> list[Sku]:
    """Create or change catalog entries ``{sku, category, name}`` in one statement.

    SKU codes are trimmed as SKU tag rules trim them; a ``null`` category clears it (the SKU
    then counts in no category). The same SKU twice in one request is refused.
    """
    rows: dict[str, dict[str, Any]] = {}
    now = utcnow()
    for i, item in enumerate(items):
        code = item["sku"].strip()
        if not code:
            raise ValidationFailed(
                "a SKU code is required",
                code="VALIDATION_ERROR",
                details={f"items.{i}.sku": ["empty"]},
            )
        if code in rows:
            raise ValidationFailed(
                f"SKU {code} appears twice",
                code="DUPLICATE_SKU",
                details={f"items.{i}.sku": ["twice"]},
            )
        category = item.get("category")
        category = category.strip() or None if isinstance(category, str) else None
        rows[code] = {
            "sku": code,
            "category": category,
            "name": item.get("name"),
            "updated_at": now,
        }
    if not rows:
        return []
    with unit_of_work():
        upsert_replace(
            Sku.__table__, list(rows.values()), ["sku"], ["category", "name", "updated_at"]
        )
    return list(db.session.scalars(select(Sku).where(Sku.sku.in_(list(rows))).order_by(Sku.id)))


def categories() -> list[dict[str, Any]]:
    """Every category in use, with how many SKUs it holds."""
    rows = db.session.execute(
        select(Sku.category, func.count())
        .where(Sku.category.is_not(None))
        .group_by(Sku.category)
        .order_by(Sku.category)
    ).all()
    return [{"category": c, "skus": n} for c, n in rows]
