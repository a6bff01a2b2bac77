"""HQ reports: the daily KPIs."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import or_, select

from app.admin.auth import ADMIN_SECURITY, admin_required
from app.errors import ValidationFailed
from app.extensions import db
from app.reports import services
from app.reports.schemas import KpiQuerySchema, KpiSchema

blp = Blueprint(
    "admin_reports",
    __name__,
    url_prefix="/admin/v1/reports",
    description="HQ: KPIs per day, store and clerk. "
    + (services.__doc__ or "")
    + " Errors: INVALID_RANGE, UNKNOWN_STORE, VALIDATION_ERROR (422).",
)


def _store_ids(raw: str | None) -> list[int]:
    from app.stores.models import Store

    if not raw:
        return []
    wanted = [p.strip() for p in raw.split(",") if p.strip()]
    ids = [int(p) for p in wanted if p.isdigit()]
    found = db.session.execute(
        select(Store.id, Store.code).where(or_(Store.id.in_(ids), Store.code.in_(wanted)))
    ).all()
    known = {str(i) for i, _ in found} | {c for _, c in found}
    missing = [p for p in wanted if p not in known]
    if missing:
        raise ValidationFailed(
            "unknown store", code="UNKNOWN_STORE", details={"store": [", ".join(missing)[:200]]}
        )
    return sorted({i for i, _ in found})


@blp.route("/kpis")
class Kpis(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(KpiQuerySchema(), location="query")
    @blp.response(200, KpiSchema)
    def get(self, query: dict):
        """Daily KPIs (read from rollups kept every minute), with per-store and per-clerk tables"""
        return services.kpis(query["from_"], query["to"], _store_ids(query["store"]))
