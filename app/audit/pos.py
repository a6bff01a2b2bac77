"""POS: every sale has its purchase (and its points), parked returns wait for absent sales."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, String, and_, literal, or_, select

from app.audit.types import Difference
from app.common.partitions import PARTITIONED, key_source
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
        _by_key(
            select(PosSale.id, Purchase.id, Purchase.points_earned).join(
                Purchase, Purchase.id == PosSale.purchase_id
            ),
            PointsEntry,
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


def _by_key(stmt: Select, model: Any, key: dict[str, Any], *, outer: bool = False) -> Select:
    """``stmt`` joined to ``model``'s rows by their unique key: on PostgreSQL through the keys
    table of a partitioned table (its partitions have no index on the key), then to the row
    itself by primary key, so a row deleted behind the ledger's back is still missed."""
    table = model.__table__
    source = key_source(table, db.session.get_bind().dialect.name)
    on = and_(*(source.c[name] == value for name, value in key.items()))
    stmt = stmt.outerjoin(source, on) if outer else stmt.join(source, on)
    if source is table:
        return stmt
    month = table.c[PARTITIONED[table.name].column]
    row = and_(table.c.id == source.c.id, month == source.c[month.key])
    return stmt.outerjoin(table, row) if outer else stmt.join(table, row)


def _parked_with_sale() -> list[Difference]:
    rows = db.session.execute(
        _by_key(
            select(PosReturn.id, PosReturn.sale_id),
            PosSale,
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
