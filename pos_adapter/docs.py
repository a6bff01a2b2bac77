"""What ``/openapi.json`` says about the till protocol: signing, error codes, event shapes."""

from __future__ import annotations

from typing import Any

from apispec.exceptions import DuplicateComponentNameError

from app.pos.schemas import ReturnEventSchema, SaleEventSchema

DESCRIPTION = """The POS terminal protocol; integrator's guide:
pos_adapter/README.md.

**Activation**: `POST /pos/v1/activate {activation_code}` (from the admin API, single use,
24 h) → `{terminal_id, store, secret}`; the secret is shown once.

**Signing** (every other endpoint): headers `X-Terminal-Id`, `X-Timestamp` (unix seconds),
`X-Nonce` (8–64 of `[A-Za-z0-9_-]`, unique per request), `X-Signature` = lowercase hex
HMAC-SHA256(secret, `METHOD\\nPATH\\nQUERY\\nTIMESTAMP\\nNONCE\\nSHA256_HEX(BODY)`), QUERY being the
raw query string (empty if none) and BODY the exact bytes sent. Clock skew over 300 s or a
reused nonce is refused. A terminal acts only for its own store.

**401 codes**: `SIGNATURE_HEADERS_MISSING`, `SIGNATURE_HEADERS_INVALID`, `STALE_TIMESTAMP`,
`UNKNOWN_TERMINAL`, `TERMINAL_NOT_ACTIVE` (not yet activated, or its secret was rotated),
`TERMINAL_REVOKED`, `BAD_SIGNATURE`, `NONCE_REUSED`; activation: `ACTIVATION_CODE_INVALID`,
`ACTIVATION_CODE_EXPIRED` (failed activations are throttled per address and per code: 429
`ACTIVATION_RATE_LIMITED`).

**Identify**: by `member_code` (scanned from the member's app) the answer carries a
`presence_token` (this terminal, this member, 10 minutes) and the coupon codes; by `phone` it
carries neither: the sale can earn, nothing can be spent. Registering a phone needs
`consent: true` (422 `CONSENT_REQUIRED`): the till showed the brand's privacy notice.

**Events**: at most 100 per request (more, or not a list: 422 `VALIDATION_ERROR` for the whole
request). Each event is applied on its own and answered in order: `accepted`, `duplicate` (same
id, same content: no effect), `conflict` (same id, other content: `SALE_ID_CONFLICT` /
`RETURN_ID_CONFLICT`), `parked` (a return before its sale; applied when the sale arrives), or
`rejected` with `error.code` (`VALIDATION_ERROR`, `UNKNOWN_EVENT_TYPE`, `INVALID_PHONE`,
`MEMBER_CODE_INVALID`, `MEMBER_NOT_FOUND`, `REFUND_EXCEEDS_PAID`, `REDEMPTION_NOT_FOUND`,
`REDEMPTION_NOT_HELD`, `REDEMPTION_EXPIRED`, `REDEMPTION_SALE_MISMATCH`,
`REDEMPTION_MEMBER_MISMATCH`, `AMOUNT_TOO_LARGE` for amounts above `POS_MAX_SALE_FEN`, default
10,000,000 fen). `paid_fen ≤ total_fen`; times in 2000–2099; text with a NUL or a lone surrogate
rejects its event only. `sale_id` and `return_id` are unique per store for ever. A sale
earns `floor(paid_fen × POINTS_PER_YUAN / 100)` points for its member; `member` may be
`{member_id}` (from identify), `{phone}` (an unknown phone enrols), `{member_code}`, or a payer
identity `{wechat_openid}` / `{alipay_user_id}` from the till's payment result
(pay-as-membership: an unknown payer becomes a member; WeChat openids are taken under the
configured `WECHAT_APPID`). A return takes back what its refunded money earned and gives back
redeemed points in proportion to the refunded share of `paid_fen`.

**Redemptions**: points convert at `POINTS_REDEEM_FEN_PER_POINT` fen per point (default 1:
100 points = 1 yuan). `POST /pos/v1/redemptions` needs the `presence_token` of identify by
member code (403 `PRESENCE_REQUIRED` without a valid one) and holds them (409 `INSUFFICIENT_POINTS`,
`REDEMPTION_EXISTS`, `DISCOUNT_EXCEEDS_TOTAL`, and each coupon's reason: `COUPON_EXPIRED`,
`COUPON_NOT_YOURS`, `COUPON_WRONG_STORE`, `COUPON_BELOW_THRESHOLD`, `COUPON_ALREADY_USED`,
`COUPON_NOT_AVAILABLE`, `COUPON_NOT_FOUND`; 422 `NOTHING_TO_REDEEM`, `TOTAL_REQUIRED`); the
hold expires after 30 minutes unless a sale event names it in `redemption_id`; `DELETE`
releases it (409 `REDEMPTION_CAPTURED` after the sale; 404 `REDEMPTION_NOT_FOUND` for another
store's).

**Vendors**: `POST /pos/v1/vendors/pospal/tickets {tickets}` takes Pospal (银豹) tickets (see
the guide); 404 `UNKNOWN_VENDOR` for others.
"""


def register_docs(state: Any) -> None:
    """Called when the blueprint is registered: the signature scheme and the event schemas."""
    from app.extensions import api

    components = api.spec.components
    try:
        components.security_scheme(
            "posSignature",
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-Signature",
                "description": "HMAC-SHA256 request signature; also send X-Terminal-Id, "
                "X-Timestamp and X-Nonce (see the POS tag description)",
            },
        )
        components.schema("PosSaleEvent", schema=SaleEventSchema)
        components.schema("PosReturnEvent", schema=ReturnEventSchema)
    except DuplicateComponentNameError:
        pass
