import logging
import socket

import pytest

from app.common.phone import mask_phone, mask_phones_in_text, normalize_phone
from app.errors import ValidationFailed
from tests.conftest import OutboundConnectionBlocked


@pytest.mark.parametrize("raw", ["13812345678", "+8613812345678", "8613812345678", "138 1234 5678"])
def test_mainland_mobile_numbers_normalise(raw):
    assert normalize_phone(raw) == "13812345678"


@pytest.mark.parametrize("raw", ["", "12812345678", "1381234567", "+8513812345678", "abc", None])
def test_other_phone_input_is_refused_with_a_code(raw):
    with pytest.raises(ValidationFailed) as info:
        normalize_phone(raw)
    assert info.value.code == "INVALID_PHONE"


def test_phones_are_masked():
    assert mask_phone("13812345678") == "138****5678"
    assert (
        mask_phones_in_text("call +8613812345678 or 13912345678.")
        == "call +86138****5678 or 139****5678."
    )


def test_log_records_never_carry_a_full_phone(caplog):
    from app.common.phone import PhoneMaskingFilter

    caplog.handler.addFilter(PhoneMaskingFilter())
    with caplog.at_level(logging.INFO):
        logging.getLogger("huiyuan.test").info("member %s bound", "13812345678")
    assert "13812345678" not in caplog.text
    assert "138****5678" in caplog.text


def test_tests_cannot_reach_beyond_loopback():
    with pytest.raises(OutboundConnectionBlocked):
        socket.create_connection(("203.0.113.7", 443), timeout=0.5)
