"""The one place points change: every credit and debit is a ledger entry with an idempotency key.

:func:`append_entries` writes every entry, cached balance and lot, set-based over a batch
(``post_entry`` and ``credit_points`` are its single-change and purchase-earn forms). It works
inside the caller's unit of work and never commits. The members' account rows are locked first
(``SELECT … FOR UPDATE`` in member-id order on PostgreSQL; SQLite serialises writers), so the
idempotency check, the balance check, the lots (``app.points.lots``) and the update see one
consistent state.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import (
    BigInteger,
    Select,
    Update,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from app.common.clock import utcnow
from app.common.hooks import POINTS_CHANGED, PointsChanged
from app.common.partitions import rows_by_key, where_key
from app.db import among, insert_rows
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


@dataclass(frozen=True)
class Change:
    """One ledger entry for :func:`append_entries`: ``points`` > 0 credits, < 0 debits.

    ``allow_negative``: a debit may take the balance below zero (a clawback: the member then
    owes points). ``earned_at``: when credited points count as earned (their lot's expiry);
    ``restore_lots``: pieces that come back with their own expiries (a release, a merge);
    ``from_lot``: a debit taken from that lot only (the expiry job).
    """

    member_id: int
    points: int
    kind: str
    idempotency_key: str
    ref_type: str | None = None
    ref_id: str | None = None
    store_id: int | None = None
    actor: str | None = None
    reason: str | None = None
    allow_negative: bool = False
    earned_at: datetime | None = None
    restore_lots: Sequence[LotPiece] | None = None
    from_lot: int | None = None


@dataclass(frozen=True)
class Appended:
    entry_id: int
    balance_after: int
    created: bool  # False: the key was used before; its first entry, nothing changed now


def append_entries(changes: Sequence[Change], *, new_keys: bool = False) -> list[Appended]:
    """The one place ledger entries and balances are written, for many changes at once.

    Each change appends one entry and moves its member's cached balance and lots with it. A
    credit first repays any debt, then becomes lots expiring by ``POINTS_EXPIRY`` counted from
    ``earned_at`` (default now), or the ``restore_lots`` pieces; a debit takes the
    soonest-expiring lots first (only ``from_lot`` when given) and records what it took. A
    debit may not take the balance below zero unless ``allow_negative``
    (``InsufficientPoints``, before anything is written).

    Idempotent: a key used before answers its first entry (``created=False``) and changes
    nothing; a reuse with other content is refused (``IDEMPOTENCY_KEY_REUSED``). The accounts
    are locked in member-id order before that check. ``new_keys``: every key names a row the
    caller's transaction has just created (a purchase's earn), so the check and the separate
    lock are skipped; the key's unique index still refuses a reuse, failing the transaction
    for the runner to retry.

    Set-based: per wave (each member at most once, in list order, so a member changed twice
    is changed as two calls would; a member's consecutive debits of named lots, as the
    expiry posts them, share one wave, each entry's ``balance_after`` a running sum) the
    balances move in one ``UPDATE … RETURNING`` (``unnest``
    arrays on PostgreSQL; an executemany and one read on SQLite), the entries are one
    multi-row ``INSERT … RETURNING``, the fresh lots one more, and the debits take their lots
    in three (``lots.consume``). Fires ``POINTS_CHANGED``. Results in list order.
    """
    for change in changes:
        if change.kind not in ENTRY_KINDS:
            raise ValueError(f"unknown ledger entry kind {change.kind!r}")
        if not isinstance(change.points, int) or isinstance(change.points, bool):
            raise ValidationFailed("points must be an integer", code="INVALID_POINTS")
        if change.restore_lots is not None and (
            sum(p.points for p in change.restore_lots) != change.points
        ):
            raise ValueError("restored lots must add up to the points credited")
    results: list[Appended | None] = [None] * len(changes)
    todo = list(range(len(changes)))
    balances: dict[int, int] = {}
    if not new_keys and changes:
        balances = _locked_balances({c.member_id for c in changes})
        for index, existing in _existing_entries(changes).items():
            results[index] = existing
        todo = [i for i in todo if results[i] is None]
    elif any(c.points < 0 and not c.allow_negative for c in changes):
        balances = _locked_balances({c.member_id for c in changes})
    # a debit of one named lot reads only that lot: a member's run of them is one wave
    stackable = [changes[i].from_lot is not None and changes[i].points < 0 for i in todo]
    for wave in member_waves([changes[i].member_id for i in todo], stackable):
        picked = [todo[i] for i in wave]
        out = _append_wave([changes[i] for i in picked], balances)
        for index, appended in zip(picked, out, strict=True):
            results[index] = appended
    return [r for r in results if r is not None]


def _locked_balances(member_ids: set[int]) -> dict[int, int]:
    """The accounts locked in member-id order (one statement); all must exist."""
    ordered = sorted(member_ids)
    found = {
        int(m): int(b)
        for m, b in db.session.execute(
            select(PointsAccount.member_id, PointsAccount.balance)
            .where(among(PointsAccount.member_id, ordered))
            .order_by(PointsAccount.member_id)
            .with_for_update()
        )
    }
    if len(found) != len(ordered):
        raise NotFound("member has no points account", code="MEMBER_NOT_FOUND")
    return found


def _existing_entries(changes: Sequence[Change]) -> dict[int, Appended]:
    """The changes whose key was used before, answered with their first entry."""
    rows = {
        r.idempotency_key: r
        for r in db.session.execute(
            rows_by_key(
                PointsEntry.__table__,
                (
                    PointsEntry.id,
                    PointsEntry.member_id,
                    PointsEntry.points,
                    PointsEntry.kind,
                    PointsEntry.balance_after,
                    PointsEntry.idempotency_key,
                ),
                {},
                "idempotency_key",
                sorted({c.idempotency_key for c in changes}),
                db.session.get_bind().dialect.name,
            )
        )
    }
    found: dict[int, Appended] = {}
    for index, change in enumerate(changes):
        row = rows.get(change.idempotency_key)
        if row is None:
            continue
        if (row.member_id, row.points, row.kind) != (
            change.member_id,
            change.points,
            change.kind,
        ):
            raise Conflict(
                "this idempotency key was used for a different change",
                code="IDEMPOTENCY_KEY_REUSED",
            )
        found[index] = Appended(int(row.id), int(row.balance_after), created=False)
    return found


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
    """:func:`append_entries` for one change, answering its entry row."""
    [appended] = append_entries(
        [
            Change(
                member_id,
                points,
                kind,
                idempotency_key,
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
        ]
    )
    entry = db.session.get(PointsEntry, appended.entry_id)
    assert entry is not None
    return PostResult(entry, created=appended.created)


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
def _move_stmt() -> Update:
    """Members' balances moved (table-level: no ORM bookkeeping; SQLite's executemany)."""
    accounts = PointsAccount.__table__
    return (
        update(accounts)
        .where(accounts.c.member_id == bindparam("b_member_id"))
        .values(balance=accounts.c.balance + bindparam("b_points"), updated_at=bindparam("b_now"))
    )


def credit_points(credits: Sequence[Credit]) -> list[Credited]:
    """Points earned by rows the caller's transaction has just created (a purchase's earn):
    :func:`append_entries` with ``new_keys``, for positive credits only. Results in order."""
    for credit in credits:
        if not isinstance(credit.points, int) or isinstance(credit.points, bool):
            raise ValidationFailed("points must be an integer", code="INVALID_POINTS")
        if credit.points <= 0:
            raise ValueError("credit_points takes positive credits only")
    appended = append_entries(
        [
            Change(
                c.member_id,
                c.points,
                c.kind,
                c.idempotency_key,
                ref_type=c.ref_type,
                ref_id=c.ref_id,
                store_id=c.store_id,
                earned_at=c.earned_at,
            )
            for c in credits
        ],
        new_keys=True,
    )
    return [Credited(a.entry_id, a.balance_after) for a in appended]


def member_waves(
    member_ids: Sequence[int | None], stackable: Sequence[bool] | None = None
) -> list[list[int]]:
    """Indexes split into waves in which each member appears at most once, in order.

    ``None`` (no member) never conflicts. Applying wave after wave gives each member's items
    in list order, exactly as applying them one at a time would. ``stackable[i]``: item ``i``
    may share a wave with the same member's stackable item just before it (in list order
    within the wave), for items that touch nothing another of the member's items reads.
    """
    waves: list[list[int]] = []
    seen: dict[int, tuple[int, bool]] = {}
    for index, member_id in enumerate(member_ids):
        wave = 0
        if member_id is not None:
            stacks = bool(stackable and stackable[index])
            last, last_stacks = seen.get(member_id, (-1, False))
            wave = last if stacks and last_stacks else last + 1
            seen[member_id] = (wave, stacks)
        while len(waves) <= wave:
            waves.append([])
        waves[wave].append(index)
    return [w for w in waves if w]


def _append_wave(changes: Sequence[Change], balances: dict[int, int]) -> list[Appended]:
    """One wave (each member once, or a member's run of stackable debits): balances,
    entries, lots. ``balances``: the locked balances known so far (kept up to date), for the
    debit check."""
    running = {c.member_id: balances[c.member_id] for c in changes if c.member_id in balances}
    for c in changes:
        if c.member_id not in running:
            continue
        if c.points < 0 and not c.allow_negative and running[c.member_id] + c.points < 0:
            raise InsufficientPoints(
                "not enough points",
                details={"balance": running[c.member_id], "requested": -c.points},
            )
        running[c.member_id] += c.points
    totals: dict[int, int] = {}
    for c in changes:  # one balance write per member, whatever its changes in the wave
        totals[c.member_id] = totals.get(c.member_id, 0) + c.points
    now = utcnow()
    moved: dict[int, int] = {}
    if db.session.get_bind().dialect.name == "postgresql":
        rows = db.session.execute(
            _MOVE_PG,
            {"ids": list(totals), "pts": list(totals.values()), "now": now},
        ).all()
        moved = {int(m): int(b) for m, b in rows}
    else:  # SQLite serialises writers: one executemany, then the balances it left
        db.session.execute(
            _move_stmt(),
            [{"b_member_id": m, "b_points": p, "b_now": now} for m, p in totals.items()],
            execution_options={"synchronize_session": False},
        )
        moved = {
            int(m): int(b)
            for m, b in db.session.execute(
                select(PointsAccount.member_id, PointsAccount.balance).where(
                    among(PointsAccount.member_id, list(totals))
                )
            )
        }
    if len(moved) != len(totals):
        raise NotFound("member has no points account", code="MEMBER_NOT_FOUND")
    balances.update(moved)
    after: list[int] = []  # each change's balance_after: the member's running balance
    walk = {m: moved[m] - total for m, total in totals.items()}
    for c in changes:
        walk[c.member_id] += c.points
        after.append(walk[c.member_id])
    for member_id in totals:  # a copy loaded earlier in this transaction is now stale
        loaded = db.session.identity_map.get(db.session.identity_key(PointsAccount, member_id))
        if loaded is not None:
            db.session.expire(loaded)
    entry_rows = insert_rows(
        PointsEntry.__table__,
        [
            {
                "member_id": c.member_id,
                "points": c.points,
                "balance_after": balance_after,
                "kind": c.kind,
                "idempotency_key": c.idempotency_key,
                "ref_type": c.ref_type,
                "ref_id": c.ref_id,
                "store_id": c.store_id,
                "actor": c.actor,
                "reason": c.reason,
                "created_at": now,
            }
            for c, balance_after in zip(changes, after, strict=True)
        ],
        returning=("id", "idempotency_key"),
    )
    by_key = {key: int(pk) for pk, key in entry_rows}
    entry_ids = [by_key[c.idempotency_key] for c in changes]
    lot_rows: list[dict] = []
    debits: list[lots.Debit] = []
    for c, entry_id, balance_after in zip(changes, entry_ids, after, strict=True):
        old_balance = balance_after - c.points
        if c.points > 0:
            pieces = c.restore_lots or [lots.fresh_piece(c.points, c.earned_at or now)]
            lot_rows.extend(
                lots.credit_rows(
                    entry_id, c.member_id, pieces, debt=lots.debt_of(old_balance), now=now
                )
            )
        elif c.points < 0:
            wanted = min(-c.points, max(0, old_balance))
            debits.append(lots.Debit(entry_id, c.member_id, wanted, c.from_lot))
    if debits:
        for debit, taken in zip(debits, lots.consume(debits), strict=True):
            if taken != debit.amount:
                raise RuntimeError(f"member {debit.member_id}: lots do not make up the balance")
    insert_rows(PointsLot.__table__, lot_rows)
    POINTS_CHANGED.fire(
        [
            PointsChanged(c.member_id, c.points, balance_after, c.kind, c.idempotency_key)
            for c, balance_after in zip(changes, after, strict=True)
        ]
    )
    return [
        Appended(entry_id, balance_after, created=True)
        for entry_id, balance_after in zip(entry_ids, after, strict=True)
    ]


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


def entry_by_key(column: Any, idempotency_key: str) -> Select:
    """``SELECT column`` of the ledger entry with this idempotency key (none: no row)."""
    dialect = db.session.get_bind().dialect.name
    return where_key(
        select(column), PointsEntry.__table__, dialect, idempotency_key=idempotency_key
    )


def transfer_on_merge(absorbed_id: int, survivor_id: int, *, merge_key: str) -> int:
    """Move an absorbed member's whole balance (positive or owed) to the survivor.

    Two entries, ``merge_out`` on the absorbed and ``merge_in`` on the survivor, so both ledgers
    still sum to their balances; the lots move with their expiries (a debt moves as a debt).
    Accounts are locked in id order. Returns the points moved (a replay: the first result).
    """
    for member_id in sorted((absorbed_id, survivor_id)):
        lock_account(member_id)
    done = db.session.execute(
        entry_by_key(PointsEntry.points, f"merge:{merge_key}:out")
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
