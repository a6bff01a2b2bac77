"""SKU tag rules: a sale applies the tag once, however often it is replayed."""

import threading

import pytest
from sqlalchemy import select

from app.db import transaction, unit_of_work
from app.extensions import db
from app.members.models import Member
from app.members.services import create_member
from app.stores.services import create_store
from app.tags.catalog import archive_tag, create_group
from app.tags.models import MemberTag, MemberTagEvent
from app.tags.rules import apply_tag_rules_for_sale
from app.tags.services import Actor, change_member_tags
from tests.conftest import requires_postgres
from tests.test_foundation_http import assert_error


@pytest.fixture
def ruled(client, admin_headers):
    store = create_store("SH001", "静安店")
    with unit_of_work():
        member = create_member(source="test", phone="13812345678")
    skin = create_group("肤质", exclusive=True, tag_names=["油性", "干性"])
    oily, dry = (t.id for t in skin.tags)
    response = client.post(
        "/admin/v1/tag-rules",
        json={"tag_id": oily, "skus": ["OIL-CTRL-1", "OIL-CTRL-2"]},
        headers=admin_headers,
    )
    assert response.status_code == 201, response.get_json()
    return {
        "store": store.id,
        "member": member.id,
        "oily": oily,
        "dry": dry,
        "rule": response.get_json(),
    }


def apply(ruled, skus, sale_key, member_id=None):
    with unit_of_work():
        return apply_tag_rules_for_sale(
            member_id or ruled["member"], ruled["store"], skus, sale_key
        )


def events(member_id):
    return list(
        db.session.scalars(
            select(MemberTagEvent)
            .where(MemberTagEvent.member_id == member_id)
            .order_by(MemberTagEvent.id)
        )
    )


def test_rules_are_listed_with_their_skus(client, admin_headers, ruled):
    listed = client.get("/admin/v1/tag-rules", headers=admin_headers).get_json()["items"]
    assert [(r["tag_name"], r["skus"]) for r in listed] == [("油性", ["OIL-CTRL-1", "OIL-CTRL-2"])]
    assert_error(
        client.post(
            "/admin/v1/tag-rules", json={"tag_id": ruled["oily"], "skus": []}, headers=admin_headers
        ),
        422,
        "VALIDATION_ERROR",
    )


def test_a_replayed_sale_applies_the_rule_tag_once(ruled):
    for _ in range(4):
        assert apply(ruled, ["TEA-1", "OIL-CTRL-2"], "pos:SH001:S1") == [ruled["oily"]]
    [event] = events(ruled["member"])
    assert (event.tag_id, event.action, event.source, event.sale_key, event.store_id) == (
        ruled["oily"],
        "added",
        "rule",
        "pos:SH001:S1",
        ruled["store"],
    )
    assert db.session.scalar(select(MemberTag.source)) == "rule"
    assert apply(ruled, ["TEA-1"], "pos:SH001:S2") == []


def test_a_replay_does_not_undo_a_clerks_removal_but_a_new_sale_applies_again(ruled):
    apply(ruled, ["OIL-CTRL-1"], "pos:SH001:S1")
    with unit_of_work():
        change_member_tags(
            ruled["member"],
            add=[ruled["dry"]],
            remove=[],
            actor=Actor(source="clerk", store_id=ruled["store"]),
        )
    apply(ruled, ["OIL-CTRL-1"], "pos:SH001:S1")
    assert db.session.scalar(select(MemberTag.tag_id)) == ruled["dry"]
    assert apply(ruled, ["OIL-CTRL-1"], "pos:SH001:S9") == [ruled["oily"]]
    assert db.session.scalar(select(MemberTag.tag_id)) == ruled["oily"]  # exclusive: one stays


def test_archived_rules_and_archived_tags_apply_nothing(client, admin_headers, ruled):
    archive_tag(ruled["oily"])
    assert apply(ruled, ["OIL-CTRL-1"], "s1") == []
    rule_id = ruled["rule"]["id"]
    archived = client.post(f"/admin/v1/tag-rules/{rule_id}/archive", headers=admin_headers)
    assert archived.get_json()["archived"] is True
    assert events(ruled["member"]) == []


def test_a_sale_for_an_absorbed_member_tags_the_survivor(ruled):
    with unit_of_work():
        absorbed = create_member(source="test")
    db.session.get(Member, absorbed.id).merged_into_id = ruled["member"]
    db.session.commit()
    assert apply(ruled, ["OIL-CTRL-1"], "s1", member_id=absorbed.id) == [ruled["oily"]]
    assert [e.tag_id for e in events(ruled["member"])] == [ruled["oily"]]


@requires_postgres
def test_concurrent_replays_of_one_sale_apply_the_tag_once(app, ruled):
    barrier = threading.Barrier(4)
    results: list[list[int]] = []
    db.session.remove()

    def replay() -> None:
        with app.app_context():
            barrier.wait()
            results.append(transaction(lambda: apply(ruled, ["OIL-CTRL-1"], "pos:SH001:S7")))
            db.session.remove()

    threads = [threading.Thread(target=replay) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [[ruled["oily"]]] * 4
    assert len(events(ruled["member"])) == 1
