"""The applier process: ``flask engine apply`` drains the journal as payments stream in.

It applies pending rows in batches (up to ``BATCH`` per transaction) as long as there are any;
when the journal is empty it looks again after ``POLL_SECONDS`` (an idle poll is one indexed
query), so a payment is applied well within a second and a notification pays nothing extra
to wake it. Several appliers may run:
each claims rows with ``FOR UPDATE SKIP LOCKED``. An applier killed mid-batch leaves its
transaction rolled back and its rows pending for the next pass: nothing is lost or applied
twice. The periodic ``engine.sweep`` job applies anything left when no applier runs.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DBAPIError

from app.engine.applier import BATCH, apply_pending, drain
from app.extensions import db

log = logging.getLogger(__name__)
POLL_SECONDS = 0.02


def run(*, once: bool = False, batch: int = BATCH, stop: Any = None) -> int:
    """Apply the journal until stopped (``once``: until it is empty). Events applied."""
    total = 0
    while True:
        try:
            done = apply_pending(limit=batch)
        except DBAPIError:  # the database is away: wait and try again
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
        time.sleep(POLL_SECONDS)


def sweep(now: datetime | None = None) -> dict[str, int]:
    """The periodic job: apply whatever is pending (when no applier process runs)."""
    return {"applied": drain()}
