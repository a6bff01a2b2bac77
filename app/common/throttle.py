"""Throttles: counters of attempts per IP address and per credential, kept by ``limits``.

``limits`` is Flask-Limiter's engine, used directly: no route carries a limit decorator, and
Flask-Limiter's request hooks, which look for one on every request, cost 5.5 % of a till
identify's worker CPU (py-spy, 2026-11-24). The storage is Redis (``REDIS_URL``: shared by
every worker) or, without it, process memory (development). A :class:`Throttle` is checked
before the work (429 once its limit is reached) and hit when an attempt counts: every attempt,
or only failed ones (a password sprayed across usernames fails everywhere; a clerk who logs in
is not slowed down by colleagues on the same shop Wi-Fi). ``limit`` is in ``limits``'
notation, e.g. ``"20 per 10 minutes"``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from flask import Flask, current_app, request
from limits import parse, storage, strategies

from app.errors import Forbidden, TooManyRequests, Unauthorized

T = TypeVar("T")


def init_throttles(app: Flask) -> None:
    """Fixed windows over ``RATELIMIT_STORAGE_URI`` (default: ``REDIS_URL``, else memory)."""
    uri = app.config.get("RATELIMIT_STORAGE_URI") or app.config.get("REDIS_URL") or "memory://"
    app.config["RATELIMIT_STORAGE_URI"] = uri
    app.extensions["huiyuan_limiter"] = strategies.FixedWindowRateLimiter(
        storage.storage_from_string(uri)
    )


def limiter() -> strategies.FixedWindowRateLimiter:
    return current_app.extensions["huiyuan_limiter"]


def client_ip() -> str:
    return request.remote_addr or "unknown"


def credential_key(value: str) -> str:
    """A credential is counted by its hash: the throttle store never holds one."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class Throttle:
    name: str
    limit: str
    code: str
    message: str

    def _item(self):
        return parse(self.limit)

    def check(self, key: str) -> None:
        """429 ``code`` if ``key`` has used up its attempts in this window."""
        strategy = limiter()
        item = self._item()
        if not strategy.test(item, self.name, key):
            reset_at = strategy.get_window_stats(item, self.name, key).reset_time
            retry = max(int(reset_at - time.time()), 1)
            raise TooManyRequests(
                self.message, code=self.code, details={"retry_after_seconds": retry}
            )

    def hit(self, key: str) -> None:
        limiter().hit(self._item(), self.name, key)

    def check_and_hit(self, key: str) -> None:
        self.check(key)
        self.hit(key)

    def reset(self, key: str) -> None:
        limiter().clear(self._item(), self.name, key)


def guard_failures(guards: list[tuple[Throttle, str]], work: Callable[[], T]) -> T:
    """Run ``work`` unless a guard is exhausted (429); a refusal (401/403) counts on each."""
    for throttle, key in guards:
        throttle.check(key)
    try:
        return work()
    except (Unauthorized, Forbidden):
        for throttle, key in guards:
            throttle.hit(key)
        raise


class LoginThrottle:
    """Failed logins of one kind of account (``clerk``, ``operator``), counted per username
    (from any address) and per IP address (password spraying across usernames); a success
    clears the username's count. More than the limits answer 429 ``LOGIN_RATE_LIMITED``."""

    def __init__(self, kind: str, *, per_username: int, per_ip: int, window_seconds: int):
        self.per_username = Throttle(
            f"{kind}-login-username",
            f"{per_username} per {window_seconds} seconds",
            "LOGIN_RATE_LIMITED",
            "too many login attempts; try again later",
        )
        self.per_ip = Throttle(
            f"{kind}-login-ip",
            f"{per_ip} per {window_seconds} seconds",
            "LOGIN_RATE_LIMITED",
            "too many failed logins from this address; try again later",
        )

    def guard(self, username: str, ip: str, work: Callable[[], T]) -> T:
        user_key = credential_key(username.lower())
        result = guard_failures(
            [(self.per_username, user_key), (self.per_ip, ip or "unknown")], work
        )
        self.per_username.reset(user_key)
        return result
