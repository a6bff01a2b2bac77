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
from sqlalchemy import (
    BigInteger,
    Insert,
    Select,
    Update,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

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
    POINTS_CHANGED.fire(
        [PointsChanged(member_id, points, entry.balance_after, kind, idempotency_key)]
    )
    return PostResult(entry, created=True)


@dataclass(frozen=True)
class Credit:
    """One positive ledger entry for :func:`credit_points`."""

    member_id: int
    points: int
    kind: str
    idempotency_key: str
    ref_type: str | None = None
    ref_id: str | None = None
    store_id: int | None = None
    earned_at: datetime | None = None


@dataclass(frozen=True)
class Credited:
    entry_id: int
    balance_after: int


_MOVE_PG = text(
    "WITH locked AS (SELECT member_id FROM points_accounts WHERE member_id = ANY(:ids)"
    " ORDER BY member_id FOR UPDATE)"
    " UPDATE points_accounts AS a SET balance = a.balance + v.points, updated_at = :now"
    " FROM unnest(CAST(:ids AS bigint[]), CAST(:pts AS bigint[])) AS v(member_id, points)"
    " WHERE a.member_id = v.member_id AND a.member_id IN (SELECT member_id FROM locked)"
    " RETURNING a.member_id, a.balance"
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)), bindparam("pts", type_=ARRAY(BigInteger)))


@functools.cache
def _credit_stmts() -> tuple[Update, Insert, Insert]:
    """credit_points' statements, built once (table-level: no ORM bookkeeping)."""
    accounts, entries = PointsAccount.__table__, PointsEntry.__table__
    move = (
        update(accounts)
        .where(accounts.c.member_id == bindparam("b_member_id"))
        .values(balance=accounts.c.balance + bindparam("b_points"), updated_at=bindparam("b_now"))
        .returning(accounts.c.balance)
    )
    write_entries = insert(entries).returning(entries.c.id, sort_by_parameter_order=True)
    return move, write_entries, insert(PointsLot.__table__)


def credit_points(credits: Sequence[Credit]) -> list[Credited]:
    """The one way points are credited: entries, balances and lots for many credits at once.

    Each key must be new (it names a row the caller's transaction has just created, e.g. a
    purchase's earn); the key's unique index refuses a reuse, which fails the transaction and
    the transaction runner retries it. The rules are ``post_entry``'s: a credit repays any
    debt first and the rest becomes a lot expiring by ``POINTS_EXPIRY`` from ``earned_at``.
    Set-based: the accounts are locked in member-id order and moved by one ``UPDATE …
    RETURNING`` (``unnest`` arrays on PostgreSQL), the entries written by one multi-row
    ``INSERT … RETURNING`` and the lots by one more. A member credited twice in one call is
    credited in list order (one wave per occurrence). Fires ``POINTS_CHANGED``. Results in
    list order.
    """
    for credit in credits:
        if credit.kind not in ENTRY_KINDS:
            raise ValueError(f"unknown ledger entry kind {credit.kind!r}")
        if not isinstance(credit.points, int) or isinstance(credit.points, bool):
            raise ValidationFailed("points must be an integer", code="INVALID_POINTS")
        if credit.points <= 0:
            raise ValueError("credit_points takes positive credits only")
    results: list[Credited | None] = [None] * len(credits)
    for wave in member_waves([c.member_id for c in credits]):
        for index, credited in zip(wave, _credit_wave([credits[i] for i in wave]), strict=True):
            results[index] = credited
    return [r for r in results if r is not None]


def member_waves(member_ids: Sequence[int | None]) -> list[list[int]]:
    """Indexes split into waves in which each member appears at most once, in order.

    ``None`` (no member) never conflicts. Applying wave after wave gives each member's items
    in list order, exactly as applying them one at a time would.
    """
    waves: list[list[int]] = []
    seen: dict[int, int] = {}
    for index, member_id in enumerate(member_ids):
        wave = 0
        if member_id is not None:
            wave = seen.get(member_id, -1) + 1
            seen[member_id] = wave
        while len(waves) <= wave:
            waves.append([])
        waves[wave].append(index)
    return [w for w in waves if w]


def _credit_wave(credits: Sequence[Credit]) -> list[Credited]:
    now = utcnow()
    move, write_entries, write_lots = _credit_stmts()
    if db.session.get_bind().dialect.name == "postgresql":
        rows = db.session.execute(
            _MOVE_PG,
            {
                "ids": [c.member_id for c in credits],
                "pts": [c.points for c in credits],
                "now": now,
            },
        ).all()
        balances = {int(m): int(b) for m, b in rows}
    else:
        balances = {}
        for c in credits:
            value = db.session.execute(
                move, {"b_member_id": c.member_id, "b_points": c.points, "b_now": now}
            ).scalar_one_or_none()
            if value is not None:
                balances[c.member_id] = int(value)
    if len(balances) != len({c.member_id for c in credits}):
        raise NotFound("member has no points account", code="MEMBER_NOT_FOUND")
    for c in credits:  # a copy loaded earlier in this transaction is now stale
        loaded = db.session.identity_map.get(db.session.identity_key(PointsAccount, c.member_id))
        if loaded is not None:
            db.session.expire(loaded)
    entry_ids = (
        db.session.execute(
            write_entries,
            [
                {
                    "member_id": c.member_id,
                    "points": c.points,
                    "balance_after": balances[c.member_id],
                    "kind": c.kind,
                    "idempotency_key": c.idempotency_key,
                    "ref_type": c.ref_type,
                    "ref_id": c.ref_id,
                    "store_id": c.store_id,
                    "actor": None,
                    "reason": None,
                    "created_at": now,
                }
                for c in credits
            ],
        )
        .scalars()
        .all()
    )
    lot_rows = []
    for c, entry_id in zip(credits, entry_ids, strict=True):
        left = c.points - min(c.points, lots.debt_of(balances[c.member_id] - c.points))
        if left > 0:
            piece = lots.fresh_piece(left, c.earned_at or now)
            lot_rows.append(
                {
                    "member_id": c.member_id,
                    "entry_id": entry_id,
                    "origin_lot_id": None,
                    "points": left,
                    "remaining": left,
                    "earned_at": piece.earned_at,
                    "expires_at": piece.expires_at,
                    "created_at": now,
                }
            )
    if lot_rows:
        db.session.execute(write_lots, lot_rows)
    POINTS_CHANGED.fire(
        [
            PointsChanged(c.member_id, c.points, balances[c.member_id], c.kind, c.idempotency_key)
            for c in credits
        ]
    )
    return [
        Credited(int(entry_id), balances[c.member_id])
        for c, entry_id in zip(credits, entry_ids, strict=True)
    ]


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
    return earn_points(paid_fen, [multiplier_percent])


def earn_points(paid_fen: int, percents: Sequence[int]) -> int:
    """Points for money paid under several multipliers (percent each), floored once:
    ``floor(paid_fen × POINTS_PER_YUAN / 100 × Π(percent / 100))``."""
    if paid_fen <= 0:
        return 0
    numerator = paid_fen * int(current_app.config["POINTS_PER_YUAN"])
    for percent in percents:
        numerator *= percent
    return numerator // (100 * 100 ** len(percents))


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
