"""The hot-read helpers of ``app.db``: driver reads and lookups without a transaction."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import bindparam, func, literal, select

from app.common.clock import utcnow
from app.common.phone import normalize_phone
from app.db import among_param, execute_core, fetch_rows, read_only, transaction
from app.extensions import db
from app.members.models import Member
from app.members.services import create_member, find_ref, find_ref_by_identity
from tests.conftest import requires_postgres


def _statement(dialect: str):
    return select(
        Member.id,
        Member.phone,
        Member.created_at,
        Member.birthday,
        literal("till").label("seen_by"),
    ).where(
        Member.created_at <= bindparam("now"),
        Member.status == "active",  # a literal bind, not a parameter
        among_param(Member.id, "ids", dialect),
    )


def test_driver_reads_return_what_sqlalchemy_returns() -> None:
    first = create_member(source="test", phone="13800000001")
    second = create_member(source="test", phone="13800000002")
    db.session.commit()
    dialect = db.session.get_bind().dialect.name
    stmt = _statement(dialect)
    params = {"now": utcnow() + timedelta(minutes=1), "ids": [first.id, second.id]}

    fast = sorted(fetch_rows(stmt, params))
    slow = sorted(execute_core(stmt, params))

    assert [tuple(r) for r in fast] == [tuple(r) for r in slow]
    assert [r._asdict() for r in fast] == [r._asdict() for r in slow]
    assert [r.phone for r in fast] == [first.phone, second.phone]
    assert all(r.created_at.utcoffset() == timedelta(0) for r in fast)  # aware, in UTC
    assert fetch_rows(stmt, {**params, "now": utcnow() - timedelta(days=1)}) == []


def test_a_member_ref_by_id_follows_a_merge_and_refuses_an_unknown_id() -> None:
    kept = create_member(source="test", phone="13800000003")
    absorbed = create_member(source="test", phone="13800000004")
    absorbed.merged_into_id = kept.id
    absorbed.status = "merged"
    db.session.commit()

    assert find_ref(absorbed.id).id == kept.id
    assert find_ref_by_identity("phone", normalize_phone("13800000004")).id == kept.id
    with pytest.raises(Exception, match="member not found"):
        find_ref(10**9)


def test_fetch_rows_refuses_an_expanding_parameter() -> None:
    stmt = select(Member.id).where(Member.id.in_(bindparam("ids", expanding=True)))
    if db.session.get_bind().dialect.name != "postgresql":
        pytest.skip("the driver path is PostgreSQL's")
    with pytest.raises(ValueError, match="non-expanding"):
        fetch_rows(stmt, {"ids": [1]})


@requires_postgres
def test_a_lookup_without_transaction_sends_no_begin_and_leaves_the_connection_transactional() -> (
    None
):
    member_id = create_member(source="test", phone="13800000005").id
    db.session.commit()

    def lookup() -> tuple[int, bool, bool]:
        [(before,)] = fetch_rows(select(func.now().label("at")), {})
        time.sleep(0.005)
        [(after,)] = fetch_rows(select(func.now().label("at")), {})
        autocommit = db.session.connection().connection.dbapi_connection.autocommit
        # in a transaction now() is its start: two statements would see the same time
        return find_ref(member_id).id, after > before, autocommit

    found, statements_on_their_own, autocommit = read_only(lookup)
    assert found == member_id
    assert statements_on_their_own and autocommit is True
    assert not db.session().in_transaction()

    # the same pooled connection, next: a transaction again, rolled back as a whole
    def write_then_fail() -> None:
        db.session.get(Member, member_id).name = "changed"
        db.session.flush()
        assert db.session.connection().connection.dbapi_connection.autocommit is False
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        transaction(write_then_fail)
    db.session.expire_all()
    assert db.session.get(Member, member_id).name is None


def test_a_lookup_inside_a_transaction_joins_it() -> None:
    member = create_member(source="test", phone="13800000006")
    # not committed: visible only inside this transaction
    assert read_only(lambda: find_ref(member.id).id) == member.id
    assert db.session().in_transaction()
    db.session.rollback()


@requires_postgres
def test_a_failed_driver_read_raises_as_sqlalchemy_would_without_its_parameters() -> None:
    from sqlalchemy import Integer
    from sqlalchemy.exc import DataError

    stmt = select((literal(1) / bindparam("divisor", type_=Integer)).label("x"))
    with pytest.raises(DataError) as raised:
        fetch_rows(stmt, {"divisor": 0, "secret": "13800000007"})
    assert "13800000007" not in str(raised.value)
    assert "division by zero" in str(raised.value)
    db.session.rollback()
    assert fetch_rows(stmt, {"divisor": 1})[0].x == 1
