"""Finding and creating members. Identity joining and merging build on these."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from app.common.clock import utcnow
from app.common.hooks import MEMBERS_JOINED, MemberJoined
from app.common.phone import normalize_phone
from app.db import among_param, fetch_rows, insert_rows, unit_of_work
from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.members.consent import channel_for_source, policy_version
from app.members.models import IDENTITY_KINDS, Member, MemberConsent, MemberIdentity
from app.points.models import PointsAccount
from app.points.services import balance_of, post_entry

MAX_MERGE_HOPS = 16


def get_member(member_id: int) -> Member:
    member = db.session.get(Member, member_id)
    if member is None:
        raise NotFound("member not found", code="MEMBER_NOT_FOUND")
    return member


def resolve_member(member_id: int) -> Member:
    """The live member behind an id, following ``merged_into`` from absorbed members."""
    member = get_member(member_id)
    for _ in range(MAX_MERGE_HOPS):
        if member.merged_into_id is None:
            return member
        member = get_member(member.merged_into_id)
    raise RuntimeError(f"merge chain from member {member_id} is too long")


def merged_family(member_id: int) -> list[int]:
    """The member and every member merged into it (directly or through others)."""
    found, frontier = [member_id], [member_id]
    while frontier:
        frontier = list(
            db.session.scalars(select(Member.id).where(Member.merged_into_id.in_(frontier)))
        )
        found.extend(frontier)
    return found


def lock_members(member_ids: Iterable[int]) -> dict[int, int]:
    """Share-lock the live members behind ids; ``{given id: live id}``. The one member lock.

    Rows are locked ``FOR SHARE`` in member-id order, following ``merged_into`` to the
    survivor (whose row is locked too). A merge locks both members ``FOR UPDATE``, so a credit
    that holds this lock either lands before the merge (which then moves it) or waits and
    lands on the survivor — never on a member that was absorbed meanwhile. Every money path
    takes this lock before any points account; that is the one lock order: members (id
    order), then accounts (id order).
    """
    live: dict[int, int] = {}
    wanted = set(member_ids)
    pending = {m: m for m in wanted}  # given id -> id to look at next
    for _ in range(MAX_MERGE_HOPS):
        if not pending:
            return {m: live[m] for m in wanted}
        ids = sorted(set(pending.values()))
        stmt = _lock_members_stmt(db.session.get_bind().dialect.name)
        rows = {m: into for m, into in db.session.execute(stmt, {"ids": ids})}
        for given, at in list(pending.items()):
            if at not in rows:
                raise NotFound("member not found", code="MEMBER_NOT_FOUND")
            merged_into = rows[at]
            if merged_into is None:
                live[given] = at
                del pending[given]
            else:
                pending[given] = merged_into
    raise RuntimeError("merge chain is too long")


@functools.cache
def _lock_members_stmt(dialect: str) -> Select:
    return (
        select(Member.id, Member.merged_into_id)
        .where(among_param(Member.id, "ids", dialect))
        .order_by(Member.id)
        .with_for_update(read=True)
    )


# Hot statements are built once, with bind parameters: building a statement and its cache key
# costs about as much Python as running it (bench/statement_cost.py).
def _ref_columns() -> Select:
    """A member's id, phone, merge pointer and points balance: what a :class:`MemberRef` needs."""
    return select(Member.id, Member.phone, Member.merged_into_id, PointsAccount.balance).outerjoin(
        PointsAccount, PointsAccount.member_id == Member.id
    )


@functools.cache
def _by_identity_stmt() -> Select:
    return (
        _ref_columns()
        .join(MemberIdentity, MemberIdentity.member_id == Member.id)
        .where(
            MemberIdentity.kind == bindparam("kind"),
            MemberIdentity.app == bindparam("app"),
            MemberIdentity.external_id == bindparam("external_id"),
        )
    )


@functools.cache
def _by_id_stmt() -> Select:
    return _ref_columns().where(Member.id == bindparam("member_id"))


@dataclass(frozen=True)
class MemberRef:
    """A live member's id, phone and points balance: what a lookup answers, without loading
    the row (columns only, one statement)."""

    id: int
    phone: str | None
    balance: int


def find_ref_by_identity(kind: str, external_id: str, app: str = "") -> MemberRef | None:
    """The live member holding an identity, as id, phone and balance (one statement; reads
    only)."""
    if kind not in IDENTITY_KINDS:
        raise NotFound(f"unknown identity kind {kind!r}", code="UNKNOWN_IDENTITY_KIND")
    rows = fetch_rows(_by_identity_stmt(), {"kind": kind, "app": app, "external_id": external_id})
    return _live_ref(rows[0]) if rows else None


def find_ref(member_id: int) -> MemberRef:
    """The live member behind an id (following ``merged_into``), as id, phone and balance:
    one statement, reads only; ``MEMBER_NOT_FOUND`` if there is no such member."""
    rows = fetch_rows(_by_id_stmt(), {"member_id": member_id})
    if not rows:
        raise NotFound("member not found", code="MEMBER_NOT_FOUND")
    return _live_ref(rows[0])


def _live_ref(row: Any) -> MemberRef:
    if row.merged_into_id is None:
        return MemberRef(int(row.id), row.phone, int(row.balance or 0))
    live = resolve_member(row.merged_into_id)
    return MemberRef(live.id, live.phone, balance_of(live.id))


def find_by_identity(kind: str, external_id: str, app: str = "") -> Member | None:
    """The live member holding an identity, or None (reads only; the money path enrols with
    ``app.members.payers.enrol`` and locks with :func:`lock_members`)."""
    ref = find_ref_by_identity(kind, external_id, app)
    return get_member(ref.id) if ref is not None else None


def find_by_phone(phone: str) -> Member | None:
    return find_by_identity("phone", normalize_phone(phone))


@dataclass(frozen=True)
class NewMember:
    """One member for :func:`create_members`: how they arrived, and what they bring."""

    source: str
    phone: str | None = None
    identities: tuple[tuple[str, str, str], ...] = ()  # (kind, app, external_id), no phone
    name: str | None = None
    birthday: date | None = None
    store_id: int | None = None
    welcome: bool = True
    consent_channel: str | None = None


def create_member(
    *,
    source: str,
    phone: str | None = None,
    identities: list[tuple[str, str, str]] | None = None,
    name: str | None = None,
    birthday: date | None = None,
    store_id: int | None = None,
    welcome: bool = True,
    consent_channel: str | None = None,
) -> Member:
    """:func:`create_members` for one member, answering the row."""
    [member_id] = create_members(
        [
            NewMember(
                source,
                phone,
                tuple(identities or ()),
                name,
                birthday,
                store_id,
                welcome,
                consent_channel,
            )
        ]
    )
    return get_member(member_id)


def create_members(new: Sequence[NewMember]) -> list[int]:
    """New members, each with its points account and identities; their ids, in order.

    The one way a member is created. Set-based: one multi-row ``INSERT … RETURNING`` per
    table (members, consents, accounts, identities) for the whole batch, inside the caller's
    transaction. A racing creation with the same identity fails on the identities' unique
    constraint (``IntegrityError``): the caller's transaction runner retries and finds it.
    People who join (``welcome``; not members imported from another system) fire
    ``MEMBERS_JOINED`` once for the batch: the welcome coupon and message, stats and
    attribution listen there.

    A member with a phone gets a consent row (channel ``consent_channel``, by default the one
    ``source`` implies) in the same transaction: a phone is never stored without one.
    """
    if not new:
        return []
    for item in new:
        for kind, _, _ in item.identities:
            if kind not in IDENTITY_KINDS:
                raise ValueError(f"unknown identity kind {kind!r}")
    now = utcnow()
    phones = [normalize_phone(n.phone) if n.phone is not None else None for n in new]
    table = Member.__table__
    ids = [
        int(pk)
        for pk in db.session.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True),
            [
                {
                    "phone": phone or None,
                    "name": n.name,
                    "birthday": n.birthday,
                    "source": n.source,
                    "join_store_id": n.store_id,
                    "status": "active",
                    "marketing_opt_out": False,
                    "created_at": now,
                }
                for n, phone in zip(new, phones, strict=True)
            ],
        ).scalars()
    ]
    insert_rows(
        MemberConsent.__table__,
        [
            {
                "member_id": member_id,
                "policy_version": policy_version(),
                "channel": (n.consent_channel or channel_for_source(n.source))[:16],
                "granted_at": now,
            }
            for member_id, n, phone in zip(ids, new, phones, strict=True)
            if phone
        ],
    )
    insert_rows(
        PointsAccount.__table__,
        [{"member_id": member_id, "balance": 0, "updated_at": now} for member_id in ids],
    )
    add_identities(
        [
            (member_id, identity)
            for member_id, n, phone in zip(ids, new, phones, strict=True)
            for identity in ((("phone", "", phone),) if phone else ()) + n.identities
        ]
    )
    MEMBERS_JOINED.fire(
        [
            MemberJoined(
                member_id=member_id,
                channel=join_channel(n.source),
                joined_at=now,
                store_id=n.store_id,
            )
            for member_id, n in zip(ids, new, strict=True)
            if n.welcome
        ]
    )
    return ids


def add_identities(rows: Sequence[tuple[int, tuple[str, str, str]]]) -> None:
    """Identities ``(member_id, (kind, app, external_id))`` in one multi-row insert."""
    now = utcnow()
    for _, (kind, _, _) in rows:
        if kind not in IDENTITY_KINDS:
            raise ValueError(f"unknown identity kind {kind!r}")
    insert_rows(
        MemberIdentity.__table__,
        [
            {
                "member_id": m,
                "kind": kind,
                "app": app,
                "external_id": external_id,
                "created_at": now,
            }
            for m, (kind, app, external_id) in rows
        ],
    )


def join_channel(source: str) -> str:
    """The channel a member's ``source`` counts under: payment, pos, miniprogram or import."""
    if source.endswith("_pay"):
        return "payment"
    if source.endswith("_miniprogram"):
        return "miniprogram"
    return source


def add_identity(member: Member, kind: str, external_id: str, app: str = "") -> MemberIdentity:
    if kind not in IDENTITY_KINDS:
        raise ValueError(f"unknown identity kind {kind!r}")
    identity = MemberIdentity(member_id=member.id, kind=kind, app=app, external_id=external_id)
    db.session.add(identity)
    return identity


def import_member(
    *,
    phone: str,
    name: str | None = None,
    birthday: date | None = None,
    points: int | None = None,
    actor: str | None = None,
) -> Member:
    """Import a member from another system by phone; ``points`` become an ``import`` entry."""
    normalized = normalize_phone(phone)
    with unit_of_work():
        if find_by_identity("phone", normalized) is not None:
            raise Conflict("a member with this phone exists", code="MEMBER_EXISTS")
        try:
            with db.session.begin_nested():
                member = create_member(
                    source="import",
                    phone=normalized,
                    name=name,
                    birthday=birthday,
                    welcome=False,
                )
        except IntegrityError as exc:
            raise Conflict("a member with this phone exists", code="MEMBER_EXISTS") from exc
        if points:
            post_entry(
                member.id,
                points,
                kind="import",
                idempotency_key=f"import:{member.id}",
                ref_type="member",
                ref_id=str(member.id),
                actor=actor,
                reason="imported balance",
                allow_negative=True,
            )
    return member


def lookup_members(
    *, phone: str | None = None, identity_kind: str | None = None, external_id: str | None = None
) -> list[Member]:
    """Members matching a phone, or an identity (any app), following merges."""
    if phone:
        found = find_by_phone(phone)
        return [found] if found else []
    if identity_kind and external_id:
        if identity_kind not in IDENTITY_KINDS:
            raise ValidationFailed(
                f"unknown identity kind {identity_kind!r}",
                code="UNKNOWN_IDENTITY_KIND",
                details={"identity_kind": [f"one of {', '.join(IDENTITY_KINDS)}"]},
            )
        ids = db.session.execute(
            select(MemberIdentity.member_id).where(
                MemberIdentity.kind == identity_kind, MemberIdentity.external_id == external_id
            )
        ).scalars()
        members: list[Member] = []
        for member_id in ids:
            member = resolve_member(member_id)
            if all(m.id != member.id for m in members):
                members.append(member)
        return members
    raise ValidationFailed(
        "give phone, or identity_kind and external_id",
        code="LOOKUP_CRITERIA_REQUIRED",
        details={"phone": ["or identity_kind and external_id"]},
    )
