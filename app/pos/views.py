"""Admin endpoints for terminal secrets (revoke, rotate) and the ``flask pos`` commands."""

from __future__ import annotations

import click
import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from app.admin.auth import ADMIN_SECURITY, scoped_admin_required
from app.operators.scoped import scoped_terminal, store_listing
from app.pos import terminals
from app.stores.models import Terminal
from app.stores.schemas import (
    StoreFilterQuerySchema,
    TerminalListSchema,
    TerminalSchema,
    TerminalUpdateSchema,
)
from app.stores.services import rename_terminal

blp = Blueprint(
    "admin_terminals",
    __name__,
    url_prefix="/admin/v1/terminals",
    description="HQ: POS terminals: list, read, rename, and their secrets (revoke, rotate). "
    "Codes: 404 TERMINAL_NOT_FOUND (also outside the token's store scope); 401 TERMINAL_REVOKED "
    "(a revoked terminal cannot be rotated); 403 ROLE_NOT_ALLOWED.",
    cli_group="pos",
)


class TerminalStateSchema(ma.Schema):
    terminal_id = ma.fields.String()
    store = ma.fields.String(metadata={"description": "store code"})
    status = ma.fields.String(metadata={"description": "pending | active | revoked"})


class TerminalRotatedSchema(TerminalStateSchema):
    activation_code = ma.fields.String(
        metadata={"description": "single use, 24 h; the till activates again with it"}
    )
    activation_expires_at = ma.fields.AwareDateTime()


@blp.route("")
class TerminalList(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(StoreFilterQuerySchema(), location="query")
    @blp.response(200, TerminalListSchema)
    def get(self, query: dict):
        """Every terminal in the token's scope (filter by store code and status)"""
        return store_listing(Terminal, query)


@blp.route("/<string:terminal_id>")
class TerminalDetail(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, TerminalSchema)
    def get(self, terminal_id: str):
        """One terminal (never its secret)"""
        return scoped_terminal(terminal_id)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(TerminalUpdateSchema())
    @blp.response(200, TerminalSchema)
    def patch(self, body: dict, terminal_id: str):
        """Rename a terminal"""
        scoped_terminal(terminal_id, write=True)
        return rename_terminal(terminal_id, body["name"])


@blp.route("/<string:terminal_id>/revoke")
class Revoke(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, TerminalStateSchema)
    def post(self, terminal_id: str):
        """Revoke a terminal for good (its disable): signed requests get TERMINAL_REVOKED"""
        scoped_terminal(terminal_id, write=True)
        terminal = terminals.revoke_terminal(terminal_id)
        return {"terminal_id": terminal_id, "store": terminal.store.code, "status": terminal.status}


@blp.route("/<string:terminal_id>/rotate")
class Rotate(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, TerminalRotatedSchema)
    def post(self, terminal_id: str):
        """Rotate a terminal's secret: the old one stops now; activate again with the new code"""
        scoped_terminal(terminal_id, write=True)
        terminal, code, expires_at = terminals.rotate_terminal(terminal_id)
        return {
            "terminal_id": terminal.terminal_id,
            "store": terminal.store.code,
            "status": terminal.status,
            "activation_code": code,
            "activation_expires_at": expires_at,
        }


@blp.cli.command("expire-holds")
def expire_holds() -> None:
    """Release POS redemption holds not captured within 30 minutes (run every minute)."""
    from app.pos.jobs import expire_redemptions

    click.echo(f"expired {expire_redemptions()['expired']} redemption hold(s)")
