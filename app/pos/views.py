"""Admin endpoints for terminal secrets (revoke, rotate) and the ``flask pos`` commands."""

from __future__ import annotations

import click
import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from app.admin.auth import ADMIN_SECURITY, admin_required
from app.pos import terminals

blp = Blueprint(
    "admin_terminals",
    __name__,
    url_prefix="/admin/v1/terminals",
    description="HQ: POS terminal secrets. Codes: 404 TERMINAL_NOT_FOUND; 401 TERMINAL_REVOKED "
    "(a revoked terminal cannot be rotated).",
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


@blp.route("/<string:terminal_id>/revoke")
class Revoke(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, TerminalStateSchema)
    def post(self, terminal_id: str):
        """Revoke a terminal for good: its signed requests are refused with TERMINAL_REVOKED"""
        terminal = terminals.revoke_terminal(terminal_id)
        return {"terminal_id": terminal_id, "store": terminal.store.code, "status": terminal.status}


@blp.route("/<string:terminal_id>/rotate")
class Rotate(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, TerminalRotatedSchema)
    def post(self, terminal_id: str):
        """Rotate a terminal's secret: the old one stops now; activate again with the new code"""
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
