"""Payment notification endpoints: verify, store, answer exactly as each platform expects.

A verified notification is stored in the money journal and committed before it is answered:
``SUCCESS`` / 204 / ``success`` mean "verified and stored"; the engine then applies it exactly
once (in the same request in the embedded default, or by the ``flask engine apply`` worker).

A bad signature, a foreign appid/mch_id/app_id/seller_id or a stale timestamp is a 4xx with the
platform's failure body and no effect. A transient fault (database unreachable) is a 5xx so the
platform retries. The platform signature is the authentication: no header is required.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy.exc import SQLAlchemyError

from app.engine.services import receive
from app.payments import alipay, wechat_v2, wechat_v3
from app.payments.services import MoneyEventIn, NotifyRejected

log = logging.getLogger(__name__)

blp = Blueprint(
    "payments",
    __name__,
    url_prefix="/payments",
    description=(
        "Payment notifications from WeChat Pay (API v2 XML, API v3 JSON) and Alipay. A verified "
        "notification is answered once it is verified and stored; the engine then applies it "
        "exactly once: the payer becomes a member (pay-as-membership) and earns points on the "
        "money they paid themselves (v2 `cash_fee`, v3 `amount.payer_total`, Alipay "
        "`buyer_pay_amount`); a refund keeps `floor(E × (T − R) / T)` of the E points a "
        "purchase of order total T earned after refunds R, and a refund that arrives before its "
        "payment is held until the payment arrives. Rejections (4xx, platform failure body): "
        "`SIGNATURE_INVALID`, `UNKNOWN_SERIAL`, `STALE_TIMESTAMP`, `APPID_MISMATCH`, "
        "`MCH_ID_MISMATCH`, `SELLER_ID_MISMATCH`, `RESOURCE_INVALID`, `NOTIFY_INCOMPLETE`. "
        "`PLATFORM_DISABLED` (503) when the platform is not configured; 5xx on a transient "
        "fault, so the platform retries."
    ),
)


def _apply(event: MoneyEventIn | None) -> None:
    if event is not None:
        receive([event])


def _handle(
    work: Callable[[], None], ok: Callable[[], Response], fail: Callable[[int, str], Response]
) -> Response:
    try:
        work()
    except NotifyRejected as exc:
        log.warning("%s notification rejected: %s", request.path, exc.code)
        return fail(exc.status, exc.code)
    except SQLAlchemyError as exc:
        log.error(
            "%s notification not applied (will be retried): %s", request.path, type(exc).__name__
        )
        return fail(500, "RETRY_LATER")
    return ok()


def _xml(body: str, status: int = 200) -> Response:
    return Response(body, status=status, content_type="text/xml; charset=utf-8")


def _v2_fail(status: int, code: str) -> Response:
    return _xml(wechat_v2.fail_xml(code), status)


def _text(body: str, status: int = 200) -> Response:
    return Response(body, status=status, content_type="text/plain; charset=utf-8")


@blp.route("/wechat/notify")
class WeChatV2Notify(MethodView):
    @blp.doc(requestBody={"content": {"text/xml": {"schema": {"type": "string"}}}})
    @blp.response(200, description="`<xml>…SUCCESS…</xml>` (text/xml)")
    @blp.alt_response(400, description="`<xml>…FAIL…</xml>`: verification failed")
    def post(self):
        """WeChat Pay API v2 payment notification (MD5 or HMAC-SHA256)"""
        raw = request.get_data()
        return _handle(
            lambda: _apply(wechat_v2.payment_event(raw)),
            lambda: _xml(wechat_v2.SUCCESS_XML),
            _v2_fail,
        )


@blp.route("/wechat/refund-notify")
class WeChatV2RefundNotify(MethodView):
    @blp.doc(requestBody={"content": {"text/xml": {"schema": {"type": "string"}}}})
    @blp.response(200, description="`<xml>…SUCCESS…</xml>` (text/xml)")
    @blp.alt_response(400, description="`<xml>…FAIL…</xml>`: req_info not decryptable")
    def post(self):
        """WeChat Pay API v2 refund notification (encrypted `req_info`)"""
        raw = request.get_data()
        return _handle(
            lambda: _apply(wechat_v2.refund_event(raw)),
            lambda: _xml(wechat_v2.SUCCESS_XML),
            _v2_fail,
        )


@blp.route("/wechat/v3/notify")
class WeChatV3Notify(MethodView):
    @blp.doc(requestBody={"content": {"application/json": {"schema": {"type": "object"}}}})
    @blp.response(204, description="Applied (or already applied); no body")
    @blp.alt_response(401, description='`{"code": "FAIL", "message": "失败"}`')
    def post(self):
        """WeChat Pay API v3 notification: payment and refund events"""
        raw = request.get_data()
        return _handle(
            lambda: _apply(wechat_v3.events(request.headers, raw)),
            lambda: Response(status=204),
            lambda status, code: Response(
                json.dumps(wechat_v3.FAIL_BODY, ensure_ascii=False),
                status=status,
                content_type="application/json",
            ),
        )


@blp.route("/alipay/notify")
class AlipayNotify(MethodView):
    @blp.doc(
        requestBody={
            "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}
        }
    )
    @blp.response(200, description="`success` (text/plain)")
    @blp.alt_response(400, description="`fail` (text/plain)")
    def post(self):
        """Alipay async notification (RSA2): payments, partial refunds, closed trades"""
        form = request.form.to_dict(flat=True)

        return _handle(
            lambda: receive(alipay.events(form)),
            lambda: _text("success"),
            lambda status, code: _text("fail", status),
        )
