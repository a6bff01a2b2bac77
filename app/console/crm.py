"""Console pages for the CRM half: the tier ladder, segments and campaigns.

HQ pages (as their admin API endpoints): HQ roles read, ``hq_admin`` changes. Each page loads
its form through the API's schema and calls the same service as the API; no rule lives here.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

import app.console.forms as forms
from app.console.auth import operator_required
from app.console.views import bp
from app.coupons.models import CouponTemplate
from app.errors import Conflict, ValidationFailed
from app.extensions import db
from app.intel import campaigns, segments
from app.intel.actions import ACTION_KINDS
from app.intel.models import STAGES, Campaign, Segment, SegmentExport
from app.intel.schemas import CampaignInSchema, SegmentInSchema
from app.operators import authz
from app.outbox.models import MESSAGE_KINDS
from app.tiers import services as tiers
from app.tiers.models import BASES
from app.tiers.schemas import LadderInSchema

STAGE_NAMES = {
    "new": _l("New"),
    "active": _l("Active"),
    "silent": _l("Silent"),
    "sleeping": _l("Sleeping"),
    "lost": _l("Lost"),
}
BASIS_NAMES = {
    "payer_fen_12m": _l("Money paid in 12 months (fen)"),
    "purchases_12m": _l("Purchases in 12 months"),
    "growth": _l("Growth value"),
}
ACTION_NAMES = {
    "issue_coupon": _l("Issue a coupon"),
    "message": _l("Send a message"),
    "points": _l("Give points"),
}
CAMPAIGN_STATES = {
    "dry_run": _l("Dry run"),
    "scheduled": _l("Scheduled"),
    "running": _l("Running"),
    "done": _l("Done"),
    "cancelled": _l("Cancelled"),
}
BLANK_TIER_ROWS = 2


@bp.app_template_global()
def stage_name(stage: str | None) -> str:
    return str(STAGE_NAMES.get(stage or "new", stage))


@bp.app_template_global()
def campaign_state(state: str) -> str:
    return str(CAMPAIGN_STATES.get(state, state))


@bp.app_template_global()
def action_text(action: dict[str, Any]) -> str:
    kind = next((k for k in ACTION_KINDS if k in action), "")
    return f"{ACTION_NAMES.get(kind, kind)}: {action.get(kind)}"


# --- tiers ----------------------------------------------------------------------------------


def _ladder_form() -> dict[str, Any]:
    rows = []
    for i in range(int(request.form.get("rows", "0") or 0)):
        code = forms.text(f"code_{i}")
        if not code:
            continue  # a blank row, or one cleared to remove the tier
        rows.append(
            {
                "code": code,
                "name": forms.text(f"name_{i}"),
                "threshold": forms.whole(f"threshold_{i}"),
                "earn_multiplier_pct": forms.whole(f"multiplier_{i}") or 100,
                "upgrade_coupon_template_id": forms.whole(f"upgrade_{i}"),
                "birthday_coupon_template_id": forms.whole(f"birthday_{i}"),
            }
        )
    return {
        "basis": forms.text("basis"),
        "keep_months": forms.whole("keep_months") or 12,
        "review_max_steps": forms.whole("review_max_steps") or 1,
        "tiers": rows,
    }


@bp.route("/tiers", methods=["GET", "POST"])
@operator_required
def tiers_page():
    principal = authz.check_hq()
    if request.method == "POST":
        body = forms.load(LadderInSchema(), _ladder_form())
        version = tiers.change_ladder(actor=principal.actor[:64], **body)
        flash(
            _(
                "Ladder saved (version %(version)s); members are being re-evaluated.",
                version=version,
            ),
            "ok",
        )
        return redirect(url_for("console.tiers_page"))
    ladder = tiers.ladder_view()
    return render_template(
        "console/tiers.html",
        ladder=ladder,
        rows=list(ladder["tiers"]) + [None] * BLANK_TIER_ROWS,
        bases=[(b, BASIS_NAMES[b]) for b in BASES],
        basis_name=BASIS_NAMES.get(ladder["basis"] or "", ""),
        templates=_templates(),
    )


def _templates() -> list[CouponTemplate]:
    return list(db.session.scalars(select(CouponTemplate).order_by(CouponTemplate.id.desc())))


# --- segments -------------------------------------------------------------------------------


def _rule_from(source: Any) -> dict[str, Any] | None:
    """The rule of a form: its JSON, or one condition from the field, operator and value."""
    raw = (source.get("rule") or "").strip()
    if raw:
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ValidationFailed(_("The rule is not valid JSON."), code="INVALID_RULE") from exc
    field = (source.get("field") or "").strip()
    if not field:
        return None
    op = source.get("op") or "="
    value = forms.json_value((source.get("value") or "").strip())
    if op == "in" and isinstance(value, str):
        value = [
            forms.json_value(v.strip()) for v in value.replace("，", ",").split(",") if v.strip()
        ]
    condition: dict[str, Any] = {"field": field, "op": op, "value": value}
    days = (source.get("days") or "").strip()
    if days:
        condition["days"] = forms.json_value(days)
    return condition


@bp.route("/segments", methods=["GET", "POST"])
@operator_required
def segments_page():
    principal = authz.check_hq()
    if request.method == "POST":
        body = forms.load(
            SegmentInSchema(), {"name": forms.text("name"), "rule": _rule_from(request.form)}
        )
        segment = segments.create_segment(body["name"], body["rule"], principal.actor[:64])
        flash(_("Segment %(name)s saved.", name=segment.name), "ok")
        return redirect(url_for("console.segment_page", segment_id=segment.id))
    rule = _rule_from(request.args)
    items = db.session.scalars(select(Segment).order_by(Segment.id.desc()).limit(100)).all()
    return render_template(
        "console/segments.html",
        items=items,
        count=segments.count_members,
        fields=segments.field_list(),
        stages=STAGES,
        rule=rule,
        rule_json=json.dumps(rule, ensure_ascii=False) if rule else "",
        preview=segments.preview_rule(rule) if rule else None,
        form=request.args,
    )


@bp.route("/segments/<int:segment_id>")
@operator_required
def segment_page(segment_id: int):
    authz.check_hq()
    segment = segments.get_segment(segment_id)
    exports = db.session.scalars(
        select(SegmentExport)
        .where(SegmentExport.segment_id == segment.id)
        .order_by(SegmentExport.id.desc())
        .limit(20)
    ).all()
    return render_template(
        "console/segment.html",
        segment=segment,
        rule_json=json.dumps(segment.rule, ensure_ascii=False, indent=1),
        preview=segments.preview_rule(segment.rule),
        exports=exports,
        campaigns=db.session.scalars(
            select(Campaign).where(Campaign.segment_id == segment.id).order_by(Campaign.id.desc())
        ).all(),
    )


@bp.route("/segments/<int:segment_id>/exports", methods=["POST"])
@operator_required
def segment_export(segment_id: int):
    principal = authz.check_hq()
    reveal = bool(request.form.get("reveal_phones"))
    if reveal:
        authz.check_phones()
    export = segments.request_export(segment_id, reveal_phones=reveal, actor=principal.actor[:64])
    flash(_("Export %(id)s requested: it is written by a job.", id=export.id), "ok")
    return redirect(url_for("console.segment_page", segment_id=segment_id))


@bp.route("/segments/<int:segment_id>/exports/<int:export_id>.csv")
@operator_required
def segment_export_csv(segment_id: int, export_id: int):
    authz.check_hq()
    export = segments.get_export(segment_id, export_id)
    if export.reveal_phones:
        authz.check_phones()
    if export.state != "done":
        raise Conflict(_("The export is not finished."), code="EXPORT_NOT_READY")
    return Response(
        export.content or "",
        mimetype="text/csv",
        headers={
            "Content-Disposition": f"attachment; filename=segment-{segment_id}-{export_id}.csv"
        },
    )


# --- campaigns ------------------------------------------------------------------------------


def _action_form() -> dict[str, Any]:
    kind = request.form.get("kind", "")
    if kind == "issue_coupon":
        return {"issue_coupon": forms.whole("template_id")}
    if kind == "message":
        return {"message": forms.text("message")}
    if kind == "points":
        return {"points": forms.whole("points"), "reason": forms.text("reason")}
    return {}


def _campaign_form() -> dict[str, Any]:
    data: dict[str, Any] = {
        "segment_id": forms.whole("segment_id"),
        "action": _action_form(),
        "dry_run": bool(request.form.get("dry_run")),
        "holdout_percent": forms.whole("holdout_percent") or 0,
        "attribution_days": forms.whole("attribution_days") or 14,
    }
    if forms.text("name"):
        data["name"] = forms.text("name")
    if forms.whole("budget") is not None:
        data["budget"] = forms.whole("budget")
    if forms.text("scheduled_at"):  # a datetime-local input: Shanghai time
        data["scheduled_at"] = forms.text("scheduled_at") + "+08:00"
    return data


@bp.route("/campaigns", methods=["GET", "POST"])
@operator_required
def campaigns_page():
    principal = authz.check_hq()
    if request.method == "POST":
        body = forms.load(CampaignInSchema(), _campaign_form())
        campaign = campaigns.create_campaign(**body, actor=principal.actor[:64])
        flash(_("Campaign %(name)s created.", name=campaign.name), "ok")
        return redirect(url_for("console.campaign_page", campaign_id=campaign.id))
    items = db.session.scalars(select(Campaign).order_by(Campaign.id.desc()).limit(100)).all()
    return render_template(
        "console/campaigns.html",
        items=items,
        counts=campaigns.counts,
        segments=db.session.scalars(select(Segment).order_by(Segment.id.desc())).all(),
        segment_id=request.args.get("segment", type=int),
        templates=_templates(),
        message_kinds=sorted(MESSAGE_KINDS),
        action_names=ACTION_NAMES,
    )


@bp.route("/campaigns/<int:campaign_id>")
@operator_required
def campaign_page(campaign_id: int):
    authz.check_hq()
    campaign = campaigns.get_campaign(campaign_id)
    return render_template(
        "console/campaign.html",
        campaign=campaign,
        segment=db.session.get(Segment, campaign.segment_id),
        counts=campaigns.counts(campaign),
        attribution=campaigns.attribution(campaign),
    )


@bp.route("/campaigns/<int:campaign_id>/cancel", methods=["POST"])
@operator_required
def campaign_cancel(campaign_id: int):
    authz.check_hq()
    campaigns.cancel_campaign(campaign_id)
    flash(_("Campaign cancelled."), "ok")
    return redirect(url_for("console.campaign_page", campaign_id=campaign_id))
