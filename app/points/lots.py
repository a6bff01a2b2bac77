"""Lots: which points a balance is made of, and when each expires.

Called by ``append_entries`` under the member's account lock, so no lot row needs a lock of its own.
A credit first repays the member's debt (a negative balance left by a clawback), soonest-
expiring pieces first; what is left becomes lots. A debit takes the soonest-expiring lots first
(never-expiring last) and records each lot it took from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import case, func, select

from app.extensions import db
from app.points.expiry import ExpiryPolicy, parse_policy
from app.points.models import PointsAccount, PointsLot, PointsLotConsumption


@dataclass(frozen=True)
class LotPiece:
    """Points to credit as a lot: fresh ones, or ones given back with their original expiry."""

    points: int
    expires_at: datetime | None
    earned_at: datetime
    origin_lot_id: int | None = None


def current_policy() -> ExpiryPolicy:
    return parse_policy(current_app.config["POINTS_EXPIRY"])


def expiry_for(earned_at: datetime) -> datetime | None:
    """When points earned at ``earned_at`` expire under the configured policy."""
    return current_policy().expires_at(earned_at, current_app.config["TIMEZONE"])


def fresh_piece(points: int, earned_at: datetime) -> LotPiece:
    return LotPiece(points, expiry_for(earned_at), earned_at)


def debt_of(balance: int) -> int:
    """Points a member owes: a balance is either lots (≥ 0) or a debt (< 0), never both."""
    return max(0, -balance)


def _soonest_first(piece: LotPiece) -> tuple[bool, datetime | None]:
    return (piece.expires_at is None, piece.expires_at)


def credit_rows(
    entry_id: int, member_id: int, pieces: Sequence[LotPiece], *, debt: int, now: datetime
) -> list[dict]:
    """The lot rows of a credit: repay ``debt`` from the soonest-expiring pieces, then the
    rest becomes lots (rows for one multi-row insert)."""
    rows = []
    owed = debt
    for piece in sorted(pieces, key=_soonest_first):
        repaid = min(owed, piece.points)
        owed -= repaid
        left = piece.points - repaid
        if left <= 0:
            continue
        rows.append(
            {
                "member_id": member_id,
                "entry_id": entry_id,
                "origin_lot_id": piece.origin_lot_id,
                "points": left,
                "remaining": left,
                "earned_at": piece.earned_at,
                "expires_at": piece.expires_at,
                "created_at": now,
            }
        )
    return rows


def open_lots(member_id: int, *, lot_id: int | None = None) -> list[PointsLot]:
    """A member's lots with points left, soonest-expiring first (never-expiring last)."""
    stmt = select(PointsLot).where(PointsLot.member_id == member_id, PointsLot.remaining > 0)
    if lot_id is not None:
        stmt = stmt.where(PointsLot.id == lot_id)
    stmt = stmt.order_by(PointsLot.expires_at.asc().nulls_last(), PointsLot.id)
    return list(db.session.scalars(stmt.execution_options(populate_existing=True)))


def consume(entry_id: int, member_id: int, amount: int, *, lot_id: int | None = None) -> int:
    """Take up to ``amount`` from the member's lots (or from lot ``lot_id`` only)."""
    taken = 0
    for lot in open_lots(member_id, lot_id=lot_id):
        if taken >= amount:
            break
        take = min(lot.remaining, amount - taken)
        lot.remaining -= take
        db.session.add(PointsLotConsumption(entry_id=entry_id, lot_id=lot.id, points=take))
        taken += take
    return taken


def pieces_consumed_by(entry_id: int) -> list[LotPiece]:
    """What a debit took, as pieces that give the same points back with their expiries."""
    rows = db.session.execute(
        select(PointsLotConsumption.points, PointsLot)
        .join(PointsLot, PointsLot.id == PointsLotConsumption.lot_id)
        .where(PointsLotConsumption.entry_id == entry_id)
        .order_by(PointsLotConsumption.id)
    ).all()
    return [LotPiece(int(p), lot.expires_at, lot.earned_at, lot.id) for p, lot in rows]


def lot_differences() -> list[tuple[int, int, int]]:
    """``(member_id, balance, lots_remaining)`` where the lots do not make up the balance.

    A balance ≥ 0 must equal the remaining lots; a negative balance (a debt) allows no lots.
    """
    sums = (
        select(PointsLot.member_id, func.sum(PointsLot.remaining).label("remaining"))
        .group_by(PointsLot.member_id)
        .subquery()
    )
    remaining = func.coalesce(sums.c.remaining, 0)
    expected = case((PointsAccount.balance > 0, PointsAccount.balance), else_=0)
    rows = db.session.execute(
        select(PointsAccount.member_id, PointsAccount.balance, remaining)
        .outerjoin(sums, sums.c.member_id == PointsAccount.member_id)
        .where(remaining != expected)
    ).all()
    return [(int(m), int(b), int(r)) for m, b, r in rows]
