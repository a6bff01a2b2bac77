"""Named extension points of the engine: a domain fires a hook, features register on it.

Imports point inward, so a feature (tiers, member stats, cards, coupons) never gets called by
an upward import from the engine. Instead the engine fires one of the hooks below, set-based
(a list of items, a single event being a list of one), inside the transaction that applies the
event; every registered function runs in that transaction, so what it writes commits or rolls
back with the event. A function that raises rolls the whole batch back.

Features register in ``app.register_hooks`` (called by ``create_app``)::

    PURCHASES_APPLIED.register(tiers.on_purchases_applied)

Hooks and what fires them:

- ``MEMBERS_JOINED``: a member was created (by payment, till, mini-program login, gift claim,
  import). Welcome coupons, attribution and stats listen here.
- ``PURCHASES_APPLIED``: purchases and refunds were applied by the money engine: once per
  batch, with all of them in the batch's order. Refunds carry negative ``payer_fen`` and
  ``points``. Stats, messages and lookups that only record what happened listen here.
- ``PURCHASE_WAVE_APPLIED``: the same items, wave by wave. A batch is applied in waves in
  which each member appears at most once (a member's second purchase in a batch is in the
  next wave); this fires after each wave, before the next wave's earn multipliers are read.
  For state an ``EARN_MULTIPLIERS`` provider reads: tiers keep their basis here, so the
  purchase that crosses a threshold lifts the member's next purchase in the same batch.
- ``POINTS_CHANGED``: member balances changed (earn, spend, refund, expiry, adjustment, merge).
- ``TIER_CHANGED``: a member's tier changed (upgrade, demotion, manual override).
- ``EARN_MULTIPLIERS``: providers of an extra earn multiplier in integer percent per member
  (for example the member's tier); the engine composes them with store rules and floors once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


class Hook(Generic[T]):
    """An ordered list of listeners, each called once with the whole batch of items."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: list[Callable[[Sequence[T]], object]] = []

    def register(self, fn: Callable[[Sequence[T]], object]) -> Callable[[Sequence[T]], object]:
        if fn not in self._listeners:
            self._listeners.append(fn)
        return fn

    def unregister(self, fn: Callable[[Sequence[T]], object]) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    @property
    def listeners(self) -> tuple[Callable[[Sequence[T]], object], ...]:
        return tuple(self._listeners)

    def fire(self, items: Sequence[T]) -> None:
        if not items:
            return
        for fn in list(self._listeners):
            fn(items)


@dataclass(frozen=True)
class MemberJoined:
    member_id: int
    channel: str  # "payment" | "pos" | "miniprogram" | "gift" | "import"
    joined_at: datetime
    store_id: int | None = None


@dataclass(frozen=True)
class PurchaseApplied:
    member_id: int
    purchase_id: int
    source: str  # "wechat" | "alipay" | "pos"
    occurred_at: datetime
    payer_fen: int  # the payer's own money; negative for a refund
    points: int  # points credited; negative for a refund's clawback
    is_refund: bool = False
    store_id: int | None = None
    skus: tuple[str, ...] = field(default_factory=tuple)
    balance: int | None = None  # the member's balance right after this purchase's credit


@dataclass(frozen=True)
class PointsChanged:
    member_id: int
    delta: int
    balance: int
    kind: str  # the ledger entry kind: "earn", "spend", "refund", "expire", "adjust", ...
    key: str  # the ledger entry's idempotency key: stable across retries


@dataclass(frozen=True)
class TierChanged:
    member_id: int
    old_code: str | None
    new_code: str
    reason: str  # "upgrade" | "review" | "manual" | "merge" | "ladder"
    changed_at: datetime


@dataclass(frozen=True)
class EarnContext:
    member_id: int
    store_id: int | None
    occurred_at: datetime


MEMBERS_JOINED: Hook[MemberJoined] = Hook("members_joined")
PURCHASES_APPLIED: Hook[PurchaseApplied] = Hook("purchases_applied")
PURCHASE_WAVE_APPLIED: Hook[PurchaseApplied] = Hook("purchase_wave_applied")
POINTS_CHANGED: Hook[PointsChanged] = Hook("points_changed")
TIER_CHANGED: Hook[TierChanged] = Hook("tier_changed")

# A provider answers one multiplier percent (100 = none) per context, in order.
EarnMultiplierProvider = Callable[[Sequence[EarnContext]], list[int]]
EARN_MULTIPLIERS: list[EarnMultiplierProvider] = []


def earn_multipliers(contexts: Sequence[EarnContext]) -> list[list[int]]:
    """Every provider's percent for each context: ``result[i]`` lists context ``i``'s factors."""
    factors: list[list[int]] = [[] for _ in contexts]
    for provider in list(EARN_MULTIPLIERS):
        for i, pct in enumerate(provider(contexts)):
            factors[i].append(pct)
    return factors
