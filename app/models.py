"""Imports every model module so the metadata (and Alembic) sees the whole schema."""

from app.admin.models import AdminToken
from app.cards.models import MemberCard
from app.catalog.models import Sku
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
from app.intel.models import (
    Campaign,
    CampaignTarget,
    IntelSettings,
    Journey,
    JourneyEnrollment,
    JourneyStepRun,
    LifecycleEvent,
    MemberStats,
    MemberStoreMonth,
    Segment,
    SegmentExport,
)
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
from app.reports.models import KpiClerkDaily, KpiDaily, MemberVisitDay, RollupCursor
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
    "Campaign",
    "CampaignTarget",
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
    "IntelSettings",
    "JobRun",
    "Journey",
    "JourneyEnrollment",
    "JourneyStepRun",
    "KpiClerkDaily",
    "KpiDaily",
    "LifecycleEvent",
    "Member",
    "MemberAttribution",
    "MemberCard",
    "MemberConsent",
    "MemberErasure",
    "MemberIdentity",
    "MemberMerge",
    "MemberStats",
    "MemberStoreMonth",
    "MemberTag",
    "MemberTagEvent",
    "MemberTier",
    "MemberTierMonth",
    "MemberTokenRevocation",
    "MemberVisitDay",
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
    "RollupCursor",
    "Segment",
    "SegmentExport",
    "Sku",
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
