"""Tier rules on the money path: the basis listener, upgrades, overrides, and member views.

Everything here runs inside the caller's transaction (the engine's, for hooks). A member's
``member_tiers`` row is written with an upsert, which locks it: concurrent purchases of one
member serialise there, so each upgrade (and its coupon and message) happens once.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.common.clock import ensure_aware, utcnow
from app.common.hooks import (
    TIER_CHANGED,
    EarnContext,
    PurchaseApplied,
    TierChanged,
)
from app.common.upsert import insert_ignore, upsert_add
from app.db import among, among_param, fetch_rows, insert_rows, update_rows
from app.errors import NotFound, ValidationFailed
from app.extensions import db
from app.points.models import Purchase
from app.points.purchases import refund_base_fen
from app.tiers.ladder import (
    Ladder,
    TierRow,
    add_months,
    basis_value,
    forget_ladder,
    load_ladder,
    month_of,
    views_ladder,
    window_start,
)
from app.tiers.models import MemberTier, MemberTierMonth, TierChange, TierSettings

_ROW_COLUMNS = (
    MemberTier.member_id,
    MemberTier.tier_code,
    MemberTier.reached_at,
    MemberTier.keep_until,
    MemberTier.reach_no,
    MemberTier.payer_fen_12m,
    MemberTier.purchases_12m,
    MemberTier.growth,
    MemberTier.override_code,
    MemberTier.override_until,
)


def override_active(row: Any, now: datetime) -> bool:
    return bool(
        row.override_code and (row.override_until is None or ensure_aware(row.override_until) > now)
    )


def effective_code(row: Any, ladder: Ladder, now: datetime) -> str:
    """The tier a member is on: HQ's override while it lasts, else the earned tier."""
    if row is None:
        return ladder.lowest.code
    if override_active(row, now) and ladder.get(row.override_code):
        return str(row.override_code)
    return (ladder.get(row.tier_code) or ladder.lowest).code


# --- the earn multiplier ------------------------------------------------------------------


def tier_multipliers(contexts: Sequence[EarnContext]) -> list[int]:
    """The ``EARN_MULTIPLIERS`` provider: each member's tier percent, read before the purchase
    is applied (so the purchase that crosses a threshold still earns at the old tier)."""
    ladder = load_ladder()
    if ladder is None or not contexts:
        return [100 for _ in contexts]
    ids = sorted({c.member_id for c in contexts})
    rows = {
        r.member_id: r
        for r in db.session.execute(
            select(*_ROW_COLUMNS).where(among(MemberTier.member_id, ids))
        ).all()
    }
    out = []
    for c in contexts:
        code = effective_code(rows.get(c.member_id), ladder, ensure_aware(c.occurred_at))
        tier = ladder.get(code)
        out.append(tier.earn_multiplier_pct if tier else 100)
    return out


# --- the basis, kept incrementally --------------------------------------------------------


def add_months_basis(buckets: Sequence[tuple[int, int, int, int]]) -> None:
    """Add ``(member_id, month, payer_fen, purchases)`` to the members' month buckets (one
    statement)."""
    upsert_add(
        MemberTierMonth.__table__,
        [{"member_id": m, "month": mo, "payer_fen": f, "purchases": c} for m, mo, f, c in buckets],
        ["member_id", "month"],
        ["payer_fen", "purchases"],
    )


def on_purchases_applied(items: Sequence[PurchaseApplied]) -> None:
    """``PURCHASE_WAVE_APPLIED`` listener: add the wave to each member's basis (set-based: one
    upsert of month buckets, one of totals, one read), then upgrade whoever crossed a
    threshold. Refunds lower the basis of the purchase's own month and never demote."""
    if not items:
        return
    now = utcnow()
    start = window_start(now)
    refunded_ids = sorted({i.purchase_id for i in items if i.is_refund})
    originals = {}
    if refunded_ids:
        originals = {
            r.id: r
            for r in db.session.execute(
                select(
                    Purchase.id,
                    Purchase.source,
                    Purchase.occurred_at,
                    Purchase.paid_fen,
                    Purchase.total_fen,
                    Purchase.refunded_fen,
                ).where(Purchase.id.in_(refunded_ids))
            ).all()
        }
    months: dict[tuple[int, int], list[int]] = {}
    totals: dict[int, list[int]] = {}
    for item in items:
        total = totals.setdefault(item.member_id, [0, 0, 0])
        total[2] += item.points  # growth: what the purchase earned, never spent
        fen, count, occurred = item.payer_fen, 1, item.occurred_at
        if item.is_refund:
            original = originals.get(item.purchase_id)
            if original is None:
                continue
            occurred = original.occurred_at
            fen, count = _refund_share(original, -item.payer_fen)
        month = month_of(ensure_aware(occurred))
        if month < start:  # outside the rolling window: no longer counted
            continue
        bucket = months.setdefault((item.member_id, month), [0, 0])
        bucket[0] += fen
        bucket[1] += count
        total[0] += fen
        total[1] += count
    add_months_basis(
        [(m, mo, f, c) for (m, mo), (f, c) in sorted(months.items())],
    )
    # a zero row for each member that has none yet (the upsert below then only adds, never
    # below zero, and answers the rows as they now are, locked until the transaction ends)
    insert_ignore(
        MemberTier.__table__,
        [
            {
                "member_id": m,
                "payer_fen_12m": 0,
                "purchases_12m": 0,
                "growth": 0,
                "window_month": start,
                "reach_no": 0,
                "updated_at": now,
            }
            for m in sorted(totals)
        ],
        ["member_id"],
    )
    rows = insert_rows(
        MemberTier.__table__,
        [
            {
                "member_id": m,
                "payer_fen_12m": t[0],
                "purchases_12m": t[1],
                "growth": t[2],
                "window_month": start,
                "reach_no": 0,
                "updated_at": now,
            }
            for m, t in sorted(totals.items())
        ],
        conflict=("member_id",),
        add_floor0=("payer_fen_12m", "purchases_12m", "growth"),
        replace=("updated_at",),
        returning=tuple(c.key for c in _ROW_COLUMNS),
    )
    ladder = load_ladder()
    if ladder is not None:
        apply_upgrades(rows, ladder, now, reason="upgrade")


def _refund_share(purchase: Any, amount: int) -> tuple[int, int]:
    """``(payer money, purchases)`` a refund of ``amount`` (in the purchase's refund money: the
    order total for payments, the money paid at a till) takes off the basis, the purchase's
    ``refunded_fen`` already counting it. The payer's share is cumulative and floored, so the
    refunds of a purchase take off exactly its ``paid_fen`` once it is fully refunded; the one
    that completes the refund takes the purchase out of the count."""
    base = refund_base_fen(purchase.source, purchase.total_fen, purchase.paid_fen)
    if base <= 0:
        return 0, 0
    after = min(base, purchase.refunded_fen)
    before = max(0, after - amount)
    share = purchase.paid_fen * after // base - purchase.paid_fen * before // base
    return -share, (-1 if after >= base > before else 0)


@dataclass
class _Decision:
    member_id: int
    old_effective: str
    tier_code: str
    reached_at: datetime | None
    keep_until: datetime | None
    reach_no: int
    clear_override: bool
    new_effective: str


_CLEAR_OVERRIDE = (
    update(MemberTier.__table__)
    .where(MemberTier.__table__.c.member_id == bindparam("b_member_id"))
    .values(override_code=None, override_until=None, override_reason=None, override_by=None)
)


def apply_upgrades(rows: Sequence[Any], ladder: Ladder, now: datetime, *, reason: str) -> int:
    """Upgrade each row whose basis earns a higher tier than its own (and place rows never
    evaluated on the lowest tier). Never demotes. Returns how many members changed tier."""
    decisions = []
    for row in rows:
        current = ladder.get(row.tier_code)
        earned = ladder.earned(basis_value(row, ladder.basis))
        if current is not None and earned.rank <= current.rank:
            continue
        old_effective = effective_code(row, ladder, now)
        if current is None and earned.rank == ladder.lowest.rank:  # first placement
            decisions.append(
                _Decision(
                    row.member_id,
                    old_effective,
                    earned.code,
                    now,
                    None,
                    row.reach_no,
                    False,
                    old_effective,
                )
            )
            continue
        decisions.append(_upgrade(row, ladder, earned, now, old_effective))
    return write_decisions(decisions, now, reason=reason)


def _upgrade(row: Any, ladder: Ladder, earned: TierRow, now: datetime, old: str) -> _Decision:
    override = ladder.get(row.override_code) if override_active(row, now) else None
    clear = override is not None and earned.rank > override.rank
    new_effective = earned.code if override is None or clear else override.code
    return _Decision(
        member_id=row.member_id,
        old_effective=old,
        tier_code=earned.code,
        reached_at=now,
        keep_until=add_months(now, ladder.keep_months),
        reach_no=row.reach_no + (1 if new_effective != old else 0),
        clear_override=clear,
        new_effective=new_effective,
    )


def write_decisions(
    decisions: Sequence[_Decision],
    now: datetime,
    *,
    reason: str,
    actor: str | None = None,
    note: str | None = None,
    expires_at: datetime | None = None,
) -> int:
    """Write decided rows, their history, and fire ``TIER_CHANGED`` for those whose effective
    tier changed. Each is one statement whatever the number of rows (``update_rows`` and
    ``insert_rows``: ``unnest`` arrays on PostgreSQL), where an executemany sent one
    ``UPDATE`` and one ``INSERT`` per member (145,000 round trips in a review of 1 M members
    changing 72,500)."""
    if not decisions:
        return 0
    ordered = sorted(decisions, key=lambda d: d.member_id)
    update_rows(
        MemberTier.__table__,
        "member_id",
        [
            {
                "member_id": d.member_id,
                "tier_code": d.tier_code,
                "reached_at": d.reached_at,
                "keep_until": d.keep_until,
                "reach_no": d.reach_no,
                "updated_at": now,
            }
            for d in ordered
        ],
    )
    cleared = [{"b_member_id": d.member_id} for d in ordered if d.clear_override]
    if cleared:
        db.session.execute(_CLEAR_OVERRIDE, cleared)
    changed = [d for d in ordered if d.new_effective != d.old_effective]
    if not changed:
        return 0
    insert_rows(
        TierChange.__table__,
        [
            {
                "member_id": d.member_id,
                "old_code": d.old_effective,
                "new_code": d.new_effective,
                "reason": reason,
                "reach_no": d.reach_no,
                "actor": actor,
                "note": note,
                "expires_at": expires_at,
                "created_at": now,
            }
            for d in changed
        ],
    )
    TIER_CHANGED.fire(
        [TierChanged(d.member_id, d.old_effective, d.new_effective, reason, now) for d in changed]
    )
    return len(changed)


# --- benefits: the upgrade gift and the member message ------------------------------------


def on_tier_changed(changes: Sequence[TierChanged]) -> None:
    """``TIER_CHANGED`` listener: a message per change ("upgraded to VIP", with the gift) and,
    on the way up, the new tier's upgrade coupon, once per member, tier and reach."""
    from app.coupons.issuance import issue_once
    from app.errors import DomainError
    from app.outbox.services import enqueue_messages

    ladder = load_ladder()
    changes = [c for c in changes if c.reason != "merge"]  # the person already had that tier
    if ladder is None or not changes:
        return
    reach = dict(
        db.session.execute(
            select(MemberTier.member_id, MemberTier.reach_no).where(
                among(MemberTier.member_id, sorted({c.member_id for c in changes}))
            )
        ).all()
    )
    messages = []
    for change in changes:
        new = ladder.get(change.new_code)
        if new is None:
            continue
        old = ladder.get(change.old_code)
        up = old is None or new.rank > old.rank
        reach_no = int(reach.get(change.member_id, 0))
        payload: dict[str, Any] = {
            "direction": "upgrade" if up else "downgrade",
            "tier": {"code": new.code, "name": new.name},
            "previous": {"code": old.code, "name": old.name} if old else None,
            "reason": change.reason,
        }
        if up and new.upgrade_coupon_template_id:
            key = f"tier-upgrade:{change.member_id}:{new.code}:{reach_no}"
            try:
                with db.session.begin_nested():
                    coupon = issue_once(
                        new.upgrade_coupon_template_id,
                        change.member_id,
                        source="tier_upgrade",
                        issue_key=key,
                    )
                payload["gift"] = {
                    "coupon_code": coupon.code,
                    "template_id": new.upgrade_coupon_template_id,
                }
            except DomainError as exc:  # paused or out of stock: the message goes without it
                payload["gift_refused"] = exc.code
        messages.append(
            (change.member_id, "tier_changed", payload, f"tier:{change.member_id}:{reach_no}")
        )
    enqueue_messages(messages)


# --- HQ's override ------------------------------------------------------------------------


def _lock_row(member_id: int) -> Any:
    """The member's tier row, created if missing, locked until the transaction ends."""
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    db.session.execute(
        insert(MemberTier.__table__)
        .values(
            member_id=member_id,
            reach_no=0,
            payer_fen_12m=0,
            purchases_12m=0,
            growth=0,
            window_month=window_start(utcnow()),
            updated_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["member_id"])
    )
    return db.session.execute(
        select(*_ROW_COLUMNS).where(MemberTier.member_id == member_id).with_for_update()
    ).one()


def set_override(
    member_id: int, *, code: str | None, reason: str, expires_at: datetime | None, actor: str
) -> dict[str, Any]:
    """Put a member on ``code`` until ``expires_at`` (``code`` None: end the override now).

    In the caller's transaction. Audited in the tier history with the actor and the reason."""
    from app.members.services import resolve_member

    ladder = load_ladder()
    if ladder is None:
        raise NotFound("no tier ladder is set", code="TIERS_NOT_CONFIGURED")
    now = utcnow()
    if code is not None:
        if ladder.get(code) is None:
            raise ValidationFailed(
                "unknown tier code", code="TIER_NOT_FOUND", details={"code": ["unknown"]}
            )
        if expires_at is None or ensure_aware(expires_at) <= now:
            raise ValidationFailed(
                "an override needs an expiry in the future",
                code="INVALID_EXPIRY",
                details={"expires_at": ["must be in the future"]},
            )
    member_id = resolve_member(member_id).id
    row = _lock_row(member_id)
    old = effective_code(row, ladder, now)
    values: dict[str, Any] = {
        "override_code": code,
        "override_until": expires_at if code else None,
        "override_reason": reason if code else None,
        "override_by": actor if code else None,
        "updated_at": now,
    }
    if row.tier_code is None:
        values["tier_code"] = ladder.earned(basis_value(row, ladder.basis)).code
        values["reached_at"] = now
    new = code or values.get("tier_code") or row.tier_code or ladder.lowest.code
    if ladder.get(new) is None:
        new = ladder.lowest.code
    reach_no = row.reach_no + (1 if new != old else 0)
    values["reach_no"] = reach_no
    db.session.execute(update(MemberTier).where(MemberTier.member_id == member_id).values(**values))
    db.session.add(
        TierChange(
            member_id=member_id,
            old_code=old,
            new_code=new,
            reason="manual",
            reach_no=reach_no,
            actor=actor,
            note=reason,
            expires_at=expires_at if code else None,
            created_at=now,
        )
    )
    db.session.flush()
    if new != old:
        TIER_CHANGED.fire([TierChanged(member_id, old, new, "manual", now)])
    return member_tier_detail(member_id)


# --- what member views show ---------------------------------------------------------------


def tier_view(member_id: int) -> dict[str, Any] | None:
    """``{code, name, basis, value, next: {code, name, threshold, needed} | None}`` for every
    member view; None when no ladder is set."""
    return tier_views([member_id]).get(member_id)


@functools.cache
def _views_stmt(dialect: str) -> Select:
    """Built once (every member view and till identify runs it): the ids are a parameter."""
    return (
        select(TierSettings.version, TierSettings.updated_at, *_ROW_COLUMNS)
        .select_from(TierSettings)
        .outerjoin(MemberTier, among_param(MemberTier.member_id, "ids", dialect))
        .where(TierSettings.id == 1)
    )


def tier_views(member_ids: Sequence[int]) -> dict[int, dict[str, Any] | None]:
    """One statement: the members' tier rows beside which ladder is in force (none: no rows)."""
    dialect = db.session.get_bind().dialect.name
    found = fetch_rows(_views_stmt(dialect), {"ids": list(member_ids)})
    ladder = views_ladder((found[0].version, found[0].updated_at)) if found else None
    if ladder is None:
        return {m: None for m in member_ids}
    rows = {r.member_id: r for r in found if r.member_id is not None}
    now = utcnow()
    return {m: _view(rows.get(m), ladder, now) for m in member_ids}


def _view(row: Any, ladder: Ladder, now: datetime) -> dict[str, Any]:
    tier = ladder.get(effective_code(row, ladder, now)) or ladder.lowest
    value = basis_value(row, ladder.basis) if row is not None else 0
    above = ladder.next_above(tier.code)
    return {
        "code": tier.code,
        "name": tier.name,
        "basis": ladder.basis,
        "value": value,
        "keep_until": row.keep_until if row is not None and tier.code == row.tier_code else None,
        "next": None
        if above is None
        else {
            "code": above.code,
            "name": above.name,
            "threshold": above.threshold,
            "needed": max(0, above.threshold - value),
        },
    }


def member_tier_detail(member_id: int) -> dict[str, Any]:
    """The admin's view: the tier, the earned tier under any override, the basis and history."""
    ladder = load_ladder()
    if ladder is None:
        raise NotFound("no tier ladder is set", code="TIERS_NOT_CONFIGURED")
    row = db.session.execute(
        select(MemberTier).where(MemberTier.member_id == member_id)
    ).scalar_one_or_none()
    now = utcnow()
    history = db.session.scalars(
        select(TierChange)
        .where(TierChange.member_id == member_id)
        .order_by(TierChange.id.desc())
        .limit(50)
    ).all()
    return {
        "member_id": member_id,
        "tier": _view(row, ladder, now),
        "earned_code": (row.tier_code if row and row.tier_code else ladder.lowest.code),
        "reached_at": row.reached_at if row else None,
        "keep_until": row.keep_until if row else None,
        "payer_fen_12m": row.payer_fen_12m if row else 0,
        "purchases_12m": row.purchases_12m if row else 0,
        "growth": row.growth if row else 0,
        "override": {
            "code": row.override_code,
            "expires_at": row.override_until,
            "reason": row.override_reason,
            "by": row.override_by,
        }
        if row is not None and override_active(row, now)
        else None,
        "history": history,
    }


# --- the ladder ---------------------------------------------------------------------------


def replace_ladder(
    *,
    basis: str,
    tiers: list[dict[str, Any]],
    keep_months: int,
    review_max_steps: int,
    actor: str,
) -> int:
    """Replace the whole ladder (in the caller's transaction); returns its new version.

    Members on a tier that no longer exists move to the tier now at the same position (or the
    top one); the re-evaluation job then upgrades whoever the new ladder lets through."""
    from app.coupons.models import CouponTemplate
    from app.tiers.models import Tier, TierSettings

    _check_ladder(tiers)
    wanted = {
        t[k]
        for t in tiers
        for k in ("upgrade_coupon_template_id", "birthday_coupon_template_id")
        if t.get(k) is not None
    }
    if wanted:
        found = set(
            db.session.scalars(
                select(CouponTemplate.id).where(CouponTemplate.id.in_(sorted(wanted)))
            )
        )
        if wanted - found:
            raise ValidationFailed(
                "unknown coupon template",
                code="TEMPLATE_NOT_FOUND",
                details={"tiers": [f"no coupon template {i}" for i in sorted(wanted - found)]},
            )
    settings = db.session.execute(
        select(TierSettings).where(TierSettings.id == 1).with_for_update()
    ).scalar_one_or_none()
    old = load_ladder()
    if settings is None:
        settings = TierSettings(id=1, version=0)
        db.session.add(settings)
    ordered = sorted(tiers, key=lambda t: t["threshold"])
    db.session.execute(Tier.__table__.delete())
    db.session.execute(
        Tier.__table__.insert(),
        [
            {
                "code": t["code"],
                "name": t["name"],
                "rank": t.get("rank") or i + 1,
                "threshold": t["threshold"],
                "earn_multiplier_pct": t["earn_multiplier_pct"],
                "upgrade_coupon_template_id": t.get("upgrade_coupon_template_id"),
                "birthday_coupon_template_id": t.get("birthday_coupon_template_id"),
            }
            for i, t in enumerate(ordered)
        ],
    )
    if old is not None:
        codes = [t["code"] for t in ordered]
        for i, gone in enumerate(old.tiers):
            if gone.code in codes:
                continue
            moved = codes[min(i, len(codes) - 1)]
            for column in (MemberTier.tier_code, MemberTier.override_code):
                db.session.execute(
                    update(MemberTier)
                    .where(column == gone.code)
                    .values({column: moved})
                    .execution_options(synchronize_session=False)
                )
    now = utcnow()
    settings.basis = basis
    settings.keep_months = keep_months
    settings.review_max_steps = review_max_steps
    settings.version = (settings.version or 0) + 1
    settings.updated_by = actor
    settings.updated_at = now
    settings.reeval_state = "pending"
    settings.reeval_done = 0
    settings.reeval_after = 0
    settings.reeval_finished_at = None
    settings.reeval_total = db.session.scalar(select(func.count()).select_from(MemberTier)) or 0
    db.session.flush()
    forget_ladder()
    return settings.version


def change_ladder(*, actor: str, **ladder: Any) -> int:
    """Replace the ladder in its own transaction, then queue the re-evaluation of every member
    (no one is demoted before their keep period ends). The admin API and the console both call
    this; returns the new version."""
    from app.db import transaction
    from app.jobs.runner import enqueue

    version = transaction(lambda: replace_ladder(actor=actor, **ladder))
    enqueue("tiers.reevaluate", version=version)
    return version


def _check_ladder(tiers: list[dict[str, Any]]) -> None:
    problems: dict[str, list[str]] = {}
    codes = [t["code"] for t in tiers]
    if len(set(codes)) != len(codes):
        problems.setdefault("tiers", []).append("tier codes must be unique")
    thresholds = [t["threshold"] for t in tiers]
    if len(set(thresholds)) != len(thresholds):
        problems.setdefault("tiers", []).append("thresholds must differ")
    if min(thresholds) != 0:
        problems.setdefault("tiers", []).append("the lowest tier must have threshold 0")
    ranks = [t.get("rank") for t in tiers]
    if any(r is not None for r in ranks):
        if any(r is None for r in ranks) or len(set(ranks)) != len(ranks):
            problems.setdefault("tiers", []).append("give every tier a distinct rank, or none")
        else:
            by_rank = [t["threshold"] for t in sorted(tiers, key=lambda t: t["rank"])]
            if by_rank != sorted(by_rank):
                problems.setdefault("tiers", []).append("a higher rank needs a higher threshold")
    if problems:
        raise ValidationFailed("the ladder is not valid", code="INVALID_LADDER", details=problems)


def ladder_view() -> dict[str, Any]:
    from app.tiers.models import TierSettings

    settings = db.session.get(TierSettings, 1)
    ladder = load_ladder()
    if settings is None or ladder is None:
        return {"basis": None, "tiers": [], "version": 0, "reevaluation": None}
    return {
        "basis": ladder.basis,
        "keep_months": ladder.keep_months,
        "review_max_steps": ladder.review_max_steps,
        "version": ladder.version,
        "updated_at": settings.updated_at,
        "updated_by": settings.updated_by,
        "tiers": [t.__dict__ for t in ladder.tiers],
        "reevaluation": {
            "state": settings.reeval_state,
            "done": settings.reeval_done,
            "total": settings.reeval_total,
            "finished_at": settings.reeval_finished_at,
        },
    }


def tier_birthday_gift(member_id: int, year: int) -> dict[str, Any]:
    """The member's tier birthday coupon, once a year (key ``tier-birthday:<year>:<member>``),
    for the birthday message's payload: ``{"tier_gift": {...}}`` or ``{}``."""
    from app.coupons.issuance import issue_once
    from app.errors import DomainError

    view = tier_view(member_id)
    ladder = load_ladder()
    tier = ladder.get(view["code"]) if ladder and view else None
    if tier is None or not tier.birthday_coupon_template_id:
        return {}
    key = f"tier-birthday:{year}:{member_id}"
    try:
        with db.session.begin_nested():
            coupon = issue_once(
                tier.birthday_coupon_template_id, member_id, source="tier_birthday", issue_key=key
            )
    except DomainError as exc:
        return {"tier_gift": {"tier": tier.code, "refused": exc.code}}
    return {"tier_gift": {"tier": tier.code, "code": coupon.code}}
