"""Phones however they are written: one stored form, masked wherever a clerk or a log sees them.

Property tests generate the ways a person (or an attacker) writes a mainland mobile number:
spaces, dashes, dots, ``+86``/``0086``, full-width digits, zero-width characters in between.
"""

from __future__ import annotations

import logging
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.common.phone import (
    PhoneMaskingFilter,
    is_valid_phone,
    mask_phones_in_text,
    normalize_phone,
)
from app.errors import ValidationFailed

PREFIXES = ["130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152"]
PREFIXES += ["155", "156", "157", "158", "159", "166", "170", "176", "177", "180", "181", "186"]
PREFIXES += ["187", "188", "189", "191", "198", "199"]
SEPARATORS = [" ", "-", ".", "\u3000", "\u2013", "\uff0d", "\u00a0", " - ", "  "]
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e"]
COUNTRY = ["", "+86", "+86 ", "86", "0086", "0086 ", "+86-", "\uff0b86 "]

phones = st.builds(
    lambda prefix, rest: prefix + rest,
    st.sampled_from(PREFIXES),
    st.text(alphabet="0123456789", min_size=8, max_size=8),
)


surroundings = st.text(alphabet=st.characters(blacklist_characters="|"), max_size=20)


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in text)


@st.composite
def written(draw: st.DrawFn, phone: str) -> str:
    """``phone`` as someone might type it: grouped, separated, prefixed, widened, with
    invisible characters slipped in."""
    groups = draw(st.sampled_from([(3, 4, 4), (3, 8), (11,), (3, 3, 5), (1,) * 11]))
    parts, at = [], 0
    for size in groups:
        parts.append(phone[at : at + size])
        at += size
    out = parts[0]
    for part in parts[1:]:
        out += draw(st.sampled_from(SEPARATORS + INVISIBLE + [""])) + part
    if draw(st.booleans()):
        out = fullwidth(out)
    if draw(st.booleans()):  # an invisible character anywhere between two digits
        digits = [i for i, c in enumerate(out) if c.isdecimal()][1:]
        at = draw(st.sampled_from(digits))
        out = out[:at] + draw(st.sampled_from(INVISIBLE)) + out[at:]
    return draw(st.sampled_from(COUNTRY)) + out


def digits_of(text: str) -> str:
    return "".join(str(unicodedata.digit(c)) for c in text if c.isdigit())


@settings(max_examples=300, deadline=None)
@given(st.data(), phones)
def test_every_way_of_writing_a_phone_normalises_to_its_eleven_ascii_digits(data, phone):
    raw = data.draw(written(phone))
    assert normalize_phone(raw) == phone


@settings(max_examples=300, deadline=None)
@given(st.data(), phones, surroundings, surroundings)
def test_a_phone_written_anywhere_in_text_is_masked(data, phone, before, after):
    raw = data.draw(written(phone))
    # "|" is not a separator: the phone's digits stay apart from digits around it
    masked = mask_phones_in_text(f"{before}|{raw}|{after}").split("|")
    assert len(masked) == 3
    shown = digits_of(masked[1])
    assert phone not in shown
    assert shown.endswith(phone[-4:]) and phone[:3] in shown
    assert masked[1].count("*") == 4


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=80))
def test_text_without_digits_is_left_alone(text):
    assert mask_phones_in_text(text) == text


@pytest.mark.parametrize(
    "raw",
    [
        "139 1234 5678",
        "139-1234-5678",
        "139.1234.5678",
        "+86 139 1234 5678",
        "１３９１２３４５６７８",
        "139\u200b1234\u200b5678",
        "13９１２３４５６７８",
        "¹³⁹¹²³⁴⁵⁶⁷⁸",
        "①③⑨①②③④⑤⑥⑦⑧",
        "\u0661\u0663\u0669\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668",
    ],
)
def test_a_note_or_name_with_a_phone_in_any_spelling_is_masked(raw):
    masked = mask_phones_in_text(f"客户电话 {raw} 请回电")
    assert "13912345678" not in digits_of(masked)
    assert "*" in masked


@pytest.mark.parametrize(
    "raw",
    [
        "13８００００００１２\u0661",  # an Arabic-Indic digit too many
        "1391234567",
        "139123456789",
        "12812345678",
        "+1 415 555 2671",
        "139ABCD5678",
        "1-800-FLOWERS",
        "13912345678 ext. 12",
        "\u0661\u0663\u0669\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668",  # not ASCII
        "",
    ],
)
def test_anything_but_a_mainland_mobile_number_is_refused(raw):
    assert not is_valid_phone(raw)
    with pytest.raises(ValidationFailed) as info:
        normalize_phone(raw)
    assert info.value.code == "INVALID_PHONE"


@settings(max_examples=100, deadline=None)
@given(st.data(), phones)
def test_a_stored_phone_is_only_ascii_digits(data, phone):
    stored = normalize_phone(data.draw(written(phone)))
    assert re.fullmatch(r"[0-9]{11}", stored, re.ASCII)


@settings(max_examples=100, deadline=None)
@given(st.data(), phones)
def test_log_lines_never_carry_a_phone_however_written(data, phone):
    raw = data.draw(written(phone))
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "GET /x/%s 200", (raw,), None)
    PhoneMaskingFilter().filter(record)
    assert phone not in digits_of(record.getMessage())


def test_the_gunicorn_access_log_masks_a_phone_in_the_path():
    """gunicorn.conf.py's logger masks the access line with the same function."""
    from types import SimpleNamespace

    from gunicorn.config import Config as GunicornConfig

    from app.common.serving import MaskingLogger

    cfg = GunicornConfig()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", '%(h)s "%(m)s %(U)s %(H)s" %(s)s')
    logger = MaskingLogger(cfg)
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    logger.access_log.addHandler(Collect())
    paths = [
        "/clerk/v1/members/13912345678",
        "/x/139%201234%205678",
        "/x/139-1234-5678",
        "/x/\u00ef\u00bc\u0091\u00ef\u00bc\u0093\u00ef\u00bc\u0099" + "12345678",  # １３９, WSGI
        "/x/139\u00e2\u0080\u008b1234\u00e2\u0080\u008b5678",  # zero-width spaces, WSGI
    ]
    for path in paths:
        resp = SimpleNamespace(status="404 NOT FOUND", sent=0, headers=[], response_length=0)
        req = SimpleNamespace(
            method="GET", path=path, query="", version=(1, 1), headers=[], uri=path
        )
        environ = {
            "REMOTE_ADDR": "127.0.0.1",
            "RAW_URI": path,
            "PATH_INFO": path,
            "REQUEST_METHOD": "GET",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "QUERY_STRING": "",
        }
        logger.access(resp, req, environ, __import__("datetime").timedelta(seconds=0.01))
    assert len(lines) == len(paths)
    for line in lines:
        assert "1234" not in line, line
