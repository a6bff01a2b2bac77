"""The KPI report, read from the daily rollups (a row per day and store), never from purchases.

Figures, per Asia/Shanghai day (``None`` where the denominator is zero):

- ``new_members``: members who joined that day (imports from another system excluded), at the
  store they joined at; ``new_members_by_channel``: by how they joined — ``payment`` (paying
  with WeChat Pay or Alipay), ``pos`` (at a till), ``miniprogram`` (logging in to the
  mini-program), ``gift`` (claiming a gifted coupon).
- ``active_members``: distinct members with a purchase that day. A daily count: the same
  member active on several days counts on each, so days are not added up into a range figure.
- ``repurchase_rate``: of those, the share whose first purchase was on an earlier day.
- ``sales_fen``: sales that day (payer money), net of their refunds: a refund comes off the day
  of the sale it returns, whenever it happens, so a day's figures can still fall when a sale of
  that day is returned later.
- ``returning_sales_share``: net sales by members whose first purchase was on an earlier day,
  over all net sales of the day, members or not.
- ``member_sales_share``: net sales by members over all net sales of the day (at most 1).
- ``coupon_redemption_online`` / ``coupon_redemption_offline``: coupons redeemed that day online
  (mini-program) / at a till, over the coupons that ended that day (redeemed or expired; an
  expired coupon counts at its owner's home store).
- ``points_issued``: points credited for purchases and by HQ (earn and adjustments), less those
  refunds took back; ``points_spent``: points spent at tills and in the points mall, net of
  releases and returns; ``points_expired``.

With a store filter, each figure is over those stores (with several stores, distinct counts
are summed per store). ``stores`` and ``clerks`` hold the same counters for the whole range.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from app.db import reads
from app.errors import ValidationFailed
from app.reports.models import BRAND, COUNTERS, KpiClerkDaily, KpiDaily

MAX_DAYS = 400


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _figures(c: dict[str, int]) -> dict[str, Any]:
    ended = c["coupons_redeemed_online"] + c["coupons_redeemed_offline"] + c["coupons_expired"]
    return {
        "new_members": c["new_members"],
        "new_members_by_channel": {
            "payment": c["new_payment"],
            "pos": c["new_pos"],
            "miniprogram": c["new_miniprogram"],
            "gift": c["new_gift"],
        },
        "active_members": c["active_members"],
        "repurchase_rate": _ratio(c["returning_members"], c["active_members"]),
        "returning_sales_share": _ratio(c["returning_sales_fen"], c["sales_fen"]),
        "member_sales_share": _ratio(c["member_sales_fen"], c["sales_fen"]),
        "coupon_redemption_online": _ratio(c["coupons_redeemed_online"], ended),
        "coupon_redemption_offline": _ratio(c["coupons_redeemed_offline"], ended),
        "points_issued": c["points_issued"],
        "points_spent": c["points_spent"],
        "points_expired": c["points_expired"],
        "sales_fen": c["sales_fen"],
        "member_sales_fen": c["member_sales_fen"],
        "returning_sales_fen": c["returning_sales_fen"],
        "purchases": c["purchases"],
    }


def _sums() -> list[Any]:
    return [func.coalesce(func.sum(getattr(KpiDaily, name)), 0).label(name) for name in COUNTERS]


def kpis(start: date, end: date, store_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """``{days: [...], stores: [...], clerks: [...]}`` for ``start``..``end`` (inclusive)."""
    if end < start:
        raise ValidationFailed(
            "to is before from", code="INVALID_RANGE", details={"to": ["after from"]}
        )
    if (end - start).days >= MAX_DAYS:
        raise ValidationFailed(
            f"at most {MAX_DAYS} days",
            code="INVALID_RANGE",
            details={"to": [f"at most {MAX_DAYS} days"]},
        )
    stores = list(store_ids or [])
    scope = KpiDaily.store_id.in_(stores) if stores else KpiDaily.store_id == BRAND
    by_day = {
        row.day: {name: int(row._mapping[name]) for name in COUNTERS}
        for row in reads().execute(
            select(KpiDaily.day, *_sums())
            .where(KpiDaily.day >= start, KpiDaily.day <= end, scope)
            .group_by(KpiDaily.day)
        )
    }
    empty = dict.fromkeys(COUNTERS, 0)
    days = []
    for i in range((end - start).days + 1):
        day = start + timedelta(days=i)
        days.append({"date": day.isoformat(), **_figures(by_day.get(day, empty))})
    return {
        "days": days,
        "stores": _stores(start, end, stores),
        "clerks": _clerks(start, end, stores),
    }


def _stores(start: date, end: date, stores: list[int]) -> list[dict[str, Any]]:
    from app.stores.models import Store

    where = [KpiDaily.day >= start, KpiDaily.day <= end, KpiDaily.store_id != BRAND]
    if stores:
        where.append(KpiDaily.store_id.in_(stores))
    rows = (
        reads()
        .execute(select(KpiDaily.store_id, *_sums()).where(*where).group_by(KpiDaily.store_id))
        .all()
    )
    names = {
        s.id: s
        for s in reads().scalars(select(Store).where(Store.id.in_([r.store_id for r in rows])))
    }
    out = []
    for row in sorted(rows, key=lambda r: r.store_id):
        counters = {name: int(row._mapping[name]) for name in COUNTERS}
        store = names.get(row.store_id)
        figures = _figures(counters)
        figures["member_days"] = figures.pop("active_members")
        out.append(
            {
                "store_id": row.store_id,
                "code": store.code if store else None,
                "name": store.name if store else None,
                **figures,
            }
        )
    return out


def _clerks(start: date, end: date, stores: list[int]) -> list[dict[str, Any]]:
    from app.stores.models import Clerk

    where = [KpiClerkDaily.day >= start, KpiClerkDaily.day <= end]
    if stores:
        where.append(KpiClerkDaily.store_id.in_(stores))
    rows = (
        reads()
        .execute(
            select(
                KpiClerkDaily.clerk_id, KpiClerkDaily.store_id, func.sum(KpiClerkDaily.new_members)
            )
            .where(*where)
            .group_by(KpiClerkDaily.clerk_id, KpiClerkDaily.store_id)
        )
        .all()
    )
    names = {
        c.id: c.name
        for c in reads().scalars(select(Clerk).where(Clerk.id.in_([r[0] for r in rows])))
    }
    return [
        {"clerk_id": c, "name": names.get(c), "store_id": s, "new_members": int(n)}
        for c, s, n in sorted(rows)
    ]
