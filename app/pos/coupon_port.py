"""The one place POS code reaches the coupons package (built on another branch).

Until the lead connects it after merging, ``_backend()`` returns None: a redemption that names
coupons is refused with 409 ``COUPONS_UNAVAILABLE`` and identify lists no coupons. To connect,
make ``_backend()`` return ``app.coupons.services``, which provides
``hold_for_redemption(codes, *, member_id, store_id, redemption_id, order_total_fen) -> int``,
``release_redemption(redemption_id)`` and ``capture_redemption(redemption_id, sale_ref)`` (and,
for identify, a function listing a member's usable coupons: map it in ``coupons_for_till``).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from app.errors import Conflict


def _backend() -> ModuleType | None:
    return None  # after merge: from app.coupons import services; return services


def connected() -> bool:
    return _backend() is not None


def _require() -> Any:
    backend = _backend()
    if backend is None:
        raise Conflict("coupons cannot be redeemed at the till yet", code="COUPONS_UNAVAILABLE")
    return backend


def require_connected() -> None:
    _require()


def hold(
    codes: list[str], *, member_id: int, store_id: int, redemption_id: str, order_total_fen: int
) -> int:
    """Hold coupons for a redemption; returns their discount in fen."""
    return int(
        _require().hold_for_redemption(
            codes,
            member_id=member_id,
            store_id=store_id,
            redemption_id=redemption_id,
            order_total_fen=order_total_fen,
        )
    )


def release(redemption_id: str) -> None:
    _require().release_redemption(redemption_id)


def capture(redemption_id: str, sale_ref: str) -> None:
    _require().capture_redemption(redemption_id, sale_ref)


def coupons_for_till(member_id: int, store_id: int) -> list[dict]:
    """Coupons the member could use in this store (empty until connected)."""
    return []  # after merge: the coupons package's list of the member's usable coupons
