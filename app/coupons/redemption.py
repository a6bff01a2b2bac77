"""Coupons at the till: held for a POS redemption, then captured by the sale or released.

These functions work inside the caller's transaction and never commit (like the points
ledger), so the POS layer can hold coupons and points in one unit of work. Coupon rows are
locked in id order: two tills holding the same coupon have exactly one winner.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.common.clock import utcnow
from app.coupons.errors import coupon_not_found, invalid, refused
from app.coupons.lookup import lock_coupons_by_codes
from app.coupons.models import Coupon, CouponRedemption
from app.coupons.rules import check_usable, discount_for
from app.coupons.state import Actor, transition
from app.extensions import db
from app.members.services import resolve_member

MAX_CODES = 50


def _codes_key(codes: list[str]) -> str:
    return ",".join(sorted(codes))


def _find(redemption_id: str) -> CouponRedemption | None:
    return db.session.execute(
        select(CouponRedemption)
        .where(CouponRedemption.redemption_id == redemption_id)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _replay(found: CouponRedemption, member_id: int, codes: list[str]) -> int:
    if found.member_id != member_id or found.codes != _codes_key(codes):
        raise refused("REDEMPTION_ID_REUSED", redemption_id=found.redemption_id)
    if found.state == "released":
        raise refused("REDEMPTION_RELEASED", redemption_id=found.redemption_id)
    return int(found.discount_fen)


def hold_for_redemption(
    codes: list[str],
    *,
    member_id: int,
    store_id: int,
    redemption_id: str,
    order_total_fen: int | None,
) -> int:
    """Hold the member's coupons for a POS redemption; returns the discount in fen.

    Validates ownership, state, validity, store and threshold (the threshold only when the
    order total is known). A refusal writes nothing, so the caller's transaction stays usable.
    A repeat of ``redemption_id`` with the same coupons returns the first discount (a released
    one is ``REDEMPTION_RELEASED``); with other coupons or another member it is
    ``REDEMPTION_ID_REUSED``. The total discount never exceeds a known order total.
    """
    wanted = list(dict.fromkeys(codes))
    if len(wanted) > MAX_CODES:
        raise invalid(f"at most {MAX_CODES} coupons per redemption", coupons=["too many"])
    member_id = resolve_member(member_id).id
    found = _find(redemption_id)
    if found is not None:
        return _replay(found, member_id, wanted)
    coupons = lock_coupons_by_codes(wanted)  # waits behind a till holding the same coupons
    found = _find(redemption_id)  # …which may have been this very redemption, sent twice
    if found is not None:
        return _replay(found, member_id, wanted)
    discount = 0
    for code in wanted:
        coupon = coupons.get(code)
        if coupon is None:
            raise coupon_not_found()
        check_usable(coupon, member_id, store_id, order_total_fen)
        discount += discount_for(coupon, order_total_fen)
    if order_total_fen is not None:
        discount = min(discount, order_total_fen)
    record = CouponRedemption(
        redemption_id=redemption_id,
        member_id=member_id,
        store_id=store_id,
        codes=_codes_key(wanted),
        order_total_fen=order_total_fen,
        discount_fen=discount,
        state="held",
        created_at=utcnow(),
    )
    try:
        with db.session.begin_nested():
            db.session.add(record)
    except IntegrityError:  # the same id, held a moment ago by a concurrent call
        return _replay(_find(redemption_id), member_id, wanted)
    actor = Actor("pos", "pos", store_id)
    for code in wanted:
        coupon = coupons[code]
        transition(coupon, "held", "held", actor, ref=f"redemption:{redemption_id}")
        coupon.redemption_id = redemption_id
    db.session.flush()
    return discount


def _lock_redemption(redemption_id: str) -> CouponRedemption | None:
    return db.session.execute(
        select(CouponRedemption)
        .where(CouponRedemption.redemption_id == redemption_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _held_coupons(record: CouponRedemption) -> list[Coupon]:
    codes = record.codes.split(",") if record.codes else []
    coupons = lock_coupons_by_codes(codes)
    return [c for c in coupons.values() if c.redemption_id == record.redemption_id]


def release_redemption(redemption_id: str) -> None:
    """Give the held coupons back (expired ones become ``expired``). Unknown id or a repeat:
    no-op. A captured redemption cannot be released (``REDEMPTION_CAPTURED``)."""
    record = _lock_redemption(redemption_id)
    if record is None or record.state == "released":
        return
    if record.state == "captured":
        raise refused("REDEMPTION_CAPTURED", redemption_id=redemption_id)
    now = utcnow()
    actor = Actor("pos", "pos", record.store_id)
    for coupon in _held_coupons(record):
        if coupon.state == "held":
            to_state = "expired" if coupon.expires_at <= now else "available"
            transition(coupon, to_state, "released", actor, ref=f"redemption:{redemption_id}")
            coupon.redemption_id = None
    record.state = "released"
    record.settled_at = now
    db.session.flush()


def capture_redemption(redemption_id: str, sale_ref: str) -> None:
    """The sale used the held coupons: ``held`` → ``redeemed`` at the redemption's store.

    Unknown id or a repeat: no-op. A released redemption cannot be captured
    (``REDEMPTION_RELEASED``)."""
    record = _lock_redemption(redemption_id)
    if record is None or record.state == "captured":
        return
    if record.state == "released":
        raise refused("REDEMPTION_RELEASED", redemption_id=redemption_id)
    now = utcnow()
    actor = Actor("pos", "pos", record.store_id)
    for coupon in _held_coupons(record):
        if coupon.state == "held":
            transition(coupon, "redeemed", "redeemed", actor, ref=f"sale:{sale_ref}")
            coupon.redeemed_at = now
            coupon.redeemed_store_id = record.store_id
            coupon.sale_ref = sale_ref
    record.state = "captured"
    record.sale_ref = sale_ref
    record.settled_at = now
    db.session.flush()
