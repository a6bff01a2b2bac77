"""Identifying members at the till, and one whole till session through the signed client."""

from __future__ import annotations

from app.db import unit_of_work
from app.members.codes import issue_member_code
from app.members.services import create_member, find_by_phone
from app.points.services import audit_differences, balance_of, post_entry
from pos_adapter.client import PosClient
from tests.conftest import requires_postgres
from tests.pos_support import new_terminal, present, refund, sale, signed_client, statuses


def test_an_unknown_phone_is_not_found_unless_the_till_asks_to_register_it(
    client, admin_headers, store
):
    till = signed_client(client, admin_headers, "SH001")
    missing = till.identify(phone="13700000001")
    assert missing.status == 404 and missing.error_code == "MEMBER_NOT_FOUND"
    assert find_by_phone("13700000001") is None
    enrolled = till.identify(phone="+8613700000001", register=True, consent=True)
    assert enrolled.status == 200
    assert enrolled.json["registered"] is True
    assert enrolled.json["phone_masked"] == "137****0001"
    assert enrolled.json["points_balance"] == 0 and enrolled.json["coupons"] == []
    member = find_by_phone("13700000001")
    assert member is not None and member.source == "pos"
    again = till.identify(phone="13700000001", register=True, consent=True).json
    assert again["member_id"] == member.id and again["registered"] is False


def test_a_member_code_identifies_and_a_bad_or_payment_code_does_not(client, admin_headers, store):
    till = signed_client(client, admin_headers, "SH001")
    with unit_of_work():
        member_id = create_member(source="test", phone="13700000002").id
        post_entry(member_id, 88, kind="adjust", idempotency_key="gift")
    code, _ = issue_member_code(member_id)
    found = till.identify(member_code=code).json
    assert found["member_id"] == member_id and found["points_balance"] == 88
    wechat_pay_code = till.identify(member_code="134567890123456789")
    assert wechat_pay_code.status == 422 and wechat_pay_code.error_code == "MEMBER_CODE_INVALID"
    both = till.request(
        "POST", "/pos/v1/members/identify", {"phone": "13700000002", "member_code": code}
    )
    assert both.status == 422


def test_a_till_activates_identifies_holds_sells_and_returns(client, admin_headers, store):
    created = new_terminal(client, admin_headers, "SH001")
    till = PosClient.for_flask(client)
    assert till.activate(created["activation_code"]).status == 201

    member = till.identify(phone="13700000003", register=True, consent=True).json
    member_id = member["member_id"]
    first = till.send_events([sale("T-1", 20000, member={"member_id": member_id})])
    assert statuses(first) == ["accepted"]
    assert till.identify(phone="13700000003").json["points_balance"] == 200

    held = till.hold(
        sale_id="T-2", presence_token=present(till, member_id), points=100, total_fen=5000
    ).json
    assert held["discount_fen"] == 100
    second = sale("T-2", 4900, total_fen=5000, redemption_id=held["id"])
    assert statuses(till.send_events([second])) == ["accepted"]
    assert balance_of(member_id) == 200 - 100 + 49

    assert statuses(till.send_events([refund("T-2-R", "T-2", 4900)])) == ["accepted"]
    assert balance_of(member_id) == 200
    assert audit_differences() == []


def _at_once(count: int, action) -> list:
    import threading

    results: list = []
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        barrier.wait()
        results.append(action(index))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@requires_postgres
def test_two_tills_enrolling_the_same_phone_at_once_make_one_member(
    app, client, admin_headers, store
):
    tills = [signed_client(client, admin_headers, "SH001") for _ in range(3)]

    def enrol(index: int):
        own = PosClient.for_flask(
            app.test_client(), terminal_id=tills[index].terminal_id, secret=tills[index].secret
        )
        response = own.identify(phone="13700000009", register=True, consent=True)
        return response.status, response.json["member_id"], response.json["registered"]

    results = _at_once(3, enrol)
    assert {status for status, _, _ in results} == {200}
    assert len({member_id for _, member_id, _ in results}) == 1
    assert sorted(registered for _, _, registered in results) == [False, False, True]


@requires_postgres
def test_an_activation_code_used_twice_at_once_activates_once(app, client, admin_headers, store):
    code = new_terminal(client, admin_headers, "SH001")["activation_code"]
    results = _at_once(3, lambda _: PosClient.for_flask(app.test_client()).activate(code).status)
    assert sorted(results) == [201, 401, 401]
