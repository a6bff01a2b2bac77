"""``/cards/wechat/events``: the card event push from WeChat (server URL of the account)."""

from __future__ import annotations

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from wechatpy import parse_message
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.utils import check_signature

from app.cards.events import card_event
from app.errors import Unauthorized
from app.platforms.settings import PlatformDisabled

blp = Blueprint(
    "cards",
    __name__,
    url_prefix="/cards",
    description=(
        "Member card events from WeChat: configure `<base>/cards/wechat/events` as the server "
        "URL with the Token in `WECHAT_SERVER_TOKEN` (plaintext or compatible mode). "
        "`user_del_card` stops syncing that card; `user_get_card` reopens a deleted one. "
        "Errors: `SIGNATURE_INVALID` (401), `PLATFORM_DISABLED` (503)."
    ),
)


def _verified() -> None:
    token = current_app.config.get("WECHAT_SERVER_TOKEN")
    if not token:
        raise PlatformDisabled(
            "WeChat server events are not configured", details={"missing": ["WECHAT_SERVER_TOKEN"]}
        )
    args = request.args
    try:
        check_signature(
            token, args.get("signature", ""), args.get("timestamp", ""), args.get("nonce", "")
        )
    except InvalidSignatureException:
        raise Unauthorized("WeChat event signature invalid", code="SIGNATURE_INVALID") from None


@blp.route("/wechat/events")
class WeChatCardEvents(MethodView):
    @blp.response(200, description="`echostr` (text/plain): the server URL check")
    def get(self):
        """WeChat's server URL check: answers `echostr` when the signature holds"""
        _verified()
        return Response(request.args.get("echostr", ""), content_type="text/plain")

    @blp.doc(requestBody={"content": {"text/xml": {"schema": {"type": "string"}}}})
    @blp.response(200, description="`success` (text/plain)")
    def post(self):
        """Card events (`user_del_card`, `user_get_card`); others are acknowledged and ignored"""
        _verified()
        try:
            message = parse_message(request.get_data())
        except Exception:  # noqa: BLE001 (wechatpy raises assorted errors on garbage)
            message = None
        event = getattr(message, "event", None)
        if event in ("user_del_card", "user_get_card"):
            card_event(event, message.card_id or "", message.code or "")
        return Response("success", content_type="text/plain")
