"""The coupon state machine: every legal step works and records an event; every other step is
refused with a stable code, both at the guard and through the services that drive it.

The helpers at the top are shared by the other coupon test modules.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.common.clock import advance, frozen
from app.coupons import services
from app.coupons.jobs import expire_coupons
from app.coupons.models import COUPON_STATES, Coupon, CouponEvent
from app.coupons.state import TRANSITIONS, Actor, transition
from app.db import transaction, unit_of_work
from app.errors import DomainError
from app.extensions import db
from app.members.services import create_member
from app.points.services import post_entry
from app.stores.services import create_store

T0 = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clock():
    with frozen(T0):
        yield


def new_member(phone: str | None = None, points: int = 0) -> int:
    with unit_of_work():
        member = create_member(source="test", phone=phone, welcome=False)
        if points:
            post_entry(member.id, points, kind="adjust", idempotency_key=f"fund-{member.id}")
    return member.id


def new_store(code: str = "SH001") -> int:
    return create_store(code, f"store {code}").id


def new_template(**fields) -> int:
    values = {"name": "满30减5", "kind": "cash_off", "value_fen": 500, "valid_days": 7}
    values["giftable"] = True
    values.update(fields)
    return services.create_template(values, created_by="test").id


def issue(template_id: int, member_id: int) -> str:
    issued, skipped = services.issue_to_members(template_id, [member_id], admin_name="test")
    assert not skipped, skipped
    return issued[0].code


def hold(codes, member_id, store_id, redemption_id="r1", total=None) -> int:
    with unit_of_work():
        return services.hold_for_redemption(
            list(codes),
            member_id=member_id,
            store_id=store_id,
            redemption_id=redemption_id,
            order_total_fen=total,
        )


def capture(redemption_id="r1", sale_ref="sale-1") -> None:
    with unit_of_work():
        services.capture_redemption(redemption_id, sale_ref)


def release(redemption_id="r1") -> None:
    with unit_of_work():
        services.release_redemption(redemption_id)


def coupon(code: str) -> Coupon:
    db.session.expire_all()
    return db.session.execute(select(Coupon).where(Coupon.code == code)).scalar_one()


def events(code: str) -> list[str]:
    found = coupon(code)
    return list(
        db.session.execute(
            select(CouponEvent.kind)
            .where(CouponEvent.coupon_id == found.id)
            .order_by(CouponEvent.id)
        ).scalars()
    )


def race(app, calls) -> list:
    """Run ``calls`` at once on real threads (each in its own app context, retried on
    serialization failures); each result is the call's value or its refusal code."""
    results: list = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                results[i] = transaction(calls[i])
            except DomainError as exc:
                results[i] = exc.code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def in_transaction(fn, *args, **kwargs):
    """A call for ``race`` of a function that works inside its caller's transaction."""

    def call():
        with unit_of_work():
            return fn(*args, **kwargs)

    return call


def refused_code(action) -> str:
    with pytest.raises(DomainError) as info:
        action()
    return info.value.code


# --- the guard itself --------------------------------------------------------------------------

ALL_KINDS = sorted({kind for kinds in TRANSITIONS.values() for kind in kinds} - {"issued"})


@pytest.mark.parametrize("to_state", COUPON_STATES)
@pytest.mark.parametrize("from_state", COUPON_STATES)
def test_the_guard_allows_exactly_the_listed_transitions_and_records_each(from_state, to_state):
    owner = new_member()
    found = Coupon(
        code="C-guard",
        template_id=new_template(),
        owner_id=owner,
        issued_to_id=owner,
        source="admin",
        valid_from=T0,
        expires_at=T0 + timedelta(days=7),
    )
    with unit_of_work():
        transition(found, "available", "issued", Actor("test", "admin"))
    for kind in ALL_KINDS:
        with unit_of_work():
            found = coupon("C-guard")
            found.state = from_state
        before = len(events("C-guard"))
        found = coupon("C-guard")
        if kind in TRANSITIONS.get((from_state, to_state), ()):
            with unit_of_work():
                transition(found, to_state, kind, Actor("test", "admin"))
            assert coupon("C-guard").state == to_state
            assert events("C-guard")[before:] == [kind]
        else:
            with pytest.raises(DomainError) as info:
                transition(found, to_state, kind, Actor("t", "admin"))
            db.session.rollback()
            code = info.value.code
            assert code in {"COUPON_ALREADY_USED", "COUPON_EXPIRED", "COUPON_NOT_AVAILABLE"}
            assert coupon("C-guard").state == from_state
            assert len(events("C-guard")) == before


def test_a_merge_step_keeps_the_state_and_changes_only_the_owner():
    first, second = new_member(), new_member()
    code = issue(new_template(), first)
    for _ in range(2):  # a repeat moves nothing more
        with unit_of_work():
            services.on_member_merge(first, second)
    assert coupon(code).owner_id == second and coupon(code).state == "available"
    assert events(code) == ["issued", "merged"]


# --- the services, from every state ------------------------------------------------------------


def coupon_in(state: str) -> tuple[str, int, int]:
    """A coupon brought to ``state`` through the services: (code, owner, store)."""
    owner, store = new_member("13800000001"), new_store()
    code = issue(new_template(), owner)
    if state == "gifting":
        services.create_gift(code, owner)
    elif state == "held":
        hold([code], owner, store)
    elif state == "redeemed":
        hold([code], owner, store)
        capture()
    elif state == "expired":
        advance(timedelta(days=8))
        assert expire_coupons() == {"expired": 1}
    elif state == "void":
        services.void_coupon(code, admin_name="test", reason="test")
    assert coupon(code).state == state
    return code, owner, store


REFUSAL = {
    "gifting": "COUPON_NOT_AVAILABLE",
    "held": "COUPON_NOT_AVAILABLE",
    "redeemed": "COUPON_ALREADY_USED",
    "expired": "COUPON_EXPIRED",
    "void": "COUPON_NOT_AVAILABLE",
}


@pytest.mark.parametrize("state", COUPON_STATES)
def test_gifting_is_allowed_only_from_available(state):
    code, owner, _ = coupon_in(state)
    if state == "available":
        services.create_gift(code, owner)
        assert coupon(code).state == "gifting"
    else:
        assert refused_code(lambda: services.create_gift(code, owner)) == REFUSAL[state]
        assert coupon(code).state == state


@pytest.mark.parametrize("state", COUPON_STATES)
def test_holding_at_a_till_is_allowed_only_from_available(state):
    code, owner, store = coupon_in(state)
    if state == "available":
        assert hold([code], owner, store, redemption_id="r2") == 500
        assert coupon(code).state == "held"
    else:
        refusal = refused_code(lambda: hold([code], owner, store, redemption_id="r2"))
        db.session.rollback()
        assert refusal == REFUSAL[state]
        assert coupon(code).state == state


@pytest.mark.parametrize("state", COUPON_STATES)
def test_voiding_is_allowed_only_while_unused(state):
    code, _, _ = coupon_in(state)
    if state in ("available", "gifting"):
        services.void_coupon(code, admin_name="ops", reason="campaign withdrawn")
        assert coupon(code).state == "void"
        assert events(code)[-1] == "voided"
    else:
        refusal = refused_code(lambda: services.void_coupon(code, admin_name="o", reason="x"))
        assert refusal == REFUSAL[state]
        assert coupon(code).state == state


@pytest.mark.parametrize("state", COUPON_STATES)
def test_the_expiry_job_expires_only_available_coupons(state):
    code, _, _ = coupon_in(state)
    advance(timedelta(days=30))
    expire_coupons()
    assert coupon(code).state == ("expired" if state == "available" else state)


def test_each_legal_step_through_the_services_is_recorded_with_who_and_where():
    owner, friend, store = new_member("13800000001"), new_member("13800000002"), new_store()
    code = issue(new_template(), owner)
    gift, _ = services.create_gift(code, owner)
    services.cancel_gift(gift.token, owner)
    gift, _ = services.create_gift(code, owner)
    services.claim_gift(gift.token, friend)
    hold([code], friend, store, redemption_id="till-1")
    release("till-1")
    hold([code], friend, store, redemption_id="till-2")
    capture("till-2", "sale-9")
    assert events(code) == [
        "issued",
        "gift_created",
        "gift_cancelled",
        "gift_created",
        "gift_claimed",
        "held",
        "released",
        "held",
        "redeemed",
    ]
    rows = coupon(code).events
    assert [(e.from_state, e.to_state) for e in rows][-2:] == [
        ("available", "held"),
        ("held", "redeemed"),
    ]
    assert rows[0].actor == "admin:test" and rows[0].channel == "admin"
    assert rows[4].actor == f"member:{friend}" and rows[4].owner_id == friend
    assert rows[-1].channel == "pos" and rows[-1].store_id == store
    assert rows[-1].ref == "sale:sale-9"
    assert all(e.created_at == T0 for e in rows)
