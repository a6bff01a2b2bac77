"""Demo coupon templates for the demo brand (``flask demo seed``)."""

from __future__ import annotations

from sqlalchemy import select

from app.coupons.models import CouponTemplate
from app.coupons.templates import create_template
from app.extensions import db

DEMO_TEMPLATES = [
    {"name": "开卡礼 满30减5", "kind": "cash_off", "value_fen": 500, "threshold_fen": 3000,
     "valid_days": 15, "giftable": False, "welcome": True, "per_member_limit": 1},
    {"name": "好友心意券 减8元", "kind": "cash_off", "value_fen": 800, "valid_days": 7,
     "giftable": True},
    {"name": "会员日 8.5折", "kind": "discount", "percent_off": 15, "cap_fen": 2000,
     "valid_days": 10, "giftable": True},
    {"name": "积分兑换 买一赠一", "kind": "gift", "gift_sku": "TEA-CLASSIC", "valid_days": 14,
     "giftable": True, "points_price": 200, "total_stock": 1000, "per_member_limit": 2},
]  # fmt: skip


def seed_demo_coupon_templates() -> list[str]:
    """Create the demo templates that do not exist yet (matched by name); lines to print."""
    lines = []
    for fields in DEMO_TEMPLATES:
        exists = db.session.scalar(
            select(CouponTemplate.id).where(CouponTemplate.name == fields["name"])
        )
        if exists:
            continue
        template = create_template(dict(fields), created_by="demo")
        lines.append(f"  coupon template {template.id}: {template.name}")
    return lines
