"""Return events: parked until their sale arrives, then applied once through the refund rule.

A return takes back what its refunded money earned (``record_refund``: the sale keeps
``floor(E × (paid − refunded) / paid)``) and gives back the redeemed points of the sale in
proportion to the refunded share of the money paid; both rules are cumulative, so the totals
do not depend on the order the returns arrive in. ``app.pos.events`` parks and applies them.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from app.common.clock import utcnow
from app.common.partitions import where_key
from app.errors import Conflict, DomainError
from app.extensions import db
from app.points.holds import return_redeemed_points
from app.points.models import Purchase
from app.points.purchases import record_refund
from app.pos.context import TillContext
from app.pos.models import PosReturn, PosSale


def find_sale(store_id: int, sale_id: str) -> PosSale | None:
    dialect = db.session.get_bind().dialect.name
    return db.session.execute(
        where_key(select(PosSale), PosSale.__table__, dialect, store_id=store_id, sale_id=sale_id)
    ).scalar_one_or_none()


def lines_json(lines: list[dict] | None) -> str | None:
    if lines is None:
        return None
    return json.dumps(
        [{"sku": x["sku"], "qty": str(x["qty"]), "amount_fen": x["amount_fen"]} for x in lines]
    )


def apply_return(ctx: TillContext, sale: PosSale, ret: PosReturn) -> None:
    purchase = db.session.get(Purchase, sale.purchase_id)
    assert purchase is not None
    remaining = purchase.paid_fen - purchase.refunded_fen
    if ret.refund_fen > remaining:
        raise Conflict(
            "refund exceeds what is left of the money paid",
            code="REFUND_EXCEEDS_PAID",
            details={"refund_fen": ret.refund_fen, "refundable_fen": remaining},
        )
    refund, _ = record_refund(
        purchase.id,
        refund_key=f"pos:{ctx.sale_key(ret.return_id)}",
        refund_fen=ret.refund_fen,
        occurred_at=ret.occurred_at,
    )
    assert refund is not None
    db.session.refresh(purchase)
    ret.points_taken = refund.points_taken
    if sale.redeemed_points and sale.redemption_id is not None:
        # points the sale redeemed come back in proportion to the money refunded, with the
        # expiries of the lots they were taken from
        give = return_redeemed_points(
            sale.redemption_id,
            returned_fen=min(purchase.refunded_fen, sale.paid_fen),
            sale_total_fen=sale.paid_fen,
            return_key=ctx.sale_key(ret.return_id),
        )
        if give > 0:
            sale.redeemed_points_returned += give
            ret.points_returned = give
    ret.state = "applied"
    ret.applied_at = utcnow()


def apply_parked_returns(ctx: TillContext, sale: PosSale) -> list[str]:
    """The sale just arrived: apply its parked returns (oldest first); returns their ids."""
    parked = db.session.scalars(
        select(PosReturn)
        .where(
            PosReturn.store_id == ctx.store_id,
            PosReturn.sale_id == sale.sale_id,
            PosReturn.state == "parked",
        )
        .order_by(PosReturn.occurred_at, PosReturn.return_id)
    ).all()
    applied = []
    for ret in parked:
        try:
            with db.session.begin_nested():
                apply_return(ctx, sale, ret)
            applied.append(ret.return_id)
        except DomainError as exc:
            ret.state = "rejected"
            ret.error_code = exc.code
            ret.applied_at = utcnow()
    return applied
