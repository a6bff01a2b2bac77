"""One inconsistency the audit found."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Difference:
    check: str  # e.g. "coupon_held_without_redemption"
    subject: str  # e.g. "coupon 12", "member 7"
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.subject}: {self.detail}"
