"""Reminder jobs: turn "what expires soon" lists into outbox messages, each sent once."""

from __future__ import annotations

from typing import Any

from app.common.clock import utcnow
from app.coupons.jobs import expiry_reminders
from app.db import unit_of_work
from app.outbox.services import enqueue_message
from app.points.jobs import members_with_points_expiring

BATCH = 200
PAGE = 5000


def remind_points_expiring(within_days: int = 30, page: int = PAGE) -> dict[str, Any]:
    """One reminder per member per expiry date (the earliest in the window).

    Members are read a page at a time in id order (one clock for all pages), so memory holds a
    page, not the year end's millions."""
    now, after, members = utcnow(), 0, 0
    while rows := members_with_points_expiring(within_days, now=now, after=after, limit=page):
        for start in range(0, len(rows), BATCH):
            with unit_of_work():
                for row in rows[start : start + BATCH]:
                    day = row.expires_at.date().isoformat()
                    enqueue_message(
                        row.member_id,
                        "points_expiring",
                        {"points": row.points, "expires_at": row.expires_at.isoformat()},
                        dedupe_key=f"points-expiring:{row.member_id}:{day}",
                    )
        members += len(rows)
        after = rows[-1].member_id
    return {"members": members}


def remind_coupons_expiring(within_days: int = 3) -> dict[str, Any]:
    """One reminder per coupon; opted-out members' reminders are recorded as skipped."""
    rows = expiry_reminders(within_days, exclude_opted_out=False)
    for start in range(0, len(rows), BATCH):
        with unit_of_work():
            for row in rows[start : start + BATCH]:
                enqueue_message(
                    row["member_id"],
                    "coupon_expiring",
                    {"code": row["code"], "expires_at": row["expires_at"].isoformat()},
                    dedupe_key=f"coupon-expiring:{row['code']}",
                )
    return {"coupons": len(rows)}
