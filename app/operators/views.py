"""HQ endpoint for the write audit: who changed what, when and from where."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.admin.auth import ADMIN_SECURITY, admin_required
from app.common.pagination import PageQuerySchema, paginate
from app.operators.models import WriteAudit

blp = Blueprint(
    "admin_audit",
    __name__,
    url_prefix="/admin/v1",
    description="HQ: the write audit. Every write through the admin API or the console, "
    "refused ones included. HQ roles only (403 ROLE_NOT_ALLOWED).",
)


class WriteAuditSchema(ma.Schema):
    id = ma.fields.Integer()
    at = ma.fields.AwareDateTime()
    actor = ma.fields.String(metadata={"description": "token:NAME or operator:USERNAME"})
    role = ma.fields.String()
    method = ma.fields.String()
    path = ma.fields.String()
    endpoint = ma.fields.String(allow_none=True)
    target = ma.fields.Dict(metadata={"description": "the ids named in the URL"})
    status = ma.fields.Integer(metadata={"description": "the HTTP status answered"})
    ip = ma.fields.String(allow_none=True)
    user_agent = ma.fields.String(allow_none=True)


class WriteAuditListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(WriteAuditSchema))
    next_cursor = ma.fields.String(allow_none=True)


class WriteAuditQuerySchema(PageQuerySchema):
    actor = ma.fields.String(load_default=None)


@blp.route("/audit-log")
class AuditLog(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(WriteAuditQuerySchema(), location="query")
    @blp.response(200, WriteAuditListSchema)
    def get(self, query: dict):
        """Writes, newest first (filter by actor)"""
        stmt = select(WriteAudit)
        if query["actor"]:
            stmt = stmt.where(WriteAudit.actor == query["actor"])
        items, cursor = paginate(stmt, WriteAudit.id, limit=query["limit"], cursor=query["cursor"])
        return {"items": items, "next_cursor": cursor}
