"""Dashboard figures: the KPI service of the reports feature, when it is installed.

The reports feature provides ``app.reports.services.kpis(start, end, store_ids)`` returning
``{"days": [{date, new_members, new_members_by_channel, active_members, repurchase_rate,
returning_sales_share, member_sales_share, coupon_redemption_online, coupon_redemption_offline,
points_issued, points_spent, points_expired}]}`` (the same as ``GET /admin/v1/reports/kpis``).
Without it the dashboard says there is no data yet; it never invents figures.
"""

from __future__ import annotations

import importlib
import importlib.util
from datetime import date
from typing import Any

from flask_babel import lazy_gettext as _l

from app.console.charts import line_chart, stacked_bars

CHANNELS = {
    "payment": _l("Payment"),
    "pos": _l("Till"),
    "miniprogram": _l("Mini-program"),
    "gift": _l("Gift claim"),
}


def kpi_days(start: date, end: date, store_ids: list[int] | None) -> list[dict[str, Any]] | None:
    """The KPI days, or None when the reports feature is not installed."""
    if importlib.util.find_spec("app.reports") is None:
        return None
    try:
        module = importlib.import_module("app.reports.services")
    except ImportError:
        return None
    kpis = getattr(module, "kpis", None)
    if kpis is None:
        return None
    return list(kpis(start, end, store_ids).get("days", []))


def charts(days: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    labels = [str(d.get("date", ""))[5:] for d in days]

    def col(name: str) -> list[float | None]:
        return [d.get(name) for d in days]

    by_channel = {
        str(name): [(d.get("new_members_by_channel") or {}).get(c, 0) for d in days]
        for c, name in CHANNELS.items()
    }
    return [
        (_l("New members per day, by channel"), stacked_bars(labels, by_channel)),
        (
            _l("Active members"),
            line_chart(labels, {str(_l("Active members")): col("active_members")}),
        ),
        (
            _l("Repurchase rate"),
            line_chart(labels, {str(_l("Repurchase rate")): col("repurchase_rate")}, percent=True),
        ),
        (
            _l("Member share of sales"),
            line_chart(
                labels,
                {
                    str(_l("Member sales share")): col("member_sales_share"),
                    str(_l("Returning sales share")): col("returning_sales_share"),
                },
                percent=True,
            ),
        ),
        (
            _l("Points issued, spent and expired"),
            line_chart(
                labels,
                {
                    str(_l("Issued")): col("points_issued"),
                    str(_l("Spent")): col("points_spent"),
                    str(_l("Expired")): col("points_expired"),
                },
            ),
        ),
        (
            _l("Coupon redemption"),
            line_chart(
                labels,
                {
                    str(_l("Online")): col("coupon_redemption_online"),
                    str(_l("In store")): col("coupon_redemption_offline"),
                },
            ),
        ),
    ]


def totals(days: list[dict[str, Any]]) -> dict[str, Any]:
    def total(name: str) -> int:
        return int(sum(d.get(name) or 0 for d in days))

    last = days[-1] if days else {}
    return {
        "new_members": total("new_members"),
        "active_members": last.get("active_members"),
        "points_issued": total("points_issued"),
        "points_spent": total("points_spent"),
    }
