"""A Redis lock that needs no Lua (the in-process stand-in has none): SET NX EX to take it,
WATCH/MULTI to release it only while it is still ours."""

from __future__ import annotations

import secrets

import redis

from app.extensions import redis_store


class RedisLock:
    def __init__(self, key: str, *, ttl: int):
        self.key = key
        self.ttl = ttl
        self.token = secrets.token_hex(16)

    def acquire(self) -> bool:
        return bool(redis_store.client.set(self.key, self.token, nx=True, ex=self.ttl))

    def release(self) -> bool:
        """Delete the key if it still holds our token; False if it expired or was taken."""
        with redis_store.client.pipeline() as pipe:
            try:
                pipe.watch(self.key)
                current = pipe.get(self.key)
                if current is None or current.decode() != self.token:
                    pipe.unwatch()
                    return False
                pipe.multi()
                pipe.delete(self.key)
                pipe.execute()
                return True
            except redis.WatchError:
                return False
