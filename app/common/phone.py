"""Mainland China mobile numbers: one normal form, and one mask wherever people or logs see them.

Parsing: the text is NFKC-normalised (full-width digits and signs become ASCII), format
characters (zero-width spaces, joiners, direction marks: Unicode category ``Cf``) are dropped,
and what is left may hold only ASCII digits, ``+``, spaces, dashes, dots and parentheses. Then
``phonenumbers`` (Google's libphonenumber metadata) decides: a valid mainland mobile number
(country code 86) is stored as its 11 ASCII digits; anything else is refused.

Masking (:func:`mask_phones_in_text`): a phone is found however it is written (spaces, dashes,
dots, ``+86``/``0086``, full-width or other Unicode digits, zero-width characters between the
digits) and its 4th to 7th digits become ``*``. Clerk-visible text and every log line (the
access log included) go through this one function.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from urllib.parse import unquote

import phonenumbers

from app.errors import ValidationFailed

_MOBILE = re.compile(r"1[3-9][0-9]{9}", re.ASCII)
_ALLOWED = re.compile(r"[0-9+\-. ()]+", re.ASCII)
_MOBILE_TYPES = (
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
)

# What may stand between the digits of a phone written in free text: white space, dashes,
# dots, parentheses, plus signs, slashes (and their full-width forms), and invisible format
# characters. At most five in a row.
_FORMAT_CHARS = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb"
)
_DASHES = (
    "\\-\u058a\u05be\u1400\u1806\u2010-\u2015\u2212\u2e17\u2e1a\u2e3a\u2e3b\u2e40"
    "\u301c\u3030\u30a0\ufe31\ufe32\ufe58\ufe63\uff0d"
)
_OTHER_SEPARATORS = ".\u00b7\u2022\u2024\u3002\uff0e()\uff08\uff09+\uff0b/\uff0f_"
_SEPARATOR = f"[\\s{_DASHES}{_FORMAT_CHARS}{_OTHER_SEPARATORS}]"
# Digits: every decimal digit (full-width, Arabic-Indic…) and the other digit characters
# that NFKC makes ASCII digits (superscripts, subscripts, circled digits).
_OTHER_DIGITS = "".join(
    chr(i) for i in range(0x10000) if chr(i).isdigit() and not chr(i).isdecimal()
)
_DIGIT = f"[\\d{_OTHER_DIGITS}]"
_DIGIT_RUN = re.compile(rf"{_DIGIT}(?:{_SEPARATOR}{{0,5}}{_DIGIT})+")
_INVALID = "phone must be a mainland mobile number like 13812345678 or +8613812345678"


def _invalid() -> ValidationFailed:
    return ValidationFailed(
        _INVALID, code="INVALID_PHONE", details={"phone": ["not a mainland mobile number"]}
    )


def clean_text(raw: str) -> str:
    """NFKC-normalised, without format (zero-width, direction) characters."""
    text = unicodedata.normalize("NFKC", raw)
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


def _plain_separator(char: str) -> str:
    category = unicodedata.category(char)
    if category == "Pd":  # en dash, minus sign, wave dash…
        return "-"
    if category in ("Zs", "Zl", "Zp") or char in "\t\r\n":
        return " "
    return char


@functools.lru_cache(maxsize=65536)
def _parse(raw: str) -> str | None:
    text = "".join(_plain_separator(c) for c in clean_text(raw)).strip()
    if not text or len(text) > 64 or not _ALLOWED.fullmatch(text):
        return None
    if text.startswith("00"):  # international prefix from the mainland
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        return None
    national = str(number.national_number)
    if (
        number.country_code != 86
        or number.extension
        or number.italian_leading_zero
        or not _MOBILE.fullmatch(national)
        or not phonenumbers.is_valid_number(number)
        or phonenumbers.number_type(number) not in _MOBILE_TYPES
    ):
        return None
    return national


def normalize_phone(raw: str | None) -> str:
    """``13812345678``, ``+86 138-1234-5678``, ``１３８１２３４５６７８`` → ``13812345678``.

    Anything that is not a mainland mobile number is refused with ``INVALID_PHONE``.
    """
    if not isinstance(raw, str):
        raise ValidationFailed(
            "phone is required", code="INVALID_PHONE", details={"phone": ["required"]}
        )
    phone = _parse(raw)
    if phone is None:
        raise _invalid()
    return phone


def is_valid_phone(raw: str) -> bool:
    return isinstance(raw, str) and _parse(raw) is not None


def mask_phone(phone: str | None) -> str | None:
    """``13812345678`` → ``138****5678``."""
    if not phone:
        return None
    return f"{phone[:3]}****{phone[-4:]}"


def _mask_run(match: re.Match[str]) -> str:
    run = match.group(0)
    positions = [i for i, c in enumerate(run) if c.isdigit()]
    digits = "".join(str(unicodedata.digit(run[i])) for i in positions)
    chars = list(run)
    start = 0
    while start + 11 <= len(digits):
        if _MOBILE.fullmatch(digits, start, start + 11):
            for k in range(start + 3, start + 7):
                chars[positions[k]] = "*"
            start += 11
        else:
            start += 1
    return "".join(chars)


def mask_phones_in_text(text: str) -> str:
    """Every mobile number in ``text``, however written, with its middle four digits masked.

    Errs on the side of masking: any 11 digits in a row (separators allowed) that look like a
    mobile number are masked, even inside a longer number.
    """
    if not text or sum(c.isdigit() for c in text) < 11:
        return text
    return _DIGIT_RUN.sub(_mask_run, text)


def mask_phones_in_log_line(message: str, *, wsgi: bool = False) -> str:
    """:func:`mask_phones_in_text` for a log line, which may quote a URL: percent-escapes are
    decoded first when they hide a phone, and (``wsgi``) text that is UTF-8 read as latin-1
    (a WSGI path) is read as UTF-8 again, so full-width digits or a zero-width character in a
    request path are seen for what they are."""
    text = message
    if wsgi:
        try:
            text = text.encode("latin-1").decode("utf-8")
        except UnicodeError:
            pass
    if "%" in text:
        decoded = unquote(text)
        if mask_phones_in_text(decoded) != decoded:
            text = decoded
    masked = mask_phones_in_text(text)
    return message if masked == text else masked


class PhoneMaskingFilter(logging.Filter):
    """Masks mobile numbers in every log record that passes through a handler (or logger)."""

    def __init__(self, name: str = "", *, wsgi: bool = False) -> None:
        super().__init__(name)
        self.wsgi = wsgi

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        masked = mask_phones_in_log_line(message, wsgi=self.wsgi)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # tracebacks carry values too (a phone in an exception message)
            record.exc_text = mask_phones_in_text(
                logging.Formatter().formatException(record.exc_info)
            )
        elif record.exc_text:
            record.exc_text = mask_phones_in_text(record.exc_text)
        return True
