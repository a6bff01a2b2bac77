"""Database helpers: timezone-safe timestamps, the unit of work, and bounded retries."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, types
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from app.extensions import db

log = logging.getLogger(__name__)
T = TypeVar("T")

# serialization failure, deadlock detected, unique violation (a racing insert of the same key:
# run again, the work then finds the winner's row)
RETRYABLE_PGCODES = {"40001", "40P01", "23505"}
ATTEMPTS = 6


class UTCDateTime(types.TypeDecorator):
    """Stored as UTC; always returned timezone-aware (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def session() -> Session:
    return db.session


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction: committed when the block ends normally, rolled back otherwise."""
    s = db.session
    try:
        yield s
        s.commit()
    except BaseException:
        s.rollback()
        raise


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if code in RETRYABLE_PGCODES:
            return True
        text = str(orig)
        if isinstance(exc, OperationalError) and "database is locked" in text:
            return True
        if isinstance(exc, IntegrityError) and "UNIQUE constraint failed" in text:
            return True  # SQLite's unique violation
    return False


def transaction(fn: Callable[[], T], *, attempts: int = ATTEMPTS) -> T:
    """The transaction runner at a service entry: ``fn`` runs in one transaction.

    Committed when ``fn`` returns, rolled back when it raises. A serialization failure, a
    deadlock or a unique violation (a concurrent insert of the same business key) runs ``fn``
    again from the start, at most ``attempts`` times, with a short backoff; any other error
    propagates after the rollback. ``fn`` must therefore be safe to run again: it reads what
    it needs inside the transaction and keeps nothing from a failed attempt.
    """
    for attempt in range(1, attempts + 1):
        try:
            with unit_of_work():
                return fn()
        except DBAPIError as exc:
            if not is_retryable(exc) or attempt == attempts:
                raise
            log.info("retrying after %s (attempt %d)", type(exc.orig).__name__, attempt)
            time.sleep(min(0.005 * 2**attempt, 0.3))
    raise AssertionError("unreachable")


def with_retry(fn: Callable[[], T], *, attempts: int = ATTEMPTS) -> T:
    """Run ``fn``, which owns its transaction, again on what :func:`transaction` retries."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except DBAPIError as exc:
            db.session.rollback()
            if not is_retryable(exc) or attempt == attempts:
                raise
            log.info("retrying after %s (attempt %d)", type(exc.orig).__name__, attempt)
            time.sleep(min(0.005 * 2**attempt, 0.3))
    raise AssertionError("unreachable")
