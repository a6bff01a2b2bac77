"""HQ endpoints: lifecycle settings, member stats, segments, campaigns and journeys."""

from __future__ import annotations

from typing import Any

from flask import Response, g
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.admin.auth import ADMIN_SECURITY, admin_required
from app.common.pagination import paginate
from app.errors import NotFound
from app.intel import campaigns, journeys, segments, services
from app.intel.models import Campaign, Journey, Segment
from app.intel.schemas import (
    CampaignInSchema,
    CampaignListSchema,
    CampaignSchema,
    ExportInSchema,
    JourneyInSchema,
    JourneyPatchSchema,
    JourneySchema,
    JourneyTemplateInSchema,
    ListQuerySchema,
    MemberStatsSchema,
    PreviewSchema,
    RuleInSchema,
    SegmentExportSchema,
    SegmentFieldListSchema,
    SegmentInSchema,
    SegmentListSchema,
    SegmentSchema,
    SettingsSchema,
)
from app.members.services import resolve_member
from app.operators import authz

blp = Blueprint(
    "admin_intel",
    __name__,
    url_prefix="/admin/v1",
    description=(
        "HQ: customer intelligence. Member stats kept as purchases arrive (first and last "
        "purchase, count, payer money 12 months and lifetime, home store = most visits in 12 "
        "months, last store), the lifecycle stage (new, active, silent, sleeping, lost; "
        "thresholds in days are settings; moved by each purchase and by the nightly job), RFM "
        "scores 1–5 by quintile over members with a purchase in 12 months (nightly), segments "
        "(rule trees counted live), campaigns (a coupon, message or points per member of a "
        "segment, at most once per member) and nurture journeys. Errors: INVALID_RULE, "
        "INVALID_ACTION, INVALID_STEPS, INVALID_TRIGGER, INVALID_THRESHOLDS, UNKNOWN_TEMPLATE, "
        "VALIDATION_ERROR (422); SEGMENT_NOT_FOUND, CAMPAIGN_NOT_FOUND, JOURNEY_NOT_FOUND, "
        "EXPORT_NOT_FOUND, MEMBER_NOT_FOUND (404); CAMPAIGN_NOT_CANCELLABLE, "
        "EXPORT_NOT_READY (409)."
    ),
)


@blp.route("/intel/settings")
class Settings(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, SettingsSchema)
    def get(self):
        """Lifecycle thresholds in days since the last purchase"""
        return services.get_settings()

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(SettingsSchema())
    @blp.response(200, SettingsSchema)
    def put(self, body: dict):
        """Change thresholds (active_days < silent_days < sleeping_days); the nightly job
        moves members to the stages the new thresholds give"""
        return services.update_settings(body)


@blp.route("/members/<int:member_id>/stats")
class MemberStatsView(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, MemberStatsSchema)
    def get(self, member_id: int):
        """A member's purchase stats, lifecycle stage and RFM (merged ids: the survivor's)"""
        member = resolve_member(member_id)
        stats = services.member_stats(member.id)
        if stats is None:
            raise NotFound("no stats for this member yet", code="MEMBER_NOT_FOUND")
        return stats


def _segment_out(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.id,
        "name": segment.name,
        "rule": segment.rule,
        "created_by": segment.created_by,
        "created_at": segment.created_at,
        "member_count": segments.count_members(segment.rule),
    }


@blp.route("/segments")
class Segments(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(SegmentInSchema())
    @blp.response(201, SegmentSchema)
    def post(self, body: dict):
        """Save a segment; the answer carries its member count now"""
        return _segment_out(segments.create_segment(body["name"], body["rule"], g.admin_name))

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(ListQuerySchema(), location="query")
    @blp.response(200, SegmentListSchema)
    def get(self, query: dict):
        """Saved segments, newest first"""
        items, cursor = paginate(
            select(Segment), Segment.id, limit=query["limit"], cursor=query["cursor"]
        )
        return {"items": items, "next_cursor": cursor}


@blp.route("/segments/fields")
class SegmentFields(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, SegmentFieldListSchema)
    def get(self):
        """The condition fields a rule may use, with their operators (features add theirs)"""
        return {"items": segments.field_list()}


@blp.route("/segments/preview")
class RulePreview(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(RuleInSchema())
    @blp.response(200, PreviewSchema)
    def post(self, body: dict):
        """Count and show (masked) the members of a rule before saving it"""
        return segments.preview_rule(body["rule"])


@blp.route("/segments/<int:segment_id>")
class SegmentDetail(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, SegmentSchema)
    def get(self, segment_id: int):
        """A segment with its member count, counted now"""
        return _segment_out(segments.get_segment(segment_id))


@blp.route("/segments/<int:segment_id>/preview")
class SegmentPreview(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, PreviewSchema)
    def get(self, segment_id: int):
        """The count and the first 20 members, phones masked"""
        segment = segments.get_segment(segment_id)
        return {
            "member_count": segments.count_members(segment.rule),
            "members": segments.preview(segment),
        }


@blp.route("/segments/<int:segment_id>/exports")
class SegmentExports(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(ExportInSchema())
    @blp.response(202, SegmentExportSchema)
    def post(self, body: dict, segment_id: int):
        """Export the segment as CSV, by a job; phones masked unless `reveal_phones`"""
        return segments.request_export(
            segment_id, reveal_phones=body["reveal_phones"], actor=g.admin_name
        )


@blp.route("/segments/<int:segment_id>/exports/<int:export_id>")
class SegmentExportDetail(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, SegmentExportSchema)
    def get(self, segment_id: int, export_id: int):
        """An export's state"""
        return segments.get_export(segment_id, export_id)


@blp.route("/segments/<int:segment_id>/exports/<int:export_id>/csv")
class SegmentExportFile(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, content_type="text/csv")
    def get(self, segment_id: int, export_id: int):
        """The CSV file of a finished export (one with full phones: HQ admin only, 403
        ROLE_NOT_ALLOWED)"""
        from app.errors import Conflict

        export = segments.get_export(segment_id, export_id)
        if export.reveal_phones:
            authz.check_phones()
        if export.state != "done":
            raise Conflict("the export is not finished", code="EXPORT_NOT_READY")
        return Response(
            export.content or "",
            mimetype="text/csv",
            headers={
                "Content-Disposition": f"attachment; filename=segment-{segment_id}-{export_id}.csv"
            },
        )


def _campaign_out(campaign: Campaign) -> dict[str, Any]:
    out = {
        c: getattr(campaign, c)
        for c in (
            "id",
            "name",
            "segment_id",
            "action",
            "state",
            "scheduled_at",
            "budget",
            "holdout_percent",
            "attribution_days",
            "started_at",
            "finished_at",
        )
    }
    out["counts"] = campaigns.counts(campaign)
    out["attribution"] = campaigns.attribution(campaign)
    return out


@blp.route("/campaigns")
class Campaigns(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(CampaignInSchema())
    @blp.response(201, CampaignSchema)
    def post(self, body: dict):
        """Create a campaign: `dry_run` only counts; otherwise it runs at `scheduled_at`
        (default now) through the scheduler, once per member"""
        return _campaign_out(campaigns.create_campaign(**body, actor=g.admin_name))

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(ListQuerySchema(), location="query")
    @blp.response(200, CampaignListSchema)
    def get(self, query: dict):
        """Campaigns, newest first"""
        items, cursor = paginate(
            select(Campaign), Campaign.id, limit=query["limit"], cursor=query["cursor"]
        )
        return {"items": items, "next_cursor": cursor}


@blp.route("/campaigns/<int:campaign_id>")
class CampaignDetail(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, CampaignSchema)
    def get(self, campaign_id: int):
        """State, counts (targeted, done, skipped, holdout, pending) and attribution"""
        return _campaign_out(campaigns.get_campaign(campaign_id))


@blp.route("/campaigns/<int:campaign_id>/cancel")
class CampaignCancel(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, CampaignSchema)
    def post(self, campaign_id: int):
        """Stop a scheduled or running campaign (members already acted on stay so)"""
        return _campaign_out(campaigns.cancel_campaign(campaign_id))


def _journey_out(journey: Journey) -> dict[str, Any]:
    out = {
        c: getattr(journey, c)
        for c in ("id", "name", "trigger", "steps", "active", "template", "created_at")
    }
    out["counts"] = journeys.journey_counts(journey.id)
    return out


@blp.route("/journeys")
class Journeys(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(JourneyInSchema())
    @blp.response(201, JourneySchema)
    def post(self, body: dict):
        """Create a journey: a trigger, then steps run `day` days after it"""
        return _journey_out(journeys.create_journey(**body))


@blp.route("/journeys/from-template")
class JourneyFromTemplate(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(JourneyTemplateInSchema())
    @blp.response(201, JourneySchema)
    def post(self, body: dict):
        """Create one of the shipped journeys: `new_customer` (first purchase → day 0 thanks,
        day 7 care message, day 20 and day 30 coupons unless bought again) or `honeymoon_60`
        (60 days after a first purchase: messages and coupons while there is no second one)"""
        return _journey_out(
            journeys.create_from_template(body["template"], body["coupon_template_id"])
        )


@blp.route("/journeys/<int:journey_id>")
class JourneyDetail(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, JourneySchema)
    def get(self, journey_id: int):
        """A journey with its enrolment and per-step counts"""
        return _journey_out(journeys.get_journey(journey_id))

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(JourneyPatchSchema())
    @blp.response(200, JourneySchema)
    def patch(self, body: dict, journey_id: int):
        """Pause or resume (a paused journey enrols nobody and runs no step)"""
        return _journey_out(journeys.set_active(journey_id, body["active"]))
