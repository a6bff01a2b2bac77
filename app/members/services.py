"""Finding and creating members. Identity joining and merging build on these."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from app.common.phone import normalize_phone
from app.errors import NotFound
from app.extensions import db
from app.members.models import IDENTITY_KINDS, Member, MemberIdentity
from app.points.services import open_account

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


def find_by_identity(kind: str, external_id: str, app: str = "") -> Member | None:
    """The live member holding an identity, or None."""
    if kind not in IDENTITY_KINDS:
        raise NotFound(f"unknown identity kind {kind!r}", code="UNKNOWN_IDENTITY_KIND")
    holder = db.session.execute(
        select(Member)  # the identity and its member in one query
        .join(MemberIdentity, MemberIdentity.member_id == Member.id)
        .where(
            MemberIdentity.kind == kind,
            MemberIdentity.app == app,
            MemberIdentity.external_id == external_id,
        )
    ).scalar_one_or_none()
    if holder is None or holder.merged_into_id is None:
        return holder
    return resolve_member(holder.merged_into_id)


def find_by_phone(phone: str) -> Member | None:
    return find_by_identity("phone", normalize_phone(phone))


def create_member(
    *,
    source: str,
    phone: str | None = None,
    identities: list[tuple[str, str, str]] | None = None,
    name: str | None = None,
    birthday: date | None = None,
    store_id: int | None = None,
) -> Member:
    """A new member with its points account and identities ``[(kind, app, external_id)]``.

    Flushes inside the caller's transaction. A racing creation with the same identity fails
    on the identities' unique constraint (``IntegrityError``): the caller retries and finds it.
    """
    normalized = normalize_phone(phone) if phone is not None else None
    member = Member(
        phone=normalized,
        name=name,
        birthday=birthday,
        source=source,
        join_store_id=store_id,
        status="active",
    )
    db.session.add(member)
    db.session.flush()
    open_account(member.id)
    wanted = list(identities or [])
    if normalized:
        wanted.insert(0, ("phone", "", normalized))
    for kind, app, external_id in wanted:
        add_identity(member, kind, external_id, app)
    db.session.flush()
    return member


def add_identity(member: Member, kind: str, external_id: str, app: str = "") -> MemberIdentity:
    if kind not in IDENTITY_KINDS:
        raise ValueError(f"unknown identity kind {kind!r}")
    identity = MemberIdentity(member_id=member.id, kind=kind, app=app, external_id=external_id)
    db.session.add(identity)
    return identity
