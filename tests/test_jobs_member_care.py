"""Birthday care, reminders and the messages features write to the outbox."""

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from app.common.clock import frozen
from app.coupons.models import Coupon
from app.coupons.templates import create_template
from app.db import unit_of_work
from app.extensions import db
from app.members.birthday import send_birthday_coupons
from app.members.services import create_member
from app.outbox.models import OutboxMessage
from app.outbox.reminders import remind_coupons_expiring, remind_points_expiring
from app.points.purchases import record_purchase
from miniprogram_api.auth import issue_member_token

MORNING = datetime(2026, 6, 18, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


def member(phone: str, birthday: date | None = None, opt_out: bool = False) -> int:
    with unit_of_work():
        m = create_member(source="test", phone=phone, birthday=birthday)
        m.marketing_opt_out = opt_out
    return m.id


def messages(kind: str | None = None) -> list[OutboxMessage]:
    stmt = select(OutboxMessage).order_by(OutboxMessage.id)
    if kind:
        stmt = stmt.where(OutboxMessage.kind == kind)
    else:
        stmt = stmt.where(OutboxMessage.kind != "welcome")
    return list(db.session.scalars(stmt))


def birthday_template(app) -> int:
    template = create_template(
        {
            "name": "生日券",
            "kind": "cash_off",
            "value_fen": 1000,
            "valid_days": 15,
            "giftable": False,
        }
    )
    app.config["BIRTHDAY_COUPON_TEMPLATE_ID"] = template.id
    return template.id


def test_todays_birthdays_get_the_coupon_once_a_year(app):
    birthday_template(app)
    today = member("13800000001", date(1990, 6, 18))
    member("13800000002", date(1990, 6, 19))
    try:
        with frozen(MORNING):
            first = send_birthday_coupons()
            again = send_birthday_coupons()
    finally:
        app.config["BIRTHDAY_COUPON_TEMPLATE_ID"] = None
    assert first["coupons"] == 1 and again["coupons"] == 1  # the rerun finds the same coupon
    coupons = db.session.scalars(select(Coupon)).all()
    assert [(c.owner_id, c.source) for c in coupons] == [(today, "birthday")]
    assert [m.member_id for m in messages("birthday")] == [today]


def test_the_birthday_follows_the_shanghai_calendar_not_utc(app):
    birthday_template(app)
    member("13800000001", date(1990, 6, 18))
    try:
        with frozen(datetime(2026, 6, 17, 15, 59, tzinfo=UTC)):  # 23:59 on the 17th
            assert send_birthday_coupons()["members"] == 0
        with frozen(datetime(2026, 6, 17, 16, 0, tzinfo=UTC)):  # 00:00 on the 18th
            assert send_birthday_coupons()["members"] == 1
    finally:
        app.config["BIRTHDAY_COUPON_TEMPLATE_ID"] = None


def test_leap_day_birthdays_are_celebrated_on_28_february_in_other_years():
    leap = member("13800000001", date(2000, 2, 29))
    with frozen(datetime(2027, 2, 28, 1, 0, tzinfo=UTC)):
        assert send_birthday_coupons()["members"] == 1
    with frozen(datetime(2028, 2, 28, 1, 0, tzinfo=UTC)):  # a leap year: wait for the 29th
        assert send_birthday_coupons()["members"] == 0
    with frozen(datetime(2028, 2, 29, 1, 0, tzinfo=UTC)):
        assert send_birthday_coupons()["members"] == 1
    assert [m.member_id for m in messages("birthday")] == [leap, leap]


def test_marketing_messages_to_opted_out_members_are_recorded_skipped():
    member("13800000001", date(1990, 6, 18), opt_out=True)
    with frozen(MORNING):
        send_birthday_coupons()
    (message,) = messages("birthday")
    assert message.status == "skipped"


def test_a_purchase_with_points_writes_one_points_earned_message():
    buyer = member("13800000001")
    for _ in range(2):
        with unit_of_work():
            record_purchase(
                source="pos",
                external_id="S1:1",
                member_id=buyer,
                store_id=None,
                paid_fen=3500,
                occurred_at=MORNING,
            )
    (message,) = messages("points_earned")
    assert message.member_id == buyer and message.payload["points"] == 35
    assert message.status == "pending"


def test_points_expiring_reminders_are_written_once_per_member_and_expiry():
    buyer = member("13800000001")
    with frozen(datetime(2025, 3, 1, tzinfo=UTC)), unit_of_work():
        record_purchase(
            source="pos",
            external_id="S1:1",
            member_id=buyer,
            store_id=None,
            paid_fen=10000,
            occurred_at=datetime(2025, 3, 1, tzinfo=UTC),
        )
    with frozen(datetime(2026, 12, 10, tzinfo=UTC)):  # expires at the end of 2026 (Shanghai)
        assert remind_points_expiring()["members"] == 1
        remind_points_expiring()
    (reminder,) = messages("points_expiring")
    assert reminder.payload["points"] == 100


def test_points_expiring_reminders_walk_the_members_a_page_at_a_time():
    """Five members with points expiring, pages of two: every member reminded once, in three
    pages, the same as in one page."""
    buyers = [member(f"1380000001{i}") for i in range(5)]
    with frozen(datetime(2025, 3, 1, tzinfo=UTC)), unit_of_work():
        for i, buyer in enumerate(buyers):
            record_purchase(
                source="pos",
                external_id=f"S2:{i}",
                member_id=buyer,
                store_id=None,
                paid_fen=1000 * (i + 1),
                occurred_at=datetime(2025, 3, 1, tzinfo=UTC),
            )
    with frozen(datetime(2026, 12, 10, tzinfo=UTC)):
        assert remind_points_expiring(page=2)["members"] == 5
        assert remind_points_expiring()["members"] == 5  # again: nothing new is written
    reminders = messages("points_expiring")
    assert sorted((m.member_id, m.payload["points"]) for m in reminders) == [
        (buyer, 10 * (i + 1)) for i, buyer in enumerate(buyers)
    ]


def test_coupon_events_tell_the_owner(client):
    owner = member("13800000001")
    template = create_template(
        {"name": "满30减5", "kind": "cash_off", "value_fen": 500, "valid_days": 2, "giftable": True}
    )
    from app.coupons.issuance import issue_once

    with unit_of_work():
        coupon = issue_once(template.id, owner, source="admin", issue_key="k")
    assert [m.kind for m in messages()] == ["coupon_received"]
    friend = member("13800000002")
    token = issue_member_token(owner, "wechat")
    gift = client.post(
        f"/mp/v1/coupons/{coupon.code}/gift", headers={"Authorization": f"Bearer {token}"}
    ).get_json()
    friend_token = issue_member_token(friend, "wechat")
    claim = client.post(
        f"/mp/v1/gifts/{gift['gift_token']}/claim",
        headers={"Authorization": f"Bearer {friend_token}"},
    )
    assert claim.status_code == 200, claim.get_json()
    assert [(m.kind, m.member_id) for m in messages()] == [
        ("coupon_received", owner),
        ("coupon_gifted", owner),
        ("coupon_received", friend),
        ("coupon_claimed", owner),
    ]
    with frozen(datetime.now(UTC) + timedelta(days=1)):
        remind_coupons_expiring()
        remind_coupons_expiring()
    assert [m.member_id for m in messages("coupon_expiring")] == [friend]


def test_a_member_sets_a_birthday_once_and_chooses_marketing(client):
    buyer = member("13800000001")
    headers = {"Authorization": f"Bearer {issue_member_token(buyer, 'wechat')}"}
    first = client.put("/mp/v1/me/birthday", json={"birthday": "1995-06-18"}, headers=headers)
    assert first.status_code == 200 and first.get_json() == {"birthday": "1995-06-18"}
    again = client.put("/mp/v1/me/birthday", json={"birthday": "1996-01-01"}, headers=headers)
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "BIRTHDAY_ALREADY_SET"
    out = client.put("/mp/v1/me/marketing", json={"opt_out": True}, headers=headers)
    assert out.get_json() == {"marketing_opt_out": True}
    back = client.put("/mp/v1/me/marketing", json={"opt_out": False}, headers=headers)
    assert back.get_json() == {"marketing_opt_out": False}
