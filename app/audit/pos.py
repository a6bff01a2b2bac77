"""POS: every sale has its purchase (and its points), parked returns wait for absent sales."""

from __future__ import annotations

from sqlalchemy import String, and_, literal, or_, select

from app.audit.types import Difference
from app.common.partitions import join_by_key
from app.extensions import db
from app.points.models import PointsEntry, PointsHold, Purchase
from app.pos.models import PosRedemption, PosReturn, PosSale

_HOLD_STATE = {
    "held": "held",
    "captured": "captured",
    "released": "released",
    "expired": "released",
}


def pos_differences() -> list[Difference]:
    return [*_sales_without_purchase(), *_parked_with_sale(), *_redemptions_mismatch()]


def _sales_without_purchase() -> list[Difference]:
    rows = db.session.execute(
        select(PosSale.id, PosSale.member_id, Purchase.id, Purchase.member_id, PosSale.paid_fen)
        .outerjoin(Purchase, Purchase.id == PosSale.purchase_id)
        .where(
            or_(
                Purchase.id.is_(None),
                Purchase.paid_fen != PosSale.paid_fen,
                and_(PosSale.member_id.is_not(None), Purchase.member_id.is_(None)),
            )
        )
    ).all()
    found = [
        Difference(
            "pos_sale_without_purchase",
            f"sale {sid}",
            f"member {member}, purchase {pid} (member {pmember}), paid {paid}",
        )
        for sid, member, pid, pmember, paid in rows
    ]
    earn_key = literal("purchase:") + Purchase.id.cast(String) + literal(":earn")
    unearned = db.session.execute(
        join_by_key(
            select(PosSale.id, Purchase.id, Purchase.points_earned).join(
                Purchase, Purchase.id == PosSale.purchase_id
            ),
            PointsEntry.__table__,
            _dialect(),
            {"idempotency_key": earn_key},
            outer=True,
        ).where(
            Purchase.member_id.is_not(None),
            Purchase.points_earned > 0,
            PointsEntry.id.is_(None),
        )
    ).all()
    found += [
        Difference("pos_sale_points_not_credited", f"sale {sid}", f"purchase {pid} keeps {p}")
        for sid, pid, p in unearned
    ]
    return found


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _parked_with_sale() -> list[Difference]:
    rows = db.session.execute(
        join_by_key(
            select(PosReturn.id, PosReturn.sale_id),
            PosSale.__table__,
            _dialect(),
            {"store_id": PosReturn.store_id, "sale_id": PosReturn.sale_id},
        ).where(PosReturn.state == "parked")
    ).all()
    return [
        Difference("pos_return_parked_after_sale", f"return {rid}", f"sale {sale!r} has arrived")
        for rid, sale in rows
    ]


def _redemptions_mismatch() -> list[Difference]:
    """A redemption holding points agrees with its points hold."""
    rows = db.session.execute(
        select(PosRedemption.id, PosRedemption.state, PointsHold.state)
        .outerjoin(PointsHold, PointsHold.hold_key == PosRedemption.id)
        .where(PosRedemption.points > 0)
    ).all()
    return [
        Difference(
            "pos_redemption_hold_mismatch", f"redemption {rid}", f"{state} but points hold {hold}"
        )
        for rid, state, hold in rows
        if hold != _HOLD_STATE.get(state)
    ]
