"""Clerks tag members: one call adds and removes, exclusive groups keep one, all recorded."""

import threading

import pytest
from sqlalchemy import func, select

from app.clerks.auth import ClerkContext
from app.clerks.services import tag_member
from app.db import unit_of_work
from app.extensions import db
from app.members.services import create_member
from app.stores.models import Clerk
from app.tags.catalog import archive_group, archive_tag, create_group
from app.tags.models import MemberTag, MemberTagEvent, Tag
from tests.conftest import requires_postgres
from tests.test_clerk_access import PHONE, lookup
from tests.test_clerk_auth import clerk_headers, make_clerk
from tests.test_foundation_http import assert_error


@pytest.fixture
def tagging(client):
    make_clerk("SH001", "lily")
    with unit_of_work():
        member = create_member(source="test", phone=PHONE)
    headers = clerk_headers(client)
    lookup(client, headers, phone=PHONE)
    gender = create_group("性别", exclusive=True, tag_names=["女", "男"])
    taste = create_group("口味", exclusive=False, tag_names=["奶茶", "水果茶", "纯茶"])
    tags = {t.name: t.id for t in [*gender.tags, *taste.tags]}
    return {"headers": headers, "member": member.id, "tags": tags}


def change(client, t, add=(), remove=()):
    return client.post(
        f"/clerk/v1/members/{t['member']}/tags",
        json={"add": [t["tags"][n] for n in add], "remove": [t["tags"][n] for n in remove]},
        headers=t["headers"],
    )


def names(response):
    assert response.status_code == 200, response.get_json()
    return [tag["name"] for tag in response.get_json()["tags"]]


def test_add_and_remove_in_one_call(client, tagging):
    assert names(change(client, tagging, add=["女", "奶茶", "水果茶"])) == ["女", "奶茶", "水果茶"]
    assert names(change(client, tagging, add=["纯茶"], remove=["奶茶"])) == ["女", "水果茶", "纯茶"]
    # repeating a change is a no-op: nothing new in the history
    before = db.session.scalar(select(func.count()).select_from(MemberTagEvent))
    assert names(change(client, tagging, add=["纯茶"], remove=["奶茶"])) == ["女", "水果茶", "纯茶"]
    assert db.session.scalar(select(func.count()).select_from(MemberTagEvent)) == before


def test_an_exclusive_group_keeps_one_tag(client, tagging):
    change(client, tagging, add=["女"])
    assert names(change(client, tagging, add=["男"])) == ["男"]
    assert_error(change(client, tagging, add=["男", "女"]), 422, "EXCLUSIVE_GROUP_CONFLICT")
    assert_error(change(client, tagging, add=["男"], remove=["男"]), 422, "TAG_ADD_REMOVE_OVERLAP")
    response = client.post(
        f"/clerk/v1/members/{tagging['member']}/tags",
        json={"add": [999]},
        headers=tagging["headers"],
    )
    assert_error(response, 422, "UNKNOWN_TAG")


def test_archived_tags_cannot_be_applied_but_stay_in_history(client, tagging, admin_headers):
    change(client, tagging, add=["奶茶"])
    archive_tag(tagging["tags"]["奶茶"])
    assert_error(change(client, tagging, add=["奶茶"]), 409, "TAG_ARCHIVED")
    assert names(change(client, tagging, remove=["奶茶"])) == []
    archive_group(db.session.get(Tag, tagging["tags"]["女"]).group_id)
    assert_error(change(client, tagging, add=["女"]), 409, "TAG_ARCHIVED")
    history = client.get(
        "/admin/v1/tag-history",
        query_string={"member_id": tagging["member"]},
        headers=admin_headers,
    ).get_json()["items"]
    assert [(e["tag_name"], e["action"]) for e in history] == [
        ("奶茶", "removed"),
        ("奶茶", "added"),
    ]


def test_every_change_is_recorded_with_clerk_store_and_time(client, tagging, admin_headers):
    change(client, tagging, add=["女"])
    change(client, tagging, add=["男"])
    history = client.get(
        "/admin/v1/tag-history",
        query_string={"member_id": tagging["member"]},
        headers=admin_headers,
    ).get_json()
    clerk = db.session.scalar(select(Clerk))
    assert [(e["tag_name"], e["action"], e["source"]) for e in reversed(history["items"])] == [
        ("女", "added", "clerk"),
        ("女", "removed", "clerk"),
        ("男", "added", "clerk"),
    ]
    assert {(e["clerk_id"], e["store_id"]) for e in history["items"]} == {
        (clerk.id, clerk.store_id)
    }
    assert all(e["created_at"].endswith("+00:00") for e in history["items"])


@requires_postgres
def test_two_clerks_setting_one_exclusive_group_at_once_leave_one_tag(app, client, tagging):
    """Many rounds of two real threads; each round ends with exactly one tag of the group."""
    make_clerk("SH001", "mei")
    lookup(client, clerk_headers(client, "mei"), phone=PHONE)
    clerks = list(db.session.scalars(select(Clerk).order_by(Clerk.id)))
    contexts = [ClerkContext(c.id, c.store_id, 0) for c in clerks]
    her, him = tagging["tags"]["女"], tagging["tags"]["男"]
    db.session.remove()
    errors: list[BaseException] = []

    for _ in range(8):
        barrier = threading.Barrier(2)

        def clerk(ctx: ClerkContext, tag_id: int, barrier: threading.Barrier = barrier) -> None:
            with app.app_context():
                try:
                    barrier.wait()
                    tag_member(ctx, tagging["member"], add=[tag_id], remove=[])
                except BaseException as exc:  # noqa: BLE001 (reported below)
                    errors.append(exc)
                finally:
                    db.session.remove()

        threads = [
            threading.Thread(target=clerk, args=(contexts[0], her)),
            threading.Thread(target=clerk, args=(contexts[1], him)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        held = list(
            db.session.scalars(
                select(MemberTag.tag_id).where(MemberTag.member_id == tagging["member"])
            )
        )
        assert len(held) == 1 and held[0] in (her, him)
        db.session.remove()
    assert errors == []
    # the history replays to the tag held now
    state: set[int] = set()
    for event in db.session.scalars(select(MemberTagEvent).order_by(MemberTagEvent.id)):
        if event.action == "added":
            assert not state, "an exclusive group held two tags at once"
            state.add(event.tag_id)
        else:
            state.discard(event.tag_id)
    assert state == set(held)
