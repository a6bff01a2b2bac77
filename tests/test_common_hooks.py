"""The engine's named hooks: listeners get the whole batch, in registration order, once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from app.common.hooks import (
    EARN_MULTIPLIERS,
    EarnContext,
    Hook,
    earn_multipliers,
)


def test_listeners_receive_the_batch_in_registration_order_and_empty_batches_fire_nothing():
    hook: Hook[int] = Hook("numbers")
    seen: list[tuple[str, list[int]]] = []

    def first(items: Sequence[int]) -> None:
        seen.append(("first", list(items)))

    def second(items: Sequence[int]) -> None:
        seen.append(("second", list(items)))

    hook.register(first)
    hook.register(second)
    hook.register(first)  # registering twice keeps one entry
    hook.fire([])
    hook.fire([1, 2, 3])
    assert seen == [("first", [1, 2, 3]), ("second", [1, 2, 3])]
    hook.unregister(first)
    assert hook.listeners == (second,)


def test_earn_multipliers_collects_each_providers_percent_per_context():
    when = datetime(2026, 11, 23, tzinfo=UTC)
    contexts = [EarnContext(1, None, when), EarnContext(2, 5, when)]

    def tier(ctxs: Sequence[EarnContext]) -> list[int]:
        return [150 if c.member_id == 2 else 100 for c in ctxs]

    registered = list(EARN_MULTIPLIERS)  # the app's own providers (tiers) step aside here
    EARN_MULTIPLIERS[:] = [tier]
    try:
        assert earn_multipliers(contexts) == [[100], [150]]
        EARN_MULTIPLIERS.remove(tier)
        assert earn_multipliers(contexts) == [[], []]
    finally:
        EARN_MULTIPLIERS[:] = registered
