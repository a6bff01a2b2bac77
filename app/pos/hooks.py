"""Hooks run after a sale with a member is recorded, inside the same transaction.

HQ's SKU tag rules run here (``app.tags.rules.apply_tag_rules_for_sale``); more hooks are added
with ``SALE_HOOKS.append(fn)`` where ``fn(member_id, store_id, skus, sale_key)``; ``sale_key`` is
``"<store code>:<sale_id>"`` and is stable across replays, so a hook can be idempotent on it.
A hook that raises a ``DomainError`` rejects the sale event (nothing of it is kept); the till
will send it again.
"""

from __future__ import annotations

from collections.abc import Callable

from app.tags.rules import apply_tag_rules_for_sale, apply_tag_rules_for_sales

SaleHook = Callable[[int, int, list[str], str], object]  # the result is ignored
SaleArgs = tuple[int, int, list[str], str]

SALE_HOOKS: list[SaleHook] = [apply_tag_rules_for_sale]
# a hook may have a variant taking many sales at once (same effect as calling it for each)
BATCH_VARIANTS: dict[SaleHook, Callable[[list[SaleArgs]], object]] = {
    apply_tag_rules_for_sale: apply_tag_rules_for_sales
}


def run_sale_hooks(member_id: int, store_id: int, skus: list[str], sale_key: str) -> None:
    for hook in list(SALE_HOOKS):
        hook(member_id, store_id, skus, sale_key)


def run_sale_hooks_batch(sales: list[SaleArgs]) -> None:
    """``run_sale_hooks`` for each sale in turn (hook by hook, batch variants where known)."""
    if not sales:
        return
    for hook in list(SALE_HOOKS):
        many = BATCH_VARIANTS.get(hook)
        if many is not None:
            many(sales)
            continue
        for args in sales:
            hook(*args)
