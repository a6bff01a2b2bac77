"""The one place POS code reaches the coupons package: holds, captures, releases, listings."""

from __future__ import annotations

from app.coupons import services as coupons
from app.coupons.queries import coupons_for_till as usable_coupons


def hold(
    codes: list[str], *, member_id: int, store_id: int, redemption_id: str, order_total_fen: int
) -> int:
    """Hold coupons for a redemption; returns their discount in fen."""
    return int(
        coupons.hold_for_redemption(
            codes,
            member_id=member_id,
            store_id=store_id,
            redemption_id=redemption_id,
            order_total_fen=order_total_fen,
        )
    )


def release(redemption_id: str) -> None:
    coupons.release_redemption(redemption_id)


def capture(redemption_id: str, sale_ref: str) -> None:
    coupons.capture_redemption(redemption_id, sale_ref)


def coupons_for_till(member_id: int, store_id: int) -> list[dict]:
    """Coupons the member can use in this store now, soonest expiry first."""
    return [
        {**c._asdict(), "expires_at": c.expires_at.isoformat()}
        for c in usable_coupons(member_id, store_id)
    ]
