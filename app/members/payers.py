"""Enrolment: the member behind a payer's identities or a phone, created when new.

:func:`enrol` is the one way a payer (WeChat openid/unionid, Alipay user id/open id, a till's
card) or a phone becomes a member: payments, till sales and mini-program logins all call it,
for one person or a whole batch. New members are created together by ``create_members``
(which fires ``MEMBERS_JOINED`` once for the batch); identities a known member lacks are
added. A racing enrolment of the same identity fails the transaction on the identities'
unique key, and the transaction runner (``app.db.transaction``) runs it again, which then
finds the winner's member.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flask import current_app

from app.common.partitions import rows_by_key
from app.extensions import db
from app.members.models import MemberIdentity
from app.members.services import NewMember, add_identities, create_members, lock_members

Identity = tuple[str, str, str]  # (kind, app, external_id)


@dataclass(frozen=True)
class Payer:
    """Who to enrol: identities (a phone is ``("phone", "", "+86…")``), how and where."""

    identities: tuple[Identity, ...]
    source: str
    store_id: int | None = None


@dataclass(frozen=True)
class Enrolment:
    """What :func:`enrolment` did: each payer's live member id, and which of them it created."""

    member_ids: list[int]
    created: frozenset[int]


def enrol(payers: Sequence[Payer], *, lock: bool = True) -> list[int]:
    """The live member id of each payer (created if none holds any of its identities)."""
    return enrolment(payers, lock=lock).member_ids


def enrolment(payers: Sequence[Payer], *, lock: bool = True) -> Enrolment:
    """:func:`enrol`, saying which members it created: a caller that reports "registered"
    asks it, since a member made by a racing transaction that committed after the caller's
    own lookup is found here, not created.

    Set-based: one query finds every identity's holder; members are created only for payers
    nobody holds (a payer named twice in the batch is created once). With ``lock`` the members
    come back share-locked (:func:`lock_members`). Runs in the caller's transaction.
    """
    if any(not p.identities for p in payers):
        raise ValueError("at least one identity is needed")
    wanted = sorted({i for p in payers for i in p.identities})
    holders: dict[Identity, int] = {}
    if wanted:
        rows = db.session.execute(
            rows_by_key(
                MemberIdentity.__table__,
                (
                    MemberIdentity.kind,
                    MemberIdentity.app,
                    MemberIdentity.external_id,
                    MemberIdentity.member_id,
                ),
                {},
                ("kind", "app", "external_id"),
                wanted,
                db.session.get_bind().dialect.name,
            )
        ).all()
        holders = {(k, a, e): int(m) for k, a, e, m in rows}
    # payers nobody holds: one new member each (a payer named twice in the batch, or two
    # payers sharing an identity, become one member), created together
    new_of: dict[int, int] = {}  # payer index -> index of the payer whose member it is
    claimed: dict[Identity, int] = {}
    for index, payer in enumerate(payers):
        if any(i in holders for i in payer.identities):
            continue
        owner = next((claimed[i] for i in payer.identities if i in claimed), index)
        new_of[index] = owner
        for identity in payer.identities:
            claimed.setdefault(identity, owner)
    creating = sorted(set(new_of.values()))
    created = create_members(
        [
            NewMember(
                source=payers[i].source,
                phone=next((e for k, _, e in payers[i].identities if k == "phone"), None),
                identities=tuple(x for x in payers[i].identities if x[0] != "phone"),
                store_id=payers[i].store_id,
            )
            for i in creating
        ]
    )
    member_of = dict(zip(creating, created, strict=True))
    for i in creating:
        for identity in payers[i].identities:
            holders[identity] = member_of[i]
    found: list[int] = []
    missing: list[tuple[int, Identity]] = []
    for index, payer in enumerate(payers):
        if index in new_of:
            member_id = member_of[new_of[index]]
        else:
            member_id = next(holders[i] for i in payer.identities if i in holders)
        for identity in payer.identities:
            if identity not in holders:
                holders[identity] = member_id
                missing.append((member_id, identity))
        found.append(member_id)
    live = lock_members(found) if lock else {m: m for m in found}
    # identities the member lacks (an Alipay open id beside the user id …); a concurrent add
    # fails the transaction on the unique key and the runner tries again
    add_identities([(live[m], identity) for m, identity in missing])
    return Enrolment([live[m] for m in found], frozenset(live[m] for m in created))


def payer_identity(kind: str, external_id: str) -> Identity:
    """A till's payer reference as an identity: WeChat openids under the configured
    ``WECHAT_APPID``, Alipay open ids under ``ALIPAY_APP_ID``, others global."""
    config = current_app.config
    app = {
        "wechat_openid": config.get("WECHAT_APPID"),
        "alipay_open_id": config.get("ALIPAY_APP_ID"),
    }
    return (kind, app.get(kind) or "", external_id)


def payer_key(identity: Identity) -> str:
    """The journal's key for a payer identity (``kind:app:external_id``)."""
    return ":".join(identity)
