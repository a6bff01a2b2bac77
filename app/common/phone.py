"""Mainland China mobile numbers: one normal form, and masking wherever people or logs see them."""

from __future__ import annotations

import logging
import re

from app.errors import ValidationFailed

_PHONE_RE = re.compile(r"^(?:\+?86)?(1[3-9]\d{9})$")
_PHONE_IN_TEXT = re.compile(r"(?<!\d)(?:\+?86)?(1[3-9]\d)(\d{4})(\d{4})(?!\d)")


def normalize_phone(raw: str | None) -> str:
    """``13812345678`` or ``+8613812345678`` → ``13812345678``; anything else is refused."""
    if not isinstance(raw, str):
        raise ValidationFailed(
            "phone is required", code="INVALID_PHONE", details={"phone": ["required"]}
        )
    candidate = re.sub(r"[\s-]", "", raw)
    match = _PHONE_RE.match(candidate)
    if not match:
        raise ValidationFailed(
            "phone must be a mainland mobile number like 13812345678 or +8613812345678",
            code="INVALID_PHONE",
            details={"phone": ["not a mainland mobile number"]},
        )
    return match.group(1)


def is_valid_phone(raw: str) -> bool:
    return bool(_PHONE_RE.match(re.sub(r"[\s-]", "", raw or "")))


def mask_phone(phone: str | None) -> str | None:
    """``13812345678`` → ``138****5678``."""
    if not phone:
        return None
    return f"{phone[:3]}****{phone[-4:]}"


def mask_phones_in_text(text: str) -> str:
    return _PHONE_IN_TEXT.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)


class PhoneMaskingFilter(logging.Filter):
    """Masks mobile numbers in every log record that passes through a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        masked = mask_phones_in_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
