"""Per-template campaign report: issued, gifted, claimed, redeemed, expired, redemption rate."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.coupons.models import Coupon, CouponGift
from app.coupons.templates import get_template
from app.extensions import db
from app.stores.models import Store


def template_report(template_id: int) -> dict[str, Any]:
    """Counts for one template. Redemptions at a store are offline; without a store, online.

    ``redemption_rate`` is redeemed / issued (0 when nothing was issued), rounded to 4 places.
    """
    template = get_template(template_id)
    by_state = dict(
        db.session.execute(
            select(Coupon.state, func.count())
            .where(Coupon.template_id == template_id)
            .group_by(Coupon.state)
        ).all()
    )
    gifts = dict(
        db.session.execute(
            select(CouponGift.state, func.count())
            .where(CouponGift.template_id == template_id)
            .group_by(CouponGift.state)
        ).all()
    )
    stores = db.session.execute(
        select(Store.id, Store.code, Store.name, func.count(Coupon.id))
        .join(Coupon, Coupon.redeemed_store_id == Store.id)
        .where(Coupon.template_id == template_id, Coupon.state == "redeemed")
        .group_by(Store.id, Store.code, Store.name)
        .order_by(Store.code)
    ).all()
    issued = sum(by_state.values())
    redeemed = int(by_state.get("redeemed", 0))
    offline = sum(int(row[3]) for row in stores)
    return {
        "template_id": template.id,
        "name": template.name,
        "issued": issued,
        "gifted": sum(gifts.values()),
        "claimed": int(gifts.get("claimed", 0)),
        "redeemed": redeemed,
        "expired": int(by_state.get("expired", 0)),
        "void": int(by_state.get("void", 0)),
        "redemption_rate": round(redeemed / issued, 4) if issued else 0.0,
        "redeemed_online": redeemed - offline,
        "redeemed_offline": offline,
        "by_store": [
            {"store_id": sid, "store_code": code, "store_name": name, "redeemed": int(n)}
            for sid, code, name, n in stores
        ],
        "states": {state: int(n) for state, n in sorted(by_state.items())},
    }
