"""HQ endpoints for coupon templates, issuance, single coupons and campaign reports."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.admin.auth import ADMIN_SECURITY, admin_required
from app.common.pagination import PageQuerySchema, paginate
from app.coupons import services
from app.coupons.errors import describe_codes
from app.coupons.models import Coupon, CouponTemplate
from app.coupons.queries import expiring_within_stmt
from app.coupons.schemas import (
    CouponDetailSchema,
    CouponListSchema,
    CouponSchema,
    ExpiringQuerySchema,
    IssuedSchema,
    IssueInSchema,
    ReportSchema,
    TemplateInSchema,
    TemplateListSchema,
    TemplateSchema,
    TemplateUpdateSchema,
    VoidInSchema,
)

blp = Blueprint(
    "admin_coupons",
    __name__,
    url_prefix="/admin/v1",
    description="HQ: coupon templates, issuing coupons to members, voiding, reports.\n\n"
    "Error codes:\n"
    + describe_codes(
        "TEMPLATE_NOT_FOUND",
        "TEMPLATE_PAUSED",
        "TEMPLATE_ENDED",
        "TEMPLATE_TERMS_LOCKED",
        "OUT_OF_STOCK",
        "COUPON_LIMIT_REACHED",
        "COUPON_NOT_FOUND",
        "COUPON_ALREADY_USED",
        "COUPON_EXPIRED",
        "COUPON_NOT_AVAILABLE",
    )
    + "\n- `MEMBER_NOT_FOUND`, `STORE_NOT_FOUND`: an id or code given does not exist",
)


@blp.route("/coupon-templates")
class Templates(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(TemplateInSchema())
    @blp.response(201, TemplateSchema)
    def post(self, body: dict):
        """Create a coupon template (cash_off, discount or gift)"""
        return services.create_template(body, created_by=g.admin_name)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(PageQuerySchema(), location="query")
    @blp.response(200, TemplateListSchema)
    def get(self, query: dict):
        """List coupon templates, newest first"""
        items, cursor = paginate(
            select(CouponTemplate), CouponTemplate.id, limit=query["limit"], cursor=query["cursor"]
        )
        return {"items": items, "next_cursor": cursor}


@blp.route("/coupon-templates/<int:template_id>")
class Template(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, TemplateSchema)
    def get(self, template_id: int):
        """One coupon template"""
        return services.get_template(template_id)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(TemplateUpdateSchema(partial=True))
    @blp.response(200, TemplateSchema)
    def patch(self, body: dict, template_id: int):
        """Edit a template. Once coupons are issued, only name, total_stock (not below what is
        issued), per_member_limit, points_price and welcome may change; other fields answer 409
        TEMPLATE_TERMS_LOCKED (create a new template: a new version). Pause it to disable it."""
        return services.update_template(template_id, body)


@blp.route("/coupon-templates/<int:template_id>/pause")
class PauseTemplate(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, TemplateSchema)
    def post(self, template_id: int):
        """Pause a template: no more issuing or exchanging (issued coupons stay usable)"""
        return services.set_status(template_id, "paused")


@blp.route("/coupon-templates/<int:template_id>/resume")
class ResumeTemplate(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, TemplateSchema)
    def post(self, template_id: int):
        """Resume a paused template"""
        return services.set_status(template_id, "active")


@blp.route("/coupon-templates/<int:template_id>/issue")
class Issue(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(IssueInSchema())
    @blp.response(201, IssuedSchema)
    def post(self, body: dict, template_id: int):
        """Issue one coupon to each listed member; unknown ids and members at the limit are
        skipped, and `results` says what happened to each id, in request order"""
        results = services.issue_batch(template_id, body["member_ids"], admin_name=g.admin_name)
        return {
            "items": [r.coupon for r in results if r.coupon is not None],
            "skipped": [{"member_id": r.member_id, "code": r.code} for r in results if r.code],
            "results": results,
        }


@blp.route("/coupon-templates/<int:template_id>/report")
class Report(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, ReportSchema)
    def get(self, template_id: int):
        """Campaign report: issued, gifted, claimed, redeemed, expired, online/offline by store"""
        return services.template_report(template_id)


@blp.route("/coupons/expiring")
class Expiring(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(ExpiringQuerySchema(), location="query")
    @blp.response(200, CouponListSchema)
    def get(self, query: dict):
        """Reminder list: available coupons expiring within N days (opted-out members left out)"""
        items, cursor = paginate(
            expiring_within_stmt(query["within_days"]),
            Coupon.id,
            limit=query["limit"],
            cursor=query["cursor"],
            newest_first=False,
        )
        return {"items": items, "next_cursor": cursor}


@blp.route("/coupons/<string:code>")
class CouponDetail(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, CouponDetailSchema)
    def get(self, code: str):
        """One coupon with its full history (who did what, when, where)"""
        return services.get_coupon(code)


@blp.route("/coupons/<string:code>/void")
class VoidCoupon(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(VoidInSchema())
    @blp.response(200, CouponSchema)
    def post(self, body: dict, code: str):
        """Void an unused coupon (a pending gift of it is cancelled)"""
        return services.void_coupon(code, admin_name=g.admin_name, reason=body["reason"])
