"""Why a coupon action was refused: one stable code per reason (documented in the blueprints)."""

from __future__ import annotations

from app.errors import Conflict, Forbidden, NotFound, ValidationFailed

ERROR_CODES = {
    "TEMPLATE_NOT_FOUND": "no such coupon template",
    "TEMPLATE_PAUSED": "the template is paused: no coupons are issued from it",
    "TEMPLATE_ENDED": "the template's fixed validity window is over",
    "TEMPLATE_TERMS_LOCKED": "coupons were issued: what they give, where and how long is fixed "
    "(create a new template instead)",
    "TEMPLATE_NOT_EXCHANGEABLE": "the template has no points price",
    "OUT_OF_STOCK": "the template's total stock is used up",
    "COUPON_LIMIT_REACHED": "the member already holds the per-member limit of this template",
    "COUPON_NOT_FOUND": "no coupon with this code",
    "COUPON_NOT_YOURS": "the coupon belongs to another member",
    "COUPON_EXPIRED": "the coupon is past its validity",
    "COUPON_NOT_YET_VALID": "the coupon's validity window has not started",
    "COUPON_ALREADY_USED": "the coupon was redeemed already",
    "COUPON_NOT_AVAILABLE": "the coupon is in a pending gift, held by a till, or void",
    "COUPON_WRONG_STORE": "the coupon cannot be used in this store",
    "COUPON_BELOW_THRESHOLD": "the order total is below the coupon's threshold",
    "COUPON_NOT_GIFTABLE": "the template does not allow gifting",
    "COUPON_REGIFT_NOT_ALLOWED": "a coupon received as a gift cannot be gifted again",
    "GIFT_NOT_FOUND": "no gift with this token",
    "GIFT_ALREADY_CLAIMED": "another member claimed the gift first",
    "GIFT_CANCELLED": "the giver cancelled the gift",
    "GIFT_EXPIRED": "the gift link expired; the coupon went back to the giver",
    "GIFT_OWN_CLAIM": "you cannot claim your own gift",
    "GIFT_NOT_YOURS": "only the giver can cancel a gift",
    "REDEMPTION_ID_REUSED": "the redemption id was used for other coupons or another member",
    "REDEMPTION_RELEASED": "the redemption was released; it cannot be captured",
    "REDEMPTION_CAPTURED": "the redemption was captured by a sale; it cannot be released",
    "INSUFFICIENT_POINTS": "not enough points for the exchange",
    "EXCHANGE_REQUEST_REUSED": "the request_id was used for an exchange of another template",
}


def describe_codes(*codes: str) -> str:
    """A markdown list of error codes, for blueprint descriptions."""
    return "\n".join(f"- `{code}`: {ERROR_CODES[code]}" for code in codes)


def template_not_found(template_id: int) -> NotFound:
    return NotFound(f"coupon template {template_id} not found", code="TEMPLATE_NOT_FOUND")


def coupon_not_found() -> NotFound:
    return NotFound("coupon not found", code="COUPON_NOT_FOUND")


def gift_not_found() -> NotFound:
    return NotFound("gift not found", code="GIFT_NOT_FOUND")


def refused(code: str, **details: object) -> Conflict:
    """A 409 refusal with a stable code; the message is the code's description."""
    return Conflict(ERROR_CODES[code], code=code, details=dict(details))


def not_yours(code: str = "COUPON_NOT_YOURS") -> Forbidden:
    return Forbidden(ERROR_CODES[code], code=code)


def invalid(message: str, **fields: list[str]) -> ValidationFailed:
    return ValidationFailed(message, code="VALIDATION_ERROR", details=fields)
