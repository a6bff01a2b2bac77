"""The applier process: ``flask engine apply`` drains the journal as payments stream in.

It applies pending rows in batches (up to ``BATCH`` per transaction) as long as there are any;
when the journal is empty it waits for a wake-up the notify endpoint pushes to Redis, or at
most ``POLL_SECONDS``, so a payment is applied well within a second. Several appliers may run:
each claims rows with ``FOR UPDATE SKIP LOCKED``. An applier killed mid-batch leaves its
transaction rolled back and its rows pending for the next pass: nothing is lost or applied
twice. The periodic ``engine.sweep`` job applies anything left when no applier runs.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from sqlalchemy.exc import OperationalError

from app.engine.applier import BATCH, apply_pending, drain
from app.engine.services import WAKE_KEY
from app.extensions import db, redis_store

log = logging.getLogger(__name__)
POLL_SECONDS = 0.05


def run(*, once: bool = False, batch: int = BATCH, stop: Any = None) -> int:
    """Apply the journal until stopped (``once``: until it is empty). Events applied."""
    total = 0
    while True:
        try:
            done = apply_pending(limit=batch)
        except OperationalError:  # the database is away: wait and try again
            log.warning("journal apply failed (database unavailable); retrying")
            db.session.rollback()
            time.sleep(1)
            continue
        finally:
            db.session.remove()
        total += done
        if done:
            continue
        if once or (stop is not None and stop()):
            return total
        _wait()


def _wait() -> None:
    try:
        client = redis_store.client
        client.blpop([WAKE_KEY], timeout=POLL_SECONDS)
        client.delete(WAKE_KEY)  # one pass drains everything woken for
    except Exception:  # noqa: BLE001 - no Redis: poll
        time.sleep(POLL_SECONDS)


def sweep(now: datetime | None = None) -> dict[str, int]:
    """The periodic job: apply whatever is pending (when no applier process runs)."""
    return {"applied": drain()}
