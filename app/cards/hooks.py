"""The engine's hooks, as member cards hear them: join → open, points or tier → sync, merge."""

from __future__ import annotations

from collections.abc import Sequence

from app.cards import services
from app.common.hooks import (
    MEMBERS_JOINED,
    POINTS_CHANGED,
    TIER_CHANGED,
    MemberJoined,
    PointsChanged,
    TierChanged,
)

RECORDS = {  # WeChat shows record_bonus in the change message (at most 14 characters)
    "earn": "消费获得积分",
    "redeem": "积分抵扣",
    "hold": "积分冻结",
    "release": "积分解冻",
    "clawback": "退款扣回积分",
    "return_of_redeemed": "退还抵扣积分",
    "expire": "积分过期",
    "adjust": "积分调整",
    "import": "积分导入",
    "merge_in": "会员合并",
    "merge_out": "会员合并",
    "exchange": "积分兑换",
}


def on_members_joined(items: Sequence[MemberJoined]) -> None:
    """A card on each enabled platform the new member came in by."""
    platforms = services.card_platforms()
    if not platforms:
        return
    reachable = services.reachable_platforms([i.member_id for i in items])
    for item in items:
        wanted = [p for p in platforms if p in reachable.get(item.member_id, set())]
        if wanted:
            services.open_cards([item.member_id], wanted)


def on_points_changed(items: Sequence[PointsChanged]) -> None:
    if not services.card_platforms():
        return  # cards off: not even a lookup on the money path
    services.queue_sync(
        (i.member_id, f"points:{i.key}", i.delta, RECORDS.get(i.kind, "积分变动"))
        for i in items
        if i.delta
    )


def on_tier_changed(items: Sequence[TierChanged]) -> None:
    if not services.card_platforms():
        return
    changes = []
    for item in items:
        services.set_level([item.member_id], item.new_code)
        key = f"tier:{item.new_code}:{int(item.changed_at.timestamp())}"
        changes.append((item.member_id, key, 0, "会员等级变更"))
    services.queue_sync(changes)


def register_card_hooks() -> None:
    from app.cards.channels import AlipayCardChannel, WeChatCardChannel
    from app.members.merge import register_merge_step
    from app.outbox.channels import register_channel

    MEMBERS_JOINED.register(on_members_joined)
    POINTS_CHANGED.register(on_points_changed)
    TIER_CHANGED.register(on_tier_changed)
    register_merge_step(services.on_merge)
    register_channel(WeChatCardChannel())
    register_channel(AlipayCardChannel())
