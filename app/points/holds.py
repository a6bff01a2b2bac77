"""Points held for a POS redemption, then captured by the sale or released.

A hold is a negative ``hold`` entry (the points leave the spendable balance at once, so two
tills cannot both spend the last points); a release is a positive ``release`` entry giving back
exactly the lots the hold took, with their original expiries; a capture changes no balance: the
held points stay spent.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from app.common.clock import utcnow
from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.points.lots import LotPiece, fresh_piece, pieces_consumed_by
from app.points.models import PointsEntry, PointsHold
from app.points.services import entry_by_key, lock_account, post_entry


def _lock_hold(hold_key: str) -> PointsHold:
    hold = db.session.execute(
        select(PointsHold).where(PointsHold.hold_key == hold_key).with_for_update()
    ).scalar_one_or_none()
    if hold is None:
        raise NotFound("points hold not found", code="HOLD_NOT_FOUND")
    return hold


def hold_points(
    member_id: int, points: int, *, hold_key: str, store_id: int | None = None
) -> PointsHold:
    """Hold ``points`` (> 0) of a member's balance; a repeat of ``hold_key`` returns the hold."""
    if points <= 0:
        raise Conflict("points to hold must be positive", code="INVALID_POINTS")
    lock_account(member_id)
    existing = db.session.execute(
        select(PointsHold).where(PointsHold.hold_key == hold_key)
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    post_entry(
        member_id,
        -points,
        kind="hold",
        idempotency_key=f"hold:{hold_key}",
        ref_type="hold",
        ref_id=hold_key,
        store_id=store_id,
    )
    hold = PointsHold(
        hold_key=hold_key, member_id=member_id, points=points, store_id=store_id, state="held"
    )
    db.session.add(hold)
    db.session.flush()
    return hold


def release_points(hold_key: str) -> PointsHold:
    """Give held points back. Releasing twice is a no-op; a captured hold cannot be released."""
    hold = _lock_hold(hold_key)
    if hold.state == "released":
        return hold
    if hold.state == "captured":
        raise Conflict("points already captured by a sale", code="HOLD_CAPTURED")
    post_entry(
        _live_member_id(hold.member_id),
        hold.points,
        kind="release",
        idempotency_key=f"release:{hold_key}",
        ref_type="hold",
        ref_id=hold_key,
        store_id=hold.store_id,
        restore_lots=_held_lots(hold),
    )
    hold.state = "released"
    hold.settled_at = utcnow()
    return hold


def capture_points(hold_key: str) -> PointsHold:
    """The sale used the held points: they stay spent. Capturing twice is a no-op."""
    hold = _lock_hold(hold_key)
    if hold.state == "captured":
        return hold
    if hold.state == "released":
        raise Conflict("points hold was released", code="HOLD_RELEASED")
    hold.state = "captured"
    hold.settled_at = utcnow()
    return hold


def return_redeemed_points(
    hold_key: str, *, returned_fen: int, sale_total_fen: int, return_key: str
) -> int:
    """Give back, in proportion, points a captured hold redeemed on a sale now (partly) returned.

    ``returned_fen`` is the total returned so far on the sale (all returns, this one included),
    ``sale_total_fen`` the sale's total. After any number of returns the member has back
    ``floor(points × returned / total)``; each call posts the difference as a
    ``return_of_redeemed`` entry keyed by ``return_key`` (a repeat changes nothing), restoring
    the lots the hold took, latest-expiring first, with their expiries. Returns points given.
    """
    if sale_total_fen <= 0 or returned_fen < 0:
        raise ValidationFailed("amounts must be positive", code="INVALID_AMOUNT")
    hold = _lock_hold(hold_key)
    if hold.state != "captured":
        raise Conflict("only points a sale captured can be returned", code="HOLD_NOT_CAPTURED")
    key = f"return-redeemed:{return_key}"
    done = db.session.execute(entry_by_key(PointsEntry.points, key)).scalar_one_or_none()
    if done is not None:
        return int(done)
    target = hold.points * min(returned_fen, sale_total_fen) // sale_total_fen
    amount = target - hold.returned_points
    if amount <= 0:
        return 0
    latest_first = sorted(
        _held_lots(hold), key=lambda p: (p.expires_at is None, p.expires_at), reverse=True
    )
    pieces = _slice(latest_first, skip=hold.returned_points, take=amount)
    post_entry(
        _live_member_id(hold.member_id),
        amount,
        kind="return_of_redeemed",
        idempotency_key=key,
        ref_type="hold",
        ref_id=hold_key,
        store_id=hold.store_id,
        restore_lots=pieces,
    )
    hold.returned_points += amount
    return amount


def _slice(pieces: list[LotPiece], *, skip: int, take: int) -> list[LotPiece]:
    """The pieces covering points ``skip`` … ``skip + take`` of the list, in order."""
    out = []
    for piece in pieces:
        start = max(0, skip)
        use = min(piece.points - start, take) if start < piece.points else 0
        skip -= piece.points
        if use > 0:
            out.append(replace(piece, points=use))
            take -= use
    return out


def _held_lots(hold: PointsHold) -> list[LotPiece]:
    """The lots the hold took, to give back with their expiries (fresh ones for any rest)."""
    entry_id = db.session.execute(
        entry_by_key(PointsEntry.id, f"hold:{hold.hold_key}")
    ).scalar_one()
    pieces = pieces_consumed_by(entry_id)
    rest = hold.points - sum(p.points for p in pieces)
    if rest > 0:  # a hold taken before lots existed
        pieces.append(fresh_piece(rest, utcnow()))
    return pieces


def _live_member_id(member_id: int) -> int:
    """Points released after a merge go to the surviving member."""
    from app.members.services import resolve_member  # members import points: resolve lazily

    return resolve_member(member_id).id
