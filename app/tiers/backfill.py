"""Rebuilding every member's basis from the purchases: once, when tiers are switched on for a
brand with history (or to repair what ``flask audit`` reports). Offline work: it reads every
purchase of the window once, streaming, and writes the buckets and totals set-based."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from app.common.clock import SHANGHAI, ensure_aware
from app.db import unit_of_work
from app.extensions import db
from app.points.models import Purchase
from app.points.purchases import refund_base_fen
from app.tiers.ladder import month_of, window_start
from app.tiers.models import MemberTier, MemberTierMonth

BATCH = 5000


def rebuild_basis(now: datetime) -> dict[str, Any]:
    """Recompute every member's monthly buckets, 12-month totals and growth from purchases,
    in one transaction (tiers themselves are left to the re-evaluation that follows)."""
    start = window_start(now)
    since = datetime(start // 100, start % 100, 1, tzinfo=SHANGHAI)
    months: dict[tuple[int, int], list[int]] = {}
    growth: dict[int, int] = {}
    with unit_of_work():
        for member_id, points in db.session.execute(
            select(Purchase.member_id, func.sum(Purchase.points_earned))
            .where(Purchase.member_id.is_not(None))
            .group_by(Purchase.member_id)
        ):
            growth[int(member_id)] = max(0, int(points or 0))
        rows = db.session.execute(
            select(
                Purchase.member_id,
                Purchase.occurred_at,
                Purchase.source,
                Purchase.paid_fen,
                Purchase.total_fen,
                Purchase.refunded_fen,
            )
            .where(Purchase.member_id.is_not(None), Purchase.occurred_at >= since)
            .execution_options(yield_per=BATCH)
        )
        for member_id, occurred_at, source, paid, total, refunded in rows:
            bucket = months.setdefault((member_id, month_of(ensure_aware(occurred_at))), [0, 0])
            base = refund_base_fen(source, total, paid)
            refunded = min(base, refunded)
            bucket[0] += paid - (paid * refunded // base if base > 0 else 0)
            bucket[1] += 0 if base > 0 and refunded >= base else 1
        db.session.execute(delete(MemberTierMonth))
        items = sorted(months.items())
        for i in range(0, len(items), BATCH):
            db.session.execute(
                MemberTierMonth.__table__.insert(),
                [
                    {"member_id": m, "month": mo, "payer_fen": f, "purchases": c}
                    for (m, mo), (f, c) in items[i : i + BATCH]
                ],
            )
        totals: dict[int, list[int]] = {m: [0, 0] for m in growth}
        for (member_id, _), (fen, count) in items:
            total = totals.setdefault(member_id, [0, 0])
            total[0] += fen
            total[1] += count
        existing = set(db.session.scalars(select(MemberTier.member_id)))
        now_ = ensure_aware(now)
        values = [
            {
                "b_member_id": m,
                "b_fen": max(0, t[0]),
                "b_count": max(0, t[1]),
                "b_growth": growth.get(m, 0),
                "b_window": start,
                "b_now": now_,
            }
            for m, t in sorted(totals.items())
        ]
        _write_totals(
            [v for v in values if v["b_member_id"] in existing],
            [v for v in values if v["b_member_id"] not in existing],
        )
    return {"members": len(totals), "months": len(items)}


def _write_totals(updates: list[dict[str, Any]], inserts: list[dict[str, Any]]) -> None:
    from sqlalchemy import bindparam, update

    table = MemberTier.__table__
    if updates:
        db.session.execute(
            update(table)
            .where(table.c.member_id == bindparam("b_member_id"))
            .values(
                payer_fen_12m=bindparam("b_fen"),
                purchases_12m=bindparam("b_count"),
                growth=bindparam("b_growth"),
                window_month=bindparam("b_window"),
                updated_at=bindparam("b_now"),
            ),
            updates,
        )
    for i in range(0, len(inserts), BATCH):
        db.session.execute(
            table.insert(),
            [
                {
                    "member_id": v["b_member_id"],
                    "payer_fen_12m": v["b_fen"],
                    "purchases_12m": v["b_count"],
                    "growth": v["b_growth"],
                    "window_month": v["b_window"],
                    "reach_no": 0,
                    "updated_at": v["b_now"],
                }
                for v in inserts[i : i + BATCH]
            ],
        )
