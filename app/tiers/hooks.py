"""Where tiers attach to the engine: its hooks and the member merge."""

from __future__ import annotations

from app.common.hooks import EARN_MULTIPLIERS, PURCHASE_WAVE_APPLIED, TIER_CHANGED


def register_hooks() -> None:
    """Called by ``create_app``; registering twice changes nothing."""
    from app.members.merge import register_merge_step
    from app.tiers.merge import on_member_merge
    from app.tiers.services import on_purchases_applied, on_tier_changed, tier_multipliers

    # wave by wave: the next wave's tier multiplier reads the basis this keeps
    PURCHASE_WAVE_APPLIED.register(on_purchases_applied)
    TIER_CHANGED.register(on_tier_changed)
    if tier_multipliers not in EARN_MULTIPLIERS:
        EARN_MULTIPLIERS.append(tier_multipliers)
    register_merge_step(on_member_merge)
