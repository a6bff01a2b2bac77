"""Console pages. Each reads through the authorization layer (app.operators.authz) and calls
the same services as the admin API: no rule lives here."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlparse

from flask import (
    Blueprint,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import refresh
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

import app.console.dashboard as kpi
from app.clerks import auth as clerk_auth
from app.clerks.attribution import clerk_qr_payload
from app.clerks.models import ClerkNote
from app.common.clock import utcnow
from app.console.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    check_login_csrf,
    cookie_options,
    new_login_csrf,
    operator_required,
)
from app.console.locale import LANG_COOKIE
from app.coupons import services as coupons
from app.coupons.models import CouponTemplate
from app.coupons.queries import member_coupons
from app.errors import DomainError, ValidationFailed
from app.extensions import db
from app.intel.campaigns import campaigns_issuing
from app.intel.campaigns import counts as campaign_counts
from app.intel.models import STAGES
from app.intel.services import member_stats, rfm_of
from app.members.models import MemberMerge
from app.members.search import search_members
from app.members.services import resolve_member
from app.operators import authz
from app.operators.audit import client_ip, record_login
from app.operators.models import WriteAudit
from app.operators.scoped import scoped_clerk, scoped_member, scoped_store, scoped_terminal
from app.operators.services import login as operator_login
from app.operators.services import logout as operator_logout
from app.ops.services import snapshot
from app.points.adjustments import adjust_points
from app.points.models import Purchase
from app.points.services import balance_of
from app.points.statements import ledger_page
from app.pos.terminals import revoke_store_terminals, revoke_terminal, rotate_terminal
from app.stores import services as stores
from app.stores.models import Clerk, Store, Terminal
from app.tags import catalog
from app.tags import rules as tag_rules
from app.tags.models import MemberTagEvent, Tag, TagGroup, TagRule
from app.tags.services import member_tags
from app.tiers.services import ladder_view, tier_view

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

ROLE_NAMES = {
    "hq_admin": _l("HQ admin"),
    "hq_analyst": _l("HQ analyst"),
    "region_manager": _l("Region manager"),
    "store_manager": _l("Store manager"),
}


@bp.app_template_global()
def role_name(role: str) -> str:
    return str(ROLE_NAMES.get(role, role))


@bp.app_template_global()
def shown_phone(phone: str | None) -> str:
    return authz.shown_phone(phone) or "—"


@bp.app_template_filter("yuan")
def yuan(fen: int | None) -> str:
    return "—" if fen is None else f"¥{fen / 100:,.2f}"


@bp.app_template_filter("when")
def when(value: Any) -> str:
    if value is None:
        return "—"
    from flask_babel import format_datetime

    return format_datetime(value, "yyyy-MM-dd HH:mm")


@bp.context_processor
def _context() -> dict[str, Any]:
    principal = authz.current_or_none()
    return {
        "principal": principal,
        "operator": g.get("operator"),
        "csrf_token": getattr(g.get("console_session"), "csrf_token", ""),
        "lang": "en"
        if str(request.cookies.get(LANG_COOKIE, request.args.get("lang", "zh"))) == "en"
        else "zh",
    }


@bp.before_request
def _fresh_request() -> None:
    refresh()  # the locale is cached per app context, which may outlive one request
    g.pop("operator", None)  # so may ``g``: a request starts with no operator
    g.pop("console_session", None)


@bp.errorhandler(DomainError)
def _refused(error: DomainError):
    db.session.rollback()
    if request.method == "POST":
        flash(f"{error.message} ({error.code})", "error")
        return redirect(_back())
    return render_template("console/error.html", error=error), error.status


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    return render_template("console/error.html", error=error), error.code or 500


def _back(default: str = "console.dashboard") -> str:
    target = request.form.get("next") or request.referrer or ""
    parsed = urlparse(target)
    if parsed.path.startswith("/console") and (not parsed.netloc or parsed.netloc == request.host):
        return parsed.path + (f"?{parsed.query}" if parsed.query else "")
    return url_for(default)


def _scoped_stores() -> list[Store]:
    return list(
        db.session.scalars(select(Store).where(authz.store_clause(Store.id)).order_by(Store.code))
    )


# --- login ----------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    status = 200
    if request.method == "POST":
        check_login_csrf()
        username = request.form.get("username", "")
        try:
            session = operator_login(username, request.form.get("password", ""), client_ip())
        except DomainError as exc:
            db.session.rollback()
            record_login(username, status=exc.status, outcome=exc.code or "REFUSED")
            error, status = exc, exc.status
        else:
            record_login(username, status=302, outcome="ok", role=session.operator.role)
            target = request.args.get("next") or ""
            if not target.startswith("/console") or target.startswith("//"):
                target = url_for("console.dashboard")
            response = make_response(redirect(target))
            response.set_cookie(SESSION_COOKIE, session.token, **cookie_options())
            response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
            return response
    token = new_login_csrf()
    response = make_response(
        render_template("console/login.html", error=error, login_csrf=token), status
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, token, **cookie_options())
    return response


@bp.route("/logout", methods=["POST"])
@operator_required
def logout():
    operator_logout(request.cookies.get(SESSION_COOKIE))
    response = make_response(redirect(url_for("console.login")))
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@bp.route("/lang/<string:lang>")
def set_language(lang: str):
    response = make_response(redirect(_back()))
    response.set_cookie(
        LANG_COOKIE,
        "en" if lang == "en" else "zh",
        path="/console",
        samesite="Lax",
        max_age=365 * 86400,
    )
    return response


# --- dashboard ------------------------------------------------------------------------------


def _day(name: str, default: date) -> date:
    raw = request.args.get(name)
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationFailed(f"{name} is a date like 2026-01-31") from exc


@bp.route("/")
@operator_required
def dashboard():
    today = utcnow().date()
    end = _day("to", today)
    start = _day("from", end - timedelta(days=29))
    if start > end or (end - start).days > 366:
        raise ValidationFailed(_("The period must run forwards and last at most a year."))
    store_code = request.args.get("store") or ""
    principal = authz.current()
    if store_code:
        store_ids: list[int] | None = [scoped_store(store_code).id]
    else:
        store_ids = None if principal.hq else sorted(principal.store_ids or ())
    days = kpi.kpi_days(start, end, store_ids)
    return render_template(
        "console/dashboard.html",
        start=start,
        end=end,
        store_code=store_code,
        stores=_scoped_stores(),
        days=days,
        charts=kpi.charts(days) if days else [],
        totals=kpi.totals(days) if days else None,
    )


# --- members --------------------------------------------------------------------------------

SEARCH_FIELDS = (
    "phone_contains",
    "tag_id",
    "tier",
    "lifecycle",
    "store",
    "joined_from",
    "joined_to",
)


@bp.route("/members")
@operator_required
def members():
    criteria = {
        k: request.args[k].strip() for k in SEARCH_FIELDS if request.args.get(k, "").strip()
    }
    items, cursor = search_members(criteria, limit=20, cursor=request.args.get("cursor") or None)
    groups = catalog.active_catalog()
    return render_template(
        "console/members.html",
        items=items,
        next_cursor=cursor,
        criteria=criteria,
        stores=_scoped_stores(),
        groups=groups,
        tiers=ladder_view()["tiers"],
        stages=STAGES,
        balance_of=balance_of,
    )


@bp.route("/members/<int:member_id>")
@operator_required
def member(member_id: int):
    found = scoped_member(member_id)
    live = resolve_member(found.id)
    if live.id != found.id:
        return redirect(url_for("console.member", member_id=live.id))
    ledger, _cursor = ledger_page(live.id, limit=20, cursor=None)
    coupon_items, _c = member_coupons(live.id, state=None, limit=20, cursor=None)
    purchases = db.session.scalars(
        select(Purchase).where(Purchase.member_id == live.id).order_by(Purchase.id.desc()).limit(20)
    ).all()
    notes = db.session.scalars(
        select(ClerkNote)
        .where(ClerkNote.member_id == live.id)
        .order_by(ClerkNote.id.desc())
        .limit(20)
    ).all()
    history = db.session.scalars(
        select(MemberTagEvent)
        .where(MemberTagEvent.member_id == live.id)
        .order_by(MemberTagEvent.id.desc())
        .limit(20)
    ).all()
    merges = db.session.scalars(
        select(MemberMerge).where(MemberMerge.survivor_id == live.id).order_by(MemberMerge.id)
    ).all()
    stats = member_stats(live.id)
    return render_template(
        "console/member.html",
        member=live,
        tier=tier_view(live.id),
        lifecycle=stats.lifecycle if stats is not None else "new",
        rfm=rfm_of(stats),
        stats=stats,
        balance=balance_of(live.id),
        tags=member_tags(live.id),
        history=history,
        ledger=ledger,
        coupons=coupon_items,
        purchases=purchases,
        notes=notes,
        merges=merges,
        store_names={s.id: s.name for s in db.session.scalars(select(Store))},
        tag_names={
            t.id: f"{t.group.name} · {t.name}"
            for t in db.session.scalars(select(Tag).where(Tag.id.in_({e.tag_id for e in history})))
        },
        adjust_key=uuid.uuid4().hex,
    )


@bp.route("/members/<int:member_id>/points", methods=["POST"])
@operator_required
def adjust(member_id: int):
    scoped_member(member_id, write=True)
    try:
        points = int(request.form.get("points", ""))
    except ValueError as exc:
        raise ValidationFailed(_("Points must be a whole number.")) from exc
    adjust_points(
        member_id,
        points,
        reason=request.form.get("reason", "").strip(),
        actor=authz.current().actor[:64],
        idempotency_key=f"console:{request.form.get('key', '')[:64]}",
    )
    flash(_("Points adjusted by %(points)s.", points=points), "ok")
    return redirect(url_for("console.member", member_id=member_id))


# --- stores, terminals, clerks --------------------------------------------------------------


@bp.route("/stores", methods=["GET", "POST"])
@operator_required
def stores_page():
    if request.method == "POST":
        authz.check_hq_admin()
        action = request.form.get("action")
        code = request.form.get("code", "").strip()
        if action == "create":
            stores.create_store(
                code,
                request.form.get("name", "").strip(),
                request.form.get("city", "").strip() or None,
            )
            flash(_("Store %(code)s created.", code=code), "ok")
        elif action == "rename":
            stores.update_store(code, {"name": request.form.get("name", "").strip()})
            flash(_("Store %(code)s renamed.", code=code), "ok")
        elif action == "disable":
            revoke_store_terminals(stores.get_store_by_code(code).id)
            stores.set_store_status(code, "disabled")
            flash(_("Store %(code)s disabled; its terminals are revoked.", code=code), "ok")
        elif action == "enable":
            stores.set_store_status(code, "active")
            flash(_("Store %(code)s enabled.", code=code), "ok")
        return redirect(url_for("console.stores_page"))
    return render_template("console/stores.html", stores=_scoped_stores())


@bp.route("/terminals", methods=["GET", "POST"])
@operator_required
def terminals_page():
    shown_code = None
    if request.method == "POST":
        action = request.form.get("action")
        if action == "create":
            store = scoped_store(request.form.get("store", ""), write=True)
            terminal, shown_code = stores.create_terminal(store.code, request.form.get("name", ""))
            flash(_("Terminal %(id)s registered.", id=terminal.terminal_id), "ok")
        else:
            terminal_id = request.form.get("terminal_id", "")
            scoped_terminal(terminal_id, write=True)
            if action == "rotate":
                _t, shown_code, _exp = rotate_terminal(terminal_id)
                flash(_("Terminal %(id)s rotated: activate it again.", id=terminal_id), "ok")
            elif action == "revoke":
                revoke_terminal(terminal_id)
                flash(_("Terminal %(id)s revoked.", id=terminal_id), "ok")
    store_code = request.args.get("store") or ""
    stmt = select(Terminal).where(authz.store_clause(Terminal.store_id))
    if store_code:
        stmt = stmt.where(Terminal.store_id == scoped_store(store_code).id)
    items = db.session.scalars(stmt.order_by(Terminal.id)).all()
    return render_template(
        "console/terminals.html",
        items=items,
        stores=_scoped_stores(),
        store_code=store_code,
        activation_code=shown_code,
    )


@bp.route("/clerks", methods=["GET", "POST"])
@operator_required
def clerks_page():
    qr = None
    if request.method == "POST":
        action = request.form.get("action")
        if action == "create":
            store = scoped_store(request.form.get("store", ""), write=True)
            clerk = stores.create_clerk(
                store.code,
                request.form.get("username", "").strip(),
                request.form.get("password", ""),
                request.form.get("name", "").strip(),
            )
            flash(_("Clerk %(name)s created.", name=clerk.username), "ok")
        else:
            clerk_id = int(request.form.get("clerk_id", "0") or 0)
            scoped_clerk(clerk_id, write=True)
            if action == "disable":
                stores.set_clerk_status(clerk_id, "disabled")
                flash(_("Clerk disabled: their sessions have ended."), "ok")
            elif action == "enable":
                stores.set_clerk_status(clerk_id, "active")
                flash(_("Clerk enabled."), "ok")
            elif action == "unlock":
                clerk_auth.unlock_clerk(clerk_id)
                flash(_("Clerk unlocked."), "ok")
        return redirect(url_for("console.clerks_page", **request.args))
    if request.args.get("qr"):
        clerk = scoped_clerk(int(request.args["qr"]))
        qr = (clerk, clerk_qr_payload(clerk.id))
    store_code = request.args.get("store") or ""
    stmt = select(Clerk).where(authz.store_clause(Clerk.store_id))
    if store_code:
        stmt = stmt.where(Clerk.store_id == scoped_store(store_code).id)
    items = db.session.scalars(stmt.order_by(Clerk.id)).all()
    return render_template(
        "console/clerks.html",
        items=items,
        stores=_scoped_stores(),
        store_code=store_code,
        qr=qr,
        qr_svg=_qr_svg(qr[1]) if qr else None,
        now=utcnow(),
    )


def _qr_svg(payload: str) -> str:
    import segno
    from markupsafe import Markup

    return Markup(segno.make(payload, error="m").svg_inline(scale=4))  # noqa: S704  (our SVG)


# --- HQ pages: tag catalog, coupon templates, ops ------------------------------------------


@bp.route("/tags", methods=["GET", "POST"])
@operator_required
def tags_page():
    authz.check_hq()
    if request.method == "POST":
        action = request.form.get("action")
        name = request.form.get("name", "").strip()
        if action == "create":
            tags = [t.strip() for t in request.form.get("tags", "").replace("，", ",").split(",")]
            catalog.create_group(
                name,
                exclusive=bool(request.form.get("exclusive")),
                tag_names=[t for t in tags if t],
            )
            flash(_("Tag group %(name)s created.", name=name), "ok")
        elif action == "rename":
            catalog.rename_group(int(request.form["group_id"]), name)
            flash(_("Tag group renamed."), "ok")
        elif action == "add_tag":
            catalog.add_tag(int(request.form["group_id"]), name)
            flash(_("Tag %(name)s added.", name=name), "ok")
        elif action == "archive":
            catalog.archive_group(int(request.form["group_id"]))
            flash(_("Tag group archived."), "ok")
        elif action == "add_rule":
            skus = request.form.get("skus", "").replace("，", ",").split(",")
            tag_rules.create_rule(int(request.form.get("tag_id") or 0), skus)
            flash(_("SKU rule added."), "ok")
        elif action == "archive_rule":
            tag_rules.archive_rule(int(request.form.get("rule_id") or 0))
            flash(_("SKU rule archived."), "ok")
        return redirect(url_for("console.tags_page"))
    groups = db.session.scalars(
        select(TagGroup).where(TagGroup.archived_at.is_(None)).order_by(TagGroup.position)
    ).all()
    rules = db.session.scalars(
        select(TagRule).where(TagRule.archived_at.is_(None)).order_by(TagRule.id)
    ).all()
    tag_names = {t.id: f"{g.name} · {t.name}" for g in groups for t in g.tags}
    return render_template("console/tags.html", groups=groups, rules=rules, tag_names=tag_names)


def _optional_int(name: str, scale: int = 1) -> int | None:
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    try:
        return round(float(raw) * scale)
    except ValueError as exc:
        raise ValidationFailed(_("%(field)s must be a number.", field=name)) from exc


@bp.route("/coupons", methods=["GET", "POST"])
@operator_required
def coupons_page():
    authz.check_hq()
    results = None
    if request.method == "POST":
        action = request.form.get("action")
        if action == "create":
            kind = request.form.get("kind", "cash_off")
            fields = {
                "name": request.form.get("name", "").strip(),
                "kind": kind,
                "value_fen": _optional_int("value_yuan", 100) if kind == "cash_off" else None,
                "threshold_fen": _optional_int("threshold_yuan", 100),
                "percent_off": _optional_int("percent_off") if kind == "discount" else None,
                "gift_sku": (request.form.get("gift_sku") or None) if kind == "gift" else None,
                "valid_days": _optional_int("valid_days"),
                "giftable": bool(request.form.get("giftable")),
                "points_price": _optional_int("points_price"),
                "total_stock": _optional_int("total_stock"),
            }
            from app.coupons.schemas import TemplateInSchema

            errors = TemplateInSchema().validate({k: v for k, v in fields.items() if v is not None})
            if errors:
                raise ValidationFailed(
                    _("Check these fields: %(fields)s", fields=", ".join(sorted(errors))),
                    details=errors,
                )
            template = coupons.create_template(fields, created_by=authz.current().actor[:64])
            flash(_("Template %(name)s created.", name=template.name), "ok")
        elif action == "issue":
            raw = request.form.get("member_ids", "").replace("，", ",").replace(" ", ",")
            try:
                ids = [int(x) for x in raw.split(",") if x.strip()]
            except ValueError as exc:
                raise ValidationFailed(_("Member ids are whole numbers.")) from exc
            if not ids or len(ids) > 1000:
                raise ValidationFailed(_("Give 1 to 1000 member ids."))
            results = coupons.issue_batch(
                int(request.form["template_id"]), ids, admin_name=authz.current().actor
            )
            issued = sum(1 for r in results if r.coupon is not None)
            flash(_("%(issued)s of %(asked)s coupons issued.", issued=issued, asked=len(ids)), "ok")
        elif action in ("pause", "resume"):
            coupons.set_status(
                int(request.form["template_id"]), "paused" if action == "pause" else "active"
            )
            flash(_("Template updated."), "ok")
        if results is None:
            return redirect(url_for("console.coupons_page"))
    templates = db.session.scalars(select(CouponTemplate).order_by(CouponTemplate.id.desc())).all()
    report, report_campaigns = None, []
    if request.args.get("report"):
        report = coupons.template_report(int(request.args["report"]))
        report_campaigns = campaigns_issuing(int(request.args["report"]))
    return render_template(
        "console/coupons.html",
        templates=templates,
        results=results,
        report=report,
        report_campaigns=report_campaigns,
        campaign_counts=campaign_counts,
    )


@bp.route("/ops")
@operator_required
def ops_page():
    authz.check_hq()
    audit = db.session.scalars(select(WriteAudit).order_by(WriteAudit.id.desc()).limit(50)).all()
    return render_template("console/ops.html", ops=snapshot(), audit=audit)
