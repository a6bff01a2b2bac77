"""Campaigns: one action (coupon, message or points) for every member of a segment, once.

Life: ``dry_run`` (counted, never run) or ``scheduled`` → ``running`` → ``done``
(``cancelled`` from scheduled or running). When a scheduled campaign is due, the
``intel.campaigns`` job takes its targets in one ``INSERT … SELECT`` from the segment's query
(the unique (campaign, member) key makes that once), sets aside the hold-out group, skips
members who opted out of marketing and those beyond the budget, then acts on the pending ones
chunk by chunk. Each chunk is one transaction that acts and marks its targets ``done``; each
action also carries the key ``campaign:<id>:member:<id>``, so a chunk re-run after a crash (or
by a second worker) cannot act twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, literal, select, update

from app.common.clock import utcnow
from app.db import unit_of_work
from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.intel.actions import act, validate_action
from app.intel.models import Campaign, CampaignTarget
from app.intel.segments import count_members, get_segment, members_query
from app.members.models import Member

CHUNK = 500
STATES = ("dry_run", "scheduled", "running", "done", "cancelled")


def _in_holdout(campaign_id: int, member_id: int, percent: int) -> bool:
    """Deterministic split: the same member is in or out of a campaign's hold-out every time."""
    return (member_id * 2654435761 + campaign_id * 40503) % 100 < percent


def create_campaign(
    *,
    segment_id: int,
    action: Any,
    name: str | None = None,
    dry_run: bool = False,
    scheduled_at: datetime | None = None,
    budget: int | None = None,
    holdout_percent: int = 0,
    attribution_days: int = 14,
    actor: str | None = None,
) -> Campaign:
    segment = get_segment(segment_id)
    clean = validate_action(action)
    if not 0 <= holdout_percent <= 90:
        raise ValidationFailed(
            "holdout_percent: 0 to 90",
            code="VALIDATION_ERROR",
            details={"holdout_percent": ["0 to 90"]},
        )
    now = utcnow()
    with unit_of_work():
        campaign = Campaign(
            name=name or f"{segment.name} {now.date().isoformat()}",
            segment_id=segment.id,
            action=clean,
            state="dry_run" if dry_run else "scheduled",
            scheduled_at=scheduled_at or now,
            budget=budget,
            holdout_percent=holdout_percent,
            attribution_days=attribution_days,
            targeted=count_members(segment.rule, now) if dry_run else 0,
            created_by=actor,
        )
        db.session.add(campaign)
    return campaign


def get_campaign(campaign_id: int) -> Campaign:
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound("campaign not found", code="CAMPAIGN_NOT_FOUND")
    return campaign


def campaigns_issuing(template_id: int) -> list[Campaign]:
    """The campaigns whose action issues this coupon template, newest first."""
    found = db.session.scalars(select(Campaign).order_by(Campaign.id.desc())).all()
    return [c for c in found if c.action.get("issue_coupon") == template_id]


def cancel_campaign(campaign_id: int) -> Campaign:
    with unit_of_work():
        campaign = db.session.execute(
            select(Campaign).where(Campaign.id == campaign_id).with_for_update()
        ).scalar_one_or_none()
        if campaign is None:
            raise NotFound("campaign not found", code="CAMPAIGN_NOT_FOUND")
        if campaign.state not in ("scheduled", "running"):
            raise Conflict(
                f"a {campaign.state} campaign cannot be cancelled", code="CAMPAIGN_NOT_CANCELLABLE"
            )
        campaign.state = "cancelled"
        campaign.finished_at = utcnow()
    return campaign


def counts(campaign: Campaign) -> dict[str, Any]:
    """targeted (members of the segment taken), done, skipped (with why), holdout, pending."""
    by_status = dict(
        db.session.execute(
            select(CampaignTarget.status, func.count())
            .where(CampaignTarget.campaign_id == campaign.id)
            .group_by(CampaignTarget.status)
        ).all()
    )
    reasons = dict(
        db.session.execute(
            select(CampaignTarget.reason, func.count())
            .where(CampaignTarget.campaign_id == campaign.id, CampaignTarget.status == "skipped")
            .group_by(CampaignTarget.reason)
        ).all()
    )
    targeted = campaign.targeted if campaign.state == "dry_run" else sum(by_status.values())
    return {
        "targeted": targeted,
        "done": by_status.get("done", 0),
        "skipped": by_status.get("skipped", 0),
        "holdout": by_status.get("holdout", 0),
        "pending": by_status.get("pending", 0),
        "skipped_by_reason": {str(k): v for k, v in reasons.items()},
    }


def attribution(campaign: Campaign) -> dict[str, Any] | None:
    """Purchases by recipients within ``attribution_days`` of the campaign's start, against the
    hold-out group over the same days."""
    from app.coupons.models import Coupon
    from app.points.models import Purchase

    if campaign.started_at is None:
        return None
    start = campaign.started_at
    end = start + timedelta(days=campaign.attribution_days)

    def group(status: str) -> dict[str, int]:
        members, buyers, sales = db.session.execute(
            select(
                func.count(func.distinct(CampaignTarget.member_id)),
                func.count(func.distinct(Purchase.member_id)),
                func.coalesce(func.sum(Purchase.paid_fen - Purchase.refunded_fen), 0),
            )
            .select_from(CampaignTarget)
            .outerjoin(
                Purchase,
                (Purchase.member_id == CampaignTarget.member_id)
                & (Purchase.occurred_at >= start)
                & (Purchase.occurred_at < end),
            )
            .where(CampaignTarget.campaign_id == campaign.id, CampaignTarget.status == status)
        ).one()
        return {"members": members, "buyers": buyers, "sales_fen": int(sales)}

    recipients, holdout = group("done"), group("holdout")
    redeemed = None
    if "issue_coupon" in campaign.action:
        redeemed = db.session.scalar(
            select(func.count()).where(
                Coupon.issue_key.like(f"campaign:{campaign.id}:member:%"),
                Coupon.state == "redeemed",
            )
        )

    def rate(g: dict[str, int]) -> float | None:
        return round(g["buyers"] / g["members"], 4) if g["members"] else None

    return {
        "window_days": campaign.attribution_days,
        "recipients": {**recipients, "conversion": rate(recipients)},
        "holdout": {**holdout, "conversion": rate(holdout)} if campaign.holdout_percent else None,
        "coupons_redeemed": redeemed,
    }


def _take_targets(campaign: Campaign, now: datetime) -> None:
    """Snapshot the segment into targets and settle hold-out, opt-outs and budget."""
    segment = get_segment(campaign.segment_id)
    member_ids = members_query(segment.rule, now).subquery()
    taken = select(CampaignTarget.member_id).where(CampaignTarget.campaign_id == campaign.id)
    db.session.execute(
        insert(CampaignTarget).from_select(
            ["campaign_id", "member_id", "status"],
            select(literal(campaign.id), member_ids.c.id, literal("pending")).where(
                member_ids.c.id.not_in(taken)
            ),
        )
    )
    if campaign.holdout_percent:
        pending = db.session.scalars(
            select(CampaignTarget.member_id).where(
                CampaignTarget.campaign_id == campaign.id, CampaignTarget.status == "pending"
            )
        ).all()
        held = [m for m in pending if _in_holdout(campaign.id, m, campaign.holdout_percent)]
        for i in range(0, len(held), 5000):
            db.session.execute(
                update(CampaignTarget)
                .where(
                    CampaignTarget.campaign_id == campaign.id,
                    CampaignTarget.member_id.in_(held[i : i + 5000]),
                )
                .values(status="holdout")
            )
    opted_out = select(Member.id).where(Member.marketing_opt_out.is_(True))
    db.session.execute(
        update(CampaignTarget)
        .where(
            CampaignTarget.campaign_id == campaign.id,
            CampaignTarget.status == "pending",
            CampaignTarget.member_id.in_(opted_out),
        )
        .values(status="skipped", reason="opted_out")
    )
    if campaign.budget is not None:
        over = (
            select(CampaignTarget.id)
            .where(CampaignTarget.campaign_id == campaign.id, CampaignTarget.status == "pending")
            .order_by(CampaignTarget.member_id)
            .offset(campaign.budget)
        )
        db.session.execute(
            update(CampaignTarget)
            .where(CampaignTarget.id.in_(over.scalar_subquery()))
            .values(status="skipped", reason="budget")
        )


def _start(campaign_id: int, now: datetime) -> bool:
    """``scheduled`` → ``running`` with its targets taken, in one transaction."""
    with unit_of_work():
        campaign = db.session.execute(
            select(Campaign).where(Campaign.id == campaign_id).with_for_update()
        ).scalar_one()
        if campaign.state != "scheduled":
            return campaign.state == "running"
        _take_targets(campaign, now)
        campaign.state = "running"
        campaign.started_at = now
        campaign.targeted = db.session.scalar(
            select(func.count()).where(CampaignTarget.campaign_id == campaign.id)
        )
    return True


def run_chunk(campaign_id: int, now: datetime, limit: int = CHUNK) -> int:
    """Act on up to ``limit`` pending targets, and record it, in one transaction."""
    with unit_of_work():
        campaign = db.session.get(Campaign, campaign_id)
        if campaign is None or campaign.state != "running":
            return 0
        targets = db.session.scalars(
            select(CampaignTarget)
            .where(CampaignTarget.campaign_id == campaign_id, CampaignTarget.status == "pending")
            .order_by(CampaignTarget.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for target in targets:
            member = db.session.get(Member, target.member_id)
            reason = None
            if member is None or member.status != "active":
                reason = "member_gone"
            elif member.marketing_opt_out:
                reason = "opted_out"
            else:
                reason = act(
                    target.member_id,
                    campaign.action,
                    key=f"campaign:{campaign.id}:member:{target.member_id}",
                    source="campaign",
                )
            target.status = "done" if reason is None else "skipped"
            target.reason = reason
            target.acted_at = now
        if not targets:
            left = db.session.scalar(
                select(func.count()).where(
                    CampaignTarget.campaign_id == campaign_id, CampaignTarget.status == "pending"
                )
            )
            if not left:
                campaign.state = "done"
                campaign.finished_at = now
    return len(targets)


def run_campaigns(
    now: datetime | None = None, *, max_chunks: int | None = None, chunk: int = CHUNK
) -> dict[str, int]:
    """The scheduler's job: start due campaigns and work through their targets."""
    now = now or utcnow()
    due = db.session.scalars(
        select(Campaign.id)
        .where(Campaign.state.in_(("scheduled", "running")), Campaign.scheduled_at <= now)
        .order_by(Campaign.id)
    ).all()
    db.session.commit()
    acted = chunks = 0
    for campaign_id in due:
        if not _start(campaign_id, now):
            continue
        while max_chunks is None or chunks < max_chunks:
            n = run_chunk(campaign_id, now, chunk)
            chunks += 1
            acted += n
            if not n:
                break
    return {"campaigns": len(due), "targets": acted}
