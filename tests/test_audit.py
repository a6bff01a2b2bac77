"""``flask audit``: clean data built through the real services audits clean; each kind of
corrupted row (written behind the services' back) is reported by its check, and the command
exits 1."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.audit.services import run_audit
from app.coupons import services as coupons
from app.db import unit_of_work
from app.extensions import db
from app.members.services import create_member
from app.points.services import post_entry
from tests.pos_support import refund, sale, signed_client, statuses
from tests.test_coupons_state_machine import capture, hold, issue, new_template


@pytest.fixture
def world(client, admin_headers, store) -> dict:
    """Members with points, coupons in every live state, a POS sale and a parked return."""
    with unit_of_work():
        alice = create_member(source="test", phone="13800000001")
        bob = create_member(source="test", phone="13800000002")
        post_entry(alice.id, 500, kind="adjust", idempotency_key="fund-alice")
    store_id = store["id"]
    template = new_template()
    held = issue(template, alice.id)
    redeemed = issue(template, alice.id)
    gifted = issue(template, alice.id)
    hold([held], alice.id, store_id, redemption_id="r-held")
    hold([redeemed], alice.id, store_id, redemption_id="r-done")
    capture("r-done", "SH001:S1")
    coupons.create_gift(gifted, alice.id)
    till = signed_client(client, admin_headers, "SH001")
    response = till.send_events(
        [sale("S1", 3000, member={"phone": "13800000002"}), refund("R9", "S-later", 100)]
    )
    assert statuses(response) == ["accepted", "parked"]
    return {"alice": alice.id, "bob": bob.id, "held": held, "redeemed": redeemed, "gift": gifted}


def corrupt(sql: str, **params) -> None:
    with unit_of_work() as session:
        session.execute(text(sql), params)
    db.session.expire_all()


def found_checks(name: str) -> set[str]:
    return {d.check for d in run_audit([name])[name]}


def test_data_made_by_the_services_audits_clean(world, app):
    assert all(not found for found in run_audit().values())
    result = app.test_cli_runner().invoke(args=["audit"])
    assert result.exit_code == 0, result.output
    assert "audit: 0 differences" in result.output


def test_a_balance_edited_by_hand_is_reported_and_the_command_exits_1(world, app):
    corrupt(
        "UPDATE points_accounts SET balance = balance + 7 WHERE member_id = :m", m=world["alice"]
    )
    assert found_checks("ledger") == {"balance_not_ledger_sum", "lots_not_balance"}
    result = app.test_cli_runner().invoke(args=["audit"])
    assert result.exit_code == 1
    assert f"member {world['alice']}: cached 507 != ledger 500" in result.output


def test_lots_that_no_longer_make_up_the_balance_are_reported(world):
    corrupt(
        "UPDATE points_lots SET remaining = remaining - 1 WHERE member_id = :m", m=world["alice"]
    )
    assert found_checks("ledger") == {"lots_not_balance"}


def test_a_held_coupon_whose_redemption_was_released_is_reported(world):
    corrupt("UPDATE coupon_redemptions SET state = 'released' WHERE redemption_id = 'r-held'")
    assert "coupon_held_without_live_redemption" in found_checks("coupons")


def test_a_redeemed_coupon_without_its_sale_is_reported(world):
    corrupt("UPDATE coupons SET sale_ref = NULL WHERE code = :c", c=world["redeemed"])
    assert found_checks("coupons") == {"coupon_redeemed_without_sale"}


def test_a_coupon_whose_state_or_owner_differs_from_its_history_is_reported(world):
    corrupt("UPDATE coupons SET owner_id = :b WHERE code = :c", b=world["bob"], c=world["held"])
    assert "coupon_state_not_history" in found_checks("coupons")


def test_a_gifting_coupon_without_its_pending_gift_is_reported(world):
    corrupt("UPDATE coupon_gifts SET state = 'cancelled'")
    assert found_checks("coupons") == {"coupon_gift_mismatch"}


def test_a_coupon_owned_by_a_merged_away_member_is_reported(world):
    merge_by_hand(world["alice"], into=world["bob"])
    assert "coupon_owned_by_merged_member" in found_checks("coupons")


def merge_by_hand(member_id: int, *, into: int) -> None:
    corrupt(
        "UPDATE members SET status = 'merged', merged_into_id = :into, phone = NULL WHERE id = :m",
        m=member_id,
        into=into,
    )


def test_an_identity_left_on_a_merged_away_member_is_reported(world):
    merge_by_hand(world["alice"], into=world["bob"])
    assert {"identity_on_merged_member", "points_on_merged_member"} <= found_checks("identity")


def test_a_second_phone_on_one_member_is_reported(world):
    corrupt(
        "UPDATE member_identities SET member_id = :b WHERE member_id = :a AND kind = 'phone'",
        a=world["alice"],
        b=world["bob"],
    )
    assert {"member_with_several_phones", "member_phone_not_identity"} <= found_checks("identity")


def test_a_merge_chain_that_ends_at_a_merged_member_or_loops_is_reported(world):
    with unit_of_work():
        carol = create_member(source="test").id
    corrupt(
        "UPDATE members SET status = 'merged', merged_into_id = :b WHERE id = :c",
        b=world["bob"],
        c=carol,
    )
    assert run_audit(["identity"])["identity"] == []
    corrupt(
        "UPDATE members SET status = 'merged', merged_into_id = :c WHERE id = :b",
        b=world["bob"],
        c=carol,
    )
    assert "merge_chain_too_long" in found_checks("identity")
    corrupt("UPDATE members SET merged_into_id = NULL WHERE id = :b", b=world["bob"])
    assert {"merge_chain_dead_end", "member_merge_status"} <= found_checks("identity")


def test_a_member_sale_whose_purchase_lost_its_member_is_reported(world):
    corrupt("UPDATE purchases SET member_id = NULL WHERE source = 'pos'")
    assert "pos_sale_without_purchase" in found_checks("pos")


def test_a_member_sale_whose_points_were_never_credited_is_reported(world):
    corrupt("DELETE FROM points_lots WHERE member_id = :b", b=world["bob"])
    corrupt("DELETE FROM points_entries WHERE member_id = :b", b=world["bob"])
    assert found_checks("pos") == {"pos_sale_points_not_credited"}


def test_a_return_still_parked_after_its_sale_arrived_is_reported(world):
    corrupt("UPDATE pos_returns SET sale_id = 'S1'")
    assert found_checks("pos") == {"pos_return_parked_after_sale"}


def test_a_real_phone_binding_merge_audits_clean(world):
    from app.members.binding import bind_phone

    with unit_of_work():
        payer = create_member(source="wechat_pay", identities=[("wechat_openid", "wx", "oA1")])
        post_entry(payer.id, 120, kind="adjust", idempotency_key="fund-payer")
    issue(new_template(), payer.id)
    result = bind_phone(payer.id, "13800000002", channel="wechat")  # bob's: the two become one
    assert result.merged_from is not None
    assert all(not found for found in run_audit().values()), run_audit()
