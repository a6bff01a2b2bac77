"""``/pos/v1``: the till protocol (pos_adapter/README.md). Parse, verify, call a service."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from app.common.throttle import Throttle, client_ip, credential_key, guard_failures
from app.errors import ITEMWISE_TEXT_ENDPOINTS
from app.pos import events as pos_events
from app.pos import identify, redemptions
from app.pos import terminals as pos_terminals
from app.pos.presence import PresenceRequired, member_present
from pos_adapter.auth import POS_SECURITY, signed_request
from pos_adapter.docs import DESCRIPTION, register_docs
from pos_adapter.schemas import (
    ActivatedSchema,
    ActivateInSchema,
    EventsInSchema,
    EventsOutSchema,
    IdentifiedSchema,
    IdentifyInSchema,
    RedemptionInSchema,
    RedemptionSchema,
    TicketsInSchema,
)
from pos_adapter.vendors import ADAPTERS
from pos_adapter.vendors.convert import tickets_to_events

blp = Blueprint("pos", __name__, url_prefix="/pos/v1", description=DESCRIPTION)
# Activation codes cannot be guessed in bulk: failed activations per IP and per code.
ACTIVATIONS_PER_IP = Throttle(
    "pos-activate-ip",
    "10 per 10 minutes",
    "ACTIVATION_RATE_LIMITED",
    "too many failed activations from this address; try again later",
)
ACTIVATIONS_PER_CODE = Throttle(
    "pos-activate-code",
    "5 per 10 minutes",
    "ACTIVATION_RATE_LIMITED",
    "this activation code failed too often; try again later",
)
blp.record_once(register_docs)
# A batch validates text event by event: one bad event is rejected, its neighbours apply.
ITEMWISE_TEXT_ENDPOINTS.update({"pos.Events", "pos.VendorTickets"})


@blp.route("/activate")
class Activate(MethodView):
    @blp.arguments(ActivateInSchema())
    @blp.response(201, ActivatedSchema)
    def post(self, body: dict):
        """Activate a terminal with its single-use code; the secret is returned once"""
        code = body["activation_code"]
        activation = guard_failures(
            [(ACTIVATIONS_PER_IP, client_ip()), (ACTIVATIONS_PER_CODE, credential_key(code))],
            lambda: pos_terminals.activate_terminal(code),
        )
        return {
            "terminal_id": activation.terminal_id,
            "store": activation.store,
            "secret": activation.secret,
        }


@blp.route("/members/identify")
class Identify(MethodView):
    decorators = (signed_request,)

    @blp.doc(security=POS_SECURITY)
    @blp.arguments(IdentifyInSchema())
    @blp.response(200, IdentifiedSchema)
    def post(self, body: dict):
        """Identify a member by phone (register: true enrols an unknown phone) or member code"""
        return identify.identify_member(
            g.till,
            phone=body.get("phone"),
            member_code=body.get("member_code"),
            register=body["register"],
            consent=body["consent"],
        )


@blp.route("/events")
class Events(MethodView):
    decorators = (signed_request,)

    @blp.doc(security=POS_SECURITY)
    @blp.arguments(EventsInSchema())
    @blp.response(200, EventsOutSchema)
    def post(self, body: dict):
        """Upload up to 100 sale and return events; one result per event, in order"""
        return {"results": pos_events.ingest_events(g.till, body["events"])}


@blp.route("/redemptions")
class Redemptions(MethodView):
    decorators = (signed_request,)

    @blp.doc(security=POS_SECURITY)
    @blp.arguments(RedemptionInSchema())
    @blp.response(201, RedemptionSchema)
    def post(self, body: dict):
        """Hold points (and coupons) for a sale; the sale event with redemption_id captures them"""
        member_id = member_present(g.till.terminal_id, body["presence_token"])
        if body["member_id"] is not None and body["member_id"] != member_id:
            raise PresenceRequired("member_id is not the member of the presence_token")
        return redemptions.create_redemption(
            g.till,
            sale_id=body["sale_id"],
            member_id=member_id,
            points=body["points"],
            coupons=body["coupons"],
            total_fen=body["total_fen"],
        )


@blp.route("/redemptions/<string:redemption_id>")
class Redemption(MethodView):
    decorators = (signed_request,)

    @blp.doc(security=POS_SECURITY)
    @blp.response(200, RedemptionSchema)
    def delete(self, redemption_id: str):
        """Release a redemption's held points and coupons (the sale was cancelled)"""
        return redemptions.release_redemption(g.till, redemption_id)


@blp.route("/vendors/<string:vendor>/tickets")
class VendorTickets(MethodView):
    decorators = (signed_request,)

    @blp.doc(security=POS_SECURITY)
    @blp.arguments(TicketsInSchema())
    @blp.response(200, EventsOutSchema)
    def post(self, body: dict, vendor: str):
        """Upload up to 50 tickets in a vendor's own shape (vendor: pospal)"""
        return {"results": tickets_to_events(g.till, ADAPTERS, vendor, body["tickets"])}
