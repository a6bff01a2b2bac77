"""The ``POINTS_EXPIRY`` policy; it lives in ``app.common.expiry`` so the configuration can
check it at start-up without importing the points package."""

from app.common.expiry import DEFAULT_TIMEZONE, ExpiryPolicy, parse_policy

__all__ = ["DEFAULT_TIMEZONE", "ExpiryPolicy", "parse_policy"]
