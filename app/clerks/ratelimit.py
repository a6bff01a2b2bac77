"""Fixed-window counters in Redis, shared by every process."""

from __future__ import annotations

from app.errors import TooManyRequests
from app.extensions import redis_store


def count_or_refuse(key: str, *, limit: int, window_seconds: int, code: str, message: str) -> None:
    """Count one more use of ``key`` in its window; over ``limit`` answers 429 ``code``."""
    client = redis_store.client
    count = client.incr(key)
    if count == 1:
        client.expire(key, window_seconds)
    if count > limit:
        raise TooManyRequests(
            message, code=code, details={"retry_after_seconds": max(int(client.ttl(key)), 1)}
        )


def reset(key: str) -> None:
    redis_store.client.delete(key)
