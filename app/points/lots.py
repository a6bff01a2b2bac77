"""Lots: which points a balance is made of, and when each expires.

Called by ``append_entries`` under the member's account lock, so no lot row needs a lock of its own.
A credit first repays the member's debt (a negative balance left by a clawback), soonest-
expiring pieces first; what is left becomes lots. A debit takes the soonest-expiring lots first
(never-expiring last) and records each lot it took from; ``consume`` does that for a whole
batch of debits in three statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import case, func, or_, select

from app.db import among, insert_rows, update_rows
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


@dataclass(frozen=True)
class Debit:
    """Points a debit entry takes from its member's lots: up to ``amount``, soonest-expiring
    first, or from lot ``lot_id`` only (the expiry)."""

    entry_id: int
    member_id: int
    amount: int
    lot_id: int | None = None


def consume(debits: Sequence[Debit]) -> list[int]:
    """Take each debit's points from its member's lots (soonest-expiring first, never-expiring
    last, or its ``lot_id`` only) and record what it took; the points taken, per debit.

    Set-based: one ``SELECT`` of the open lots of every debit, one ``UPDATE`` of the lots taken
    from (``update_rows``) and one multi-row ``INSERT`` of the consumptions, whatever the
    number of debits. Debits of one member are taken in list order.
    """
    wanted = [d for d in debits if d.amount > 0]
    if not wanted:
        return [0] * len(debits)
    whole = sorted({d.member_id for d in wanted if d.lot_id is None})
    single = sorted({d.lot_id for d in wanted if d.lot_id is not None})
    rows = db.session.execute(
        select(PointsLot.id, PointsLot.member_id, PointsLot.remaining)
        .where(
            PointsLot.remaining > 0,
            or_(among(PointsLot.member_id, whole), among(PointsLot.id, single)),
        )
        .order_by(PointsLot.member_id, PointsLot.expires_at.asc().nulls_last(), PointsLot.id)
    ).all()
    remaining = {int(i): int(r) for i, _, r in rows}
    by_member: dict[int, list[int]] = {}
    for lot_id, member_id, _ in rows:
        by_member.setdefault(int(member_id), []).append(int(lot_id))
    owner = {int(i): int(m) for i, m, _ in rows}
    taken_per_debit: list[int] = []
    consumed: list[dict] = []
    for debit in debits:
        if debit.lot_id is None:
            candidates = by_member.get(debit.member_id, [])
        else:
            candidates = [debit.lot_id] if owner.get(debit.lot_id) == debit.member_id else []
        taken = 0
        for lot_id in candidates:
            if taken >= debit.amount:
                break
            take = min(remaining[lot_id], debit.amount - taken)
            if take <= 0:
                continue
            remaining[lot_id] -= take
            consumed.append({"entry_id": debit.entry_id, "lot_id": lot_id, "points": take})
            taken += take
        taken_per_debit.append(taken)
    touched = sorted({c["lot_id"] for c in consumed})
    update_rows(PointsLot.__table__, "id", [{"id": i, "remaining": remaining[i]} for i in touched])
    insert_rows(PointsLotConsumption.__table__, consumed)
    for lot_id in touched:  # a copy loaded earlier in this transaction is now stale
        loaded = db.session.identity_map.get(db.session.identity_key(PointsLot, lot_id))
        if loaded is not None:
            db.session.expire(loaded)
    return taken_per_debit


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
