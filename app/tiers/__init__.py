"""Member tiers (会员等级): a configurable ladder, its basis kept incrementally, upgrades on the
crossing purchase, keep periods, reviews, HQ overrides, and the tier's benefits."""
