"""Imports every model module so the metadata (and Alembic) sees the whole schema."""

from app.admin.models import AdminToken
from app.cards.models import MemberCard
from app.clerks.models import (
    ClerkAccessGrant,
    ClerkAccessLog,
    ClerkNote,
    ClerkSession,
    MemberAttribution,
)
from app.coupons.models import (
    Coupon,
    CouponEvent,
    CouponGift,
    CouponRedemption,
    CouponTemplate,
    CouponTemplateStore,
    WelcomeGrant,
)
from app.engine.models import MoneyEvent
from app.jobs.models import JobRun
from app.members.models import (
    Member,
    MemberConsent,
    MemberErasure,
    MemberIdentity,
    MemberMerge,
    MemberTokenRevocation,
)
from app.operators.models import (
    AdminTokenStore,
    Operator,
    OperatorSession,
    OperatorStore,
    WriteAudit,
)
from app.outbox.models import OutboxMessage
from app.points.models import (
    MultiplierRule,
    PointsAccount,
    PointsEntry,
    PointsHold,
    PointsLot,
    PointsLotConsumption,
    Purchase,
    PurchaseRefund,
)
from app.pos.models import PosRedemption, PosReturn, PosSale, PosSaleLine
from app.stores.models import Clerk, Store, Terminal
from app.tags.models import (
    MemberTag,
    MemberTagEvent,
    Tag,
    TagGroup,
    TagRule,
    TagRuleApplication,
    TagRuleSku,
)
from app.tiers.models import MemberTier, MemberTierMonth, Tier, TierChange, TierSettings

__all__ = [
    "AdminToken",
    "AdminTokenStore",
    "Clerk",
    "ClerkAccessGrant",
    "ClerkAccessLog",
    "ClerkNote",
    "ClerkSession",
    "Coupon",
    "CouponEvent",
    "CouponGift",
    "CouponRedemption",
    "CouponTemplate",
    "CouponTemplateStore",
    "JobRun",
    "Member",
    "MemberAttribution",
    "MemberCard",
    "MemberConsent",
    "MemberErasure",
    "MemberIdentity",
    "MemberMerge",
    "MemberTag",
    "MemberTagEvent",
    "MemberTier",
    "MemberTierMonth",
    "MemberTokenRevocation",
    "MoneyEvent",
    "MultiplierRule",
    "Operator",
    "OperatorSession",
    "OperatorStore",
    "OutboxMessage",
    "PointsAccount",
    "PointsEntry",
    "PointsHold",
    "PointsLot",
    "PointsLotConsumption",
    "PosRedemption",
    "PosReturn",
    "PosSale",
    "PosSaleLine",
    "Purchase",
    "PurchaseRefund",
    "Store",
    "Tag",
    "TagGroup",
    "TagRule",
    "TagRuleApplication",
    "TagRuleSku",
    "Terminal",
    "Tier",
    "TierChange",
    "TierSettings",
    "WelcomeGrant",
    "WriteAudit",
]
