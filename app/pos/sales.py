"""One sale event: recorded once per (store, sale_id), points earned on the money paid."""

from __future__ import annotations

from typing import Any

from app.errors import Conflict
from app.extensions import db
from app.members.services import lock_live_member
from app.points.purchases import record_purchase
from app.pos.context import TillContext, lock_sale_key
from app.pos.hooks import run_sale_hooks
from app.pos.members import member_for_ref
from app.pos.models import PosSale, PosSaleLine
from app.pos.redemptions import capture_for_sale
from app.pos.returns import apply_parked_returns, find_sale


def record_sale(ctx: TillContext, data: dict, content_hash: str) -> dict[str, Any]:
    """Apply a validated sale event; inside the event's own transaction."""
    sale_id = data["sale_id"]
    lock_sale_key(ctx.store_id, sale_id)
    existing = find_sale(ctx.store_id, sale_id)
    if existing is not None:
        if existing.content_hash != content_hash:
            raise Conflict(
                "this sale_id was already recorded with other content", code="SALE_ID_CONFLICT"
            )
        return {"status": "duplicate", "member_id": existing.member_id}
    # The member is share-locked like a payment's payer, before any account is touched (a merge
    # locks members first too): a merge racing this sale either finished before (the survivor
    # is credited) or waits and then moves the credit; none is stranded on an absorbed member.
    member_id = None
    if data["member"]:
        member_id = lock_live_member(member_for_ref(data["member"], store_id=ctx.store_id).id).id
    redeemed_points = 0
    if data["redemption_id"]:
        redemption = capture_for_sale(
            ctx, data["redemption_id"], sale_id=sale_id, member_id=member_id
        )
        if member_id is None:
            member_id = lock_live_member(redemption.member_id).id
        redeemed_points = redemption.points
    purchase, _ = record_purchase(
        source="pos",
        external_id=ctx.sale_key(sale_id),
        member_id=member_id,
        store_id=ctx.store_id,
        paid_fen=data["paid_fen"],
        occurred_at=data["occurred_at"],
    )
    earned = purchase.points_earned
    sale = PosSale(
        store_id=ctx.store_id,
        sale_id=sale_id,
        content_hash=content_hash,
        terminal_id=ctx.terminal_id,
        member_id=member_id,
        purchase_id=purchase.id,
        total_fen=data["total_fen"],
        paid_fen=data["paid_fen"],
        redemption_id=data["redemption_id"],
        redeemed_points=redeemed_points,
        redeemed_points_returned=0,
        occurred_at=data["occurred_at"],
    )
    db.session.add(sale)
    db.session.flush()
    db.session.add_all(
        PosSaleLine(
            sale_pk=sale.id,
            line_no=i,
            sku=line["sku"],
            qty=line["qty"],
            amount_fen=line["amount_fen"],
        )
        for i, line in enumerate(data["lines"], start=1)
    )
    applied = apply_parked_returns(ctx, sale)
    if member_id is not None:
        skus = sorted({line["sku"] for line in data["lines"]})
        run_sale_hooks(member_id, ctx.store_id, skus, ctx.sale_key(sale_id))
    db.session.flush()
    result: dict[str, Any] = {"status": "accepted", "member_id": member_id, "points_earned": earned}
    if applied:
        result["returns_applied"] = applied
    return result
