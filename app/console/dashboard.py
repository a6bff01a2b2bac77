"""Dashboard figures from the reports feature's KPI service, the one behind
``GET /admin/v1/reports/kpis`` (``app.reports.services.kpis``): the console holds no second copy
of a figure's definition. A range with no days says there is no data; it never invents figures.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask_babel import lazy_gettext as _l

from app.console.charts import line_chart, stacked_bars
from app.reports.services import kpis

CHANNELS = {
    "payment": _l("Payment"),
    "pos": _l("Till"),
    "miniprogram": _l("Mini-program"),
    "gift": _l("Gift claim"),
}


def kpi_days(start: date, end: date, store_ids: list[int] | None) -> list[dict[str, Any]]:
    """The KPI days of the range, for the principal's stores (``None``: every store)."""
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

    # active members are a daily count (the same member on two days counts twice), so the card
    # shows the range's last day, labelled with that day, as the chart's last point
    last = days[-1] if days else {}
    return {
        "new_members": total("new_members"),
        "active_members": last.get("active_members"),
        "active_members_day": str(last.get("date", ""))[5:],
        "points_issued": total("points_issued"),
        "points_spent": total("points_spent"),
    }
