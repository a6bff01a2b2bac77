"""A till batch, applied set-based by the engine, gives what one event at a time gives."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.admin.auth import create_admin_token
from app.db import unit_of_work
from app.extensions import db
from app.members.models import Member
from app.members.services import create_member, find_by_phone
from app.outbox.models import OutboxMessage
from app.points import lots
from app.points.models import PointsEntry, PointsLot
from app.points.multipliers import create_rule, multiplier_for, multipliers_for
from app.points.purchases import PurchaseIn, record_purchase, record_purchases
from app.points.services import Credit, audit_differences, balance_of, credit_points, post_entry
from app.tags.catalog import create_group
from app.tags.rules import create_rule as create_tag_rule
from app.tags.services import member_tags
from pos_adapter.client import PosClient
from tests.conftest import requires_postgres
from tests.pos_support import make_store, new_terminal, refund, sale, signed_client, statuses


def member(phone: str) -> int:
    with unit_of_work():
        return create_member(source="test", phone=phone).id


def sales(prefix: str, area: str) -> list[dict]:
    """A mixed batch: new and known phones, a member id, anonymous, a phone named twice."""
    known = member(f"139{area}0000001")
    return [
        sale(f"{prefix}-1", 1999, member={"phone": f"139{area}0000001"}),
        sale(f"{prefix}-2", 5000, member={"phone": f"+86139{area}0000002"}),
        sale(f"{prefix}-3", 700),
        sale(f"{prefix}-4", 12345, member={"member_id": known}),
        sale(f"{prefix}-5", 99, member={"phone": f"139{area}0000002"}),
        sale(
            f"{prefix}-6",
            3000,
            member={"phone": f"139{area}0000003"},
            lines=[
                {"sku": "TEA-01", "qty": 1, "amount_fen": 1000},
                {"sku": "CAKE-2", "qty": 2, "amount_fen": 2000},
            ],
        ),
    ]


def phone_of(member_id: int | None) -> str | None:
    return None if member_id is None else db.session.get(Member, member_id).phone[4:]


def ledger(area: str) -> list[tuple]:
    rows = db.session.execute(
        select(Member.phone, PointsEntry.points, PointsEntry.balance_after)
        .join(Member, Member.id == PointsEntry.member_id)
        .where(Member.phone.like(f"139{area}%"))
        .order_by(Member.phone, PointsEntry.id)  # each member's ledger, in its own order
    ).all()
    return [(phone[4:], points, after) for phone, points, after in rows]


def messages(area: str) -> list[tuple]:
    rows = db.session.execute(
        select(Member.phone, OutboxMessage.kind, OutboxMessage.payload, OutboxMessage.status)
        .join(Member, Member.id == OutboxMessage.member_id)
        .where(Member.phone.like(f"139{area}%"))
        .order_by(OutboxMessage.id)
    ).all()
    return [(phone[4:], kind, payload, status) for phone, kind, payload, status in rows]


def test_a_batch_of_new_sales_answers_and_credits_as_one_event_at_a_time_would(
    client, admin_headers, store
):
    make_store(client, admin_headers, "SH002")
    one_by_one = signed_client(client, admin_headers, "SH002")
    single = [one_by_one.send_events([e]).json["results"][0] for e in sales("B", "1")]
    events = sales("B", "2")
    batched = signed_client(client, admin_headers, "SH001").send_events(events).json["results"]

    def comparable(results: list[dict]) -> list[dict]:
        return [{**r, "member_id": phone_of(r["member_id"])} for r in results]

    assert comparable(batched) == comparable(single)
    assert [r["points_earned"] for r in batched] == [19, 50, 0, 123, 0, 30]
    assert ledger("2") == ledger("1") and len(ledger("1")) == 4
    # the same messages (new members are registered before the sales, so in another order)
    assert sorted(map(str, messages("2"))) == sorted(map(str, messages("1")))
    assert len([m for m in messages("1") if m[1] == "points_earned"]) == 4
    assert audit_differences() == [] and lots.lot_differences() == []


def test_a_batch_with_a_replay_and_a_refused_event_answers_each_event(client, admin_headers, store):
    till = signed_client(client, admin_headers, "SH001")
    till.send_events([sale("S1", 1000, member={"phone": "13900000009"})])
    mixed = [
        sale("S1", 1000, member={"phone": "13900000009"}),  # seen before
        sale("S2", 2000, member={"phone": "13900000009"}),
        sale("S3", 500, member={"member_id": 999999}),  # no such member
    ]
    response = till.send_events(mixed)
    assert statuses(response) == ["duplicate", "accepted", "rejected"]
    assert response.json["results"][2]["error"]["code"] == "MEMBER_NOT_FOUND"
    assert balance_of(find_by_phone("13900000009").id) == 30


def test_a_return_waiting_for_a_sale_of_the_batch_is_applied(client, admin_headers, store):
    till = signed_client(client, admin_headers, "SH001")
    assert statuses(till.send_events([refund("R1", "S7", 400)])) == ["parked"]
    buyer = {"phone": "13900000010"}
    response = till.send_events([sale("S6", 1000, member=buyer), sale("S7", 1000, member=buyer)])
    assert statuses(response) == ["accepted", "accepted"]
    assert response.json["results"][1]["returns_applied"] == ["R1"]
    assert balance_of(find_by_phone("13900000010").id) == 16


def test_tag_rules_apply_to_the_buyers_of_a_batch(client, admin_headers, store):
    tag = create_group("taste", exclusive=False, tag_names=["cake lover"]).tags[0]
    create_tag_rule(tag.id, ["CAKE-2"])
    till = signed_client(client, admin_headers, "SH001")
    assert set(statuses(till.send_events(sales("T", "3")))) == {"accepted"}
    tagged = {
        m.id
        for m in db.session.scalars(select(Member))
        if any(mt.tag_id == tag.id for mt in member_tags(m.id))
    }
    assert tagged == {find_by_phone("13930000003").id}


def test_batched_purchases_earn_with_the_multiplier_in_force_at_each_time(app):
    create_rule(
        name="double",
        percent=200,
        starts_at=datetime(2026, 11, 20, tzinfo=UTC),
        ends_at=datetime(2026, 11, 21, tzinfo=UTC),
    )
    times = [datetime(2026, 11, 19, 23, tzinfo=UTC), datetime(2026, 11, 20, 1, tzinfo=UTC)]
    assert multipliers_for(None, times) == [multiplier_for(None, t) for t in times] == [100, 200]
    buyer = member("13900000011")
    with unit_of_work():
        made = record_purchases(
            [PurchaseIn("pos", f"X{i}", buyer, None, 1000, t) for i, t in enumerate(times)]
        )
        again = record_purchases([PurchaseIn("pos", "X0", buyer, None, 1000, times[0])])
    assert [p.points_earned for p in made] == [10, 20]
    assert again[0].purchase_id == made[0].purchase_id and again[0].created is False
    assert balance_of(buyer) == 30


def test_credit_points_repays_a_debt_first_and_credits_a_member_twice_in_order(app):
    a, b = member("13900000012"), member("13900000013")
    with unit_of_work():
        for who in (a, b):
            post_entry(who, -30, kind="clawback", idempotency_key=f"c{who}", allow_negative=True)
        post_entry(a, 50, kind="earn", idempotency_key="e1")
        post_entry(a, 20, kind="earn", idempotency_key="e2")
        results = credit_points([Credit(b, 50, "earn", "f1"), Credit(b, 20, "earn", "f2")])
    assert [r.balance_after for r in results] == [20, 40]
    assert balance_of(a) == balance_of(b) == 40
    remaining = db.session.execute(
        select(PointsLot.member_id, func.sum(PointsLot.remaining)).group_by(PointsLot.member_id)
    ).all()
    assert dict(remaining) == {a: 40, b: 40}
    refused = None
    with unit_of_work():
        try:
            with db.session.begin_nested():
                credit_points([Credit(b, 21, "earn", "f2")])  # a key used before
        except IntegrityError as exc:
            refused = exc
    assert refused is not None and balance_of(b) == 40
    with unit_of_work():
        purchase, _ = record_purchase(
            source="pos",
            external_id="Y",
            member_id=a,
            store_id=None,
            paid_fen=100,
            occurred_at=datetime(2026, 11, 1, tzinfo=UTC),
        )
    assert purchase.points_earned == 1


@requires_postgres
def test_concurrent_batches_naming_the_same_new_phones_make_one_member_each(app):
    client = app.test_client()
    headers = {"Authorization": f"Bearer {create_admin_token('t')}"}
    make_store(client, headers, "SH001")
    codes = [new_terminal(client, headers, "SH001")["activation_code"] for _ in range(4)]
    tills = []
    for code in codes:
        till = PosClient.for_flask(app.test_client())
        assert till.activate(code).status == 201
        tills.append(till)
    phones = [f"1370000{n:04d}" for n in range(30)]
    barrier = threading.Barrier(len(tills))
    answers: list[list[str]] = [[] for _ in tills]

    def upload(i: int) -> None:
        events = [
            sale(f"T{i}-{n}", 1000 + n, member={"phone": phones[(n * (i + 1)) % len(phones)]})
            for n in range(40)
        ]
        with app.app_context():
            barrier.wait()
            answers[i] = statuses(tills[i].send_events(events))
            db.session.remove()

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(len(tills))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(a == ["accepted"] * 40 for a in answers)
    assert db.session.scalar(select(func.count()).select_from(Member)) == len(phones)
    assert db.session.scalar(select(func.count()).select_from(PointsEntry)) == 160
    assert audit_differences() == [] and lots.lot_differences() == []


def test_a_batch_of_sales_without_lines_is_recorded(client, admin_headers, store):
    till = signed_client(client, admin_headers, "SH001")
    response = till.send_events([sale("L1", 800, lines=[]), sale("L2", 900, lines=[])])
    assert statuses(response) == ["accepted", "accepted"]
