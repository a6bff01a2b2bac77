"""on_member_merge: tags, history, notes, grants and attribution move to the survivor."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.clerks.merge import on_member_merge
from app.clerks.models import ClerkNote, MemberAttribution
from app.common.clock import advance, frozen
from app.db import unit_of_work
from app.extensions import db
from app.members.models import Member
from app.members.services import create_member
from app.tags.catalog import create_group
from app.tags.models import MemberTag, MemberTagEvent
from app.tags.services import Actor, change_member_tags
from tests.test_clerk_access import lookup
from tests.test_clerk_attribution import attribute, payload_of
from tests.test_clerk_auth import clerk_headers, make_clerk

T0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
SURVIVOR_PHONE = "13812345678"
ABSORBED_PHONE = "13900001111"


def tag(member_id, *tag_ids):
    with unit_of_work():
        change_member_tags(member_id, add=list(tag_ids), remove=[], actor=Actor(source="clerk"))


def merge(absorbed_id, survivor_id):
    with unit_of_work():
        absorbed = db.session.get(Member, absorbed_id)
        absorbed.merged_into_id, absorbed.status = survivor_id, "merged"
        on_member_merge(absorbed_id, survivor_id)


def test_a_merge_moves_everything_clerks_know_and_exclusive_groups_keep_the_newest(client):
    make_clerk("SH001", "lily")
    headers = clerk_headers(client, "lily")
    payload = payload_of(client, "lily")
    gender = create_group("性别", exclusive=True, tag_names=["女", "男"])
    taste = create_group("口味", exclusive=False, tag_names=["奶茶", "纯茶"])
    her, him = (t.id for t in gender.tags)
    milk, plain = (t.id for t in taste.tags)
    with frozen(T0):
        with unit_of_work():
            survivor = create_member(source="test", phone=SURVIVOR_PHONE).id
            absorbed = create_member(source="test", phone=ABSORBED_PHONE).id
        attribute(client, absorbed, payload)
        tag(survivor, him, plain)
        advance(timedelta(hours=1))
        attribute(client, survivor, payload)
        tag(absorbed, her, milk, plain)
        lookup(client, headers, phone=ABSORBED_PHONE)
        client.post(
            f"/clerk/v1/members/{absorbed}/notes", json={"text": "喜欢少糖"}, headers=headers
        )
        for _ in range(2):  # safe to call twice
            merge(absorbed, survivor)

        held = sorted(
            db.session.scalars(select(MemberTag.tag_id).where(MemberTag.member_id == survivor))
        )
        assert held == sorted([her, milk, plain])
        assert (
            db.session.scalars(select(MemberTag).where(MemberTag.member_id == absorbed)).all() == []
        )
        history = db.session.scalars(select(MemberTagEvent).order_by(MemberTagEvent.id)).all()
        assert {e.member_id for e in history} == {survivor}
        assert (history[-1].tag_id, history[-1].action, history[-1].source) == (
            him,
            "removed",
            "merge",
        )
        assert db.session.scalar(select(ClerkNote.member_id)) == survivor
        attribution = db.session.scalars(select(MemberAttribution)).all()
        assert [(a.member_id, a.attributed_at) for a in attribution] == [(survivor, T0)]
        # the clerk's grant for the absorbed id now covers the survivor, by either id
        for member_id in (absorbed, survivor):
            view = client.get(f"/clerk/v1/members/{member_id}", headers=headers).get_json()
            assert view["id"] == survivor
            assert [n["text"] for n in view["notes"]] == ["喜欢少糖"]
