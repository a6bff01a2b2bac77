"""The one place points change: every credit and debit is a ledger entry with an idempotency key.

These functions work inside the caller's unit of work and never commit. The member's account row
is locked first (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite serialises writers), so the
idempotency check, the balance check, the lots (``app.points.lots``) and the update see one
consistent state.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import Insert, Select, Update, bindparam, func, insert, select, update

from app.common.clock import utcnow
from app.common.hooks import POINTS_CHANGED, PointsChanged
from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.points import lots
from app.points.lots import LotPiece
from app.points.models import ENTRY_KINDS, PointsAccount, PointsEntry, PointsLot


class InsufficientPoints(Conflict):
    default_code = "INSUFFICIENT_POINTS"


@dataclass(frozen=True)
class PostResult:
    entry: PointsEntry
    created: bool  # False when the idempotency key had already been used


def lock_account(member_id: int) -> PointsAccount:
    account = db.session.execute(
        select(PointsAccount)
        .where(PointsAccount.member_id == member_id)
        .with_for_update()
        .execution_options(populate_existing=True)  # the locked row, not a stale copy
    ).scalar_one_or_none()
    if account is None:
        raise NotFound("member has no points account", code="MEMBER_NOT_FOUND")
    return account


def open_account(member_id: int) -> PointsAccount:
    """Created with the member, in the same transaction."""
    account = PointsAccount(member_id=member_id, balance=0, updated_at=utcnow())
    db.session.add(account)
    return account


def post_entry(
    member_id: int,
    points: int,
    *,
    kind: str,
    idempotency_key: str,
    ref_type: str | None = None,
    ref_id: str | None = None,
    store_id: int | None = None,
    actor: str | None = None,
    reason: str | None = None,
    allow_negative: bool = False,
    earned_at: datetime | None = None,
    restore_lots: Sequence[LotPiece] | None = None,
    from_lot: int | None = None,
) -> PostResult:
    """Append one entry and move the cached balance and the lots with it.

    A negative entry may not take the balance below zero unless ``allow_negative`` (clawbacks:
    the member then owes points). Reusing a key returns the first entry and changes nothing; a
    reuse with other content is refused, since it means two different events share a key.

    A positive entry first repays any debt, then becomes lots expiring by ``POINTS_EXPIRY``
    counted from ``earned_at`` (default now), or, given ``restore_lots`` (a release, a merge),
    lots with those pieces' own expiries. A negative entry takes the soonest-expiring lots
    first (only lot ``from_lot`` when given: the expiry job) and records what it took.
    """
    if kind not in ENTRY_KINDS:
        raise ValueError(f"unknown ledger entry kind {kind!r}")
    if not isinstance(points, int) or isinstance(points, bool):
        raise ValidationFailed("points must be an integer", code="INVALID_POINTS")
    account = lock_account(member_id)
    existing = db.session.execute(
        select(PointsEntry).where(PointsEntry.idempotency_key == idempotency_key)
    ).scalar_one_or_none()
    if existing is not None:
        _check_same_change(existing, member_id, points, kind)
        return PostResult(existing, created=False)
    entry = _append(
        account,
        points,
        kind=kind,
        idempotency_key=idempotency_key,
        ref_type=ref_type,
        ref_id=ref_id,
        store_id=store_id,
        actor=actor,
        reason=reason,
        allow_negative=allow_negative,
        earned_at=earned_at,
        restore_lots=restore_lots,
        from_lot=from_lot,
    )
    db.session.flush()
    POINTS_CHANGED.fire([PointsChanged(member_id, points, entry.balance_after, kind, idempotency_key)])  # noqa: E501
    return PostResult(entry, created=True)


@functools.cache
def _new_credit_stmts() -> tuple[Update, Insert, Insert]:
    """post_new_credit's statements, built once (table-level: no ORM bookkeeping)."""
    accounts, entries = PointsAccount.__table__, PointsEntry.__table__
    move = (
        update(accounts)
        .where(accounts.c.member_id == bindparam("b_member_id"))
        .values(balance=accounts.c.balance + bindparam("b_points"), updated_at=bindparam("b_now"))
        .returning(accounts.c.balance)
    )
    return move, insert(entries).returning(entries.c.id), insert(PointsLot.__table__)


def post_new_credit(
    member_id: int,
    points: int,
    *,
    kind: str,
    idempotency_key: str,
    ref_type: str | None = None,
    ref_id: str | None = None,
    store_id: int | None = None,
    earned_at: datetime | None = None,
) -> int:
    """``post_entry`` for a credit whose key names a row this transaction has just created.

    Such a key cannot have been used, so the idempotency lookup is skipped (the key's unique
    index still refuses a second use) and the account is locked and moved by one ``UPDATE …
    RETURNING``. The rules are ``post_entry``'s: the credit repays any debt first and the rest
    becomes a lot expiring by ``POINTS_EXPIRY`` from ``earned_at``. Three statements instead of
    five and no ORM flush: this is the hot path of every payment notification and POS sale.
    Returns the balance after the credit.
    """
    if kind not in ENTRY_KINDS:
        raise ValueError(f"unknown ledger entry kind {kind!r}")
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise ValueError("post_new_credit takes a positive integer of points")
    now = utcnow()
    move, write_entry, write_lot = _new_credit_stmts()
    new_balance = db.session.execute(
        move, {"b_member_id": member_id, "b_points": points, "b_now": now}
    ).scalar_one_or_none()
    if new_balance is None:
        raise NotFound("member has no points account", code="MEMBER_NOT_FOUND")
    loaded = db.session.identity_map.get(db.session.identity_key(PointsAccount, member_id))
    if loaded is not None:
        db.session.expire(loaded)  # a copy loaded earlier in this transaction is now stale
    entry_id = db.session.execute(
        write_entry,
        {
            "member_id": member_id,
            "points": points,
            "balance_after": new_balance,
            "kind": kind,
            "idempotency_key": idempotency_key,
            "ref_type": ref_type,
            "ref_id": ref_id,
            "store_id": store_id,
            "actor": None,
            "reason": None,
            "created_at": now,
        },
    ).scalar_one()
    piece = lots.fresh_piece(points, earned_at or now)
    left = points - min(points, lots.debt_of(new_balance - points))
    if left > 0:
        db.session.execute(
            write_lot,
            {
                "member_id": member_id,
                "entry_id": entry_id,
                "origin_lot_id": None,
                "points": left,
                "remaining": left,
                "earned_at": piece.earned_at,
                "expires_at": piece.expires_at,
                "created_at": now,
            },
        )
    POINTS_CHANGED.fire([PointsChanged(member_id, points, int(new_balance), kind, idempotency_key)])
    return int(new_balance)


@dataclass(frozen=True)
class Credit:
    """One positive entry for ``post_credits`` (the arguments ``post_entry`` would get)."""

    member_id: int
    points: int
    kind: str
    idempotency_key: str
    ref_type: str | None = None
    ref_id: str | None = None
    store_id: int | None = None
    earned_at: datetime | None = None


def post_credits(credits: Sequence[Credit], *, new_keys: bool = False) -> list[PostResult]:
    """``post_entry`` for many credits at once, with the same rules and results, in order.

    For batches (a till's upload): the accounts are locked in member-id order in one
    statement, the keys looked up in one query and the rows written in one flush, instead of
    a few round trips per credit. A key already used (before, or earlier in the list) returns
    that entry; one used for a different change is refused. ``new_keys``: every key names a row
    this transaction has just created, so none can have been used before and the lookup is
    skipped (their unique index still refuses a reuse).
    """
    for credit in credits:
        if credit.kind not in ENTRY_KINDS:
            raise ValueError(f"unknown ledger entry kind {credit.kind!r}")
        if not isinstance(credit.points, int) or isinstance(credit.points, bool):
            raise ValidationFailed("points must be an integer", code="INVALID_POINTS")
        if credit.points <= 0:
            raise ValueError("post_credits takes positive entries only")
    if not credits:
        return []
    accounts = lock_accounts({c.member_id for c in credits})
    entries: dict[str, PointsEntry] = {}
    if not new_keys:
        keys = [c.idempotency_key for c in credits]
        entries = {
            e.idempotency_key: e
            for e in db.session.scalars(
                select(PointsEntry).where(PointsEntry.idempotency_key.in_(keys))
            )
        }
    results = []
    for credit in credits:
        existing = entries.get(credit.idempotency_key)
        if existing is not None:
            _check_same_change(existing, credit.member_id, credit.points, credit.kind)
            results.append(PostResult(existing, created=False))
            continue
        entry = _append(
            accounts[credit.member_id],
            credit.points,
            kind=credit.kind,
            idempotency_key=credit.idempotency_key,
            ref_type=credit.ref_type,
            ref_id=credit.ref_id,
            store_id=credit.store_id,
            earned_at=credit.earned_at,
        )
        entries[credit.idempotency_key] = entry
        results.append(PostResult(entry, created=True))
    db.session.flush()
    POINTS_CHANGED.fire([PointsChanged(r.entry.member_id, r.entry.points, r.entry.balance_after, r.entry.kind, r.entry.idempotency_key) for r in results if r.created])  # noqa: E501
    return results


def lock_accounts(member_ids: set[int]) -> dict[int, PointsAccount]:
    """Lock several accounts in member-id order (one statement); all must exist."""
    ordered = sorted(member_ids)
    accounts = {
        a.member_id: a
        for a in db.session.scalars(
            select(PointsAccount)
            .where(PointsAccount.member_id.in_(ordered))
            .order_by(PointsAccount.member_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }
    if len(accounts) != len(ordered):
        raise NotFound("member has no points account", code="MEMBER_NOT_FOUND")
    return accounts


def _check_same_change(existing: PointsEntry, member_id: int, points: int, kind: str) -> None:
    if existing.member_id != member_id or existing.points != points or existing.kind != kind:
        raise Conflict(
            "this idempotency key was used for a different change",
            code="IDEMPOTENCY_KEY_REUSED",
        )


def _append(
    account: PointsAccount,
    points: int,
    *,
    kind: str,
    idempotency_key: str,
    ref_type: str | None = None,
    ref_id: str | None = None,
    store_id: int | None = None,
    actor: str | None = None,
    reason: str | None = None,
    allow_negative: bool = False,
    earned_at: datetime | None = None,
    restore_lots: Sequence[LotPiece] | None = None,
    from_lot: int | None = None,
) -> PointsEntry:
    """The entry, the cached balance and the lots of one change, on a locked account."""
    member_id = account.member_id
    old_balance = account.balance
    new_balance = old_balance + points
    if points < 0 and new_balance < 0 and not allow_negative:
        raise InsufficientPoints(
            "not enough points", details={"balance": account.balance, "requested": -points}
        )
    if restore_lots is not None and sum(p.points for p in restore_lots) != points:
        raise ValueError("restored lots must add up to the points credited")
    now = utcnow()
    entry = PointsEntry(
        member_id=member_id,
        points=points,
        balance_after=new_balance,
        kind=kind,
        idempotency_key=idempotency_key,
        ref_type=ref_type,
        ref_id=ref_id,
        store_id=store_id,
        actor=actor,
        reason=reason,
        created_at=now,
    )
    account.balance = new_balance
    account.updated_at = now
    db.session.add(entry)
    if points > 0:
        pieces = restore_lots or [lots.fresh_piece(points, earned_at or now)]
        lots.credit(entry, member_id, pieces, debt=lots.debt_of(old_balance))
    elif points < 0:
        wanted = min(-points, max(0, old_balance))
        taken = lots.consume(entry, member_id, wanted, lot_id=from_lot)
        if taken != wanted:
            raise RuntimeError(f"member {member_id}: lots do not make up the balance")
    return entry


@functools.cache
def _balance_stmt() -> Select:
    return select(PointsAccount.balance).where(PointsAccount.member_id == bindparam("member_id"))


def balance_of(member_id: int) -> int:
    value = db.session.execute(_balance_stmt(), {"member_id": member_id}).scalar_one_or_none()
    return int(value or 0)


def points_for_paid(paid_fen: int, multiplier_percent: int = 100) -> int:
    """``floor(paid_fen × POINTS_PER_YUAN / 100 × multiplier_percent / 100)``, in integers."""
    if paid_fen <= 0:
        return 0
    rate = int(current_app.config["POINTS_PER_YUAN"])
    return (paid_fen * rate * multiplier_percent) // 10000


def audit_differences() -> list[tuple[int, int, int]]:
    """``(member_id, cached, ledger_sum)`` for every account whose cache differs from its ledger."""
    sums = (
        select(PointsEntry.member_id, func.coalesce(func.sum(PointsEntry.points), 0).label("total"))
        .group_by(PointsEntry.member_id)
        .subquery()
    )
    rows = db.session.execute(
        select(PointsAccount.member_id, PointsAccount.balance, func.coalesce(sums.c.total, 0))
        .outerjoin(sums, sums.c.member_id == PointsAccount.member_id)
        .where(PointsAccount.balance != func.coalesce(sums.c.total, 0))
    ).all()
    return [(int(m), int(b), int(t)) for m, b, t in rows]


def transfer_on_merge(absorbed_id: int, survivor_id: int, *, merge_key: str) -> int:
    """Move an absorbed member's whole balance (positive or owed) to the survivor.

    Two entries, ``merge_out`` on the absorbed and ``merge_in`` on the survivor, so both ledgers
    still sum to their balances; the lots move with their expiries (a debt moves as a debt).
    Accounts are locked in id order. Returns the points moved (a replay: the first result).
    """
    for member_id in sorted((absorbed_id, survivor_id)):
        lock_account(member_id)
    done = db.session.execute(
        select(PointsEntry.points).where(PointsEntry.idempotency_key == f"merge:{merge_key}:out")
    ).scalar_one_or_none()
    if done is not None:
        return -int(done)
    amount = balance_of(absorbed_id)
    if amount == 0:
        return 0
    out = post_entry(
        absorbed_id,
        -amount,
        kind="merge_out",
        idempotency_key=f"merge:{merge_key}:out",
        ref_type="merge",
        ref_id=merge_key,
        allow_negative=True,
    )
    moved = lots.pieces_consumed_by(out.entry.id) if amount > 0 else None
    post_entry(
        survivor_id,
        amount,
        kind="merge_in",
        idempotency_key=f"merge:{merge_key}:in",
        ref_type="merge",
        ref_id=merge_key,
        allow_negative=True,
        restore_lots=moved,
    )
    return amount
