"""``intel.nightly`` as a chunked job (``app.jobs.chunked``): its passes (missing rows,
12-month windows, RFM boundaries, then lifecycle stages with RFM scores, then the planner's
statistics) run as the steps of one restartable run.

The passes themselves stay in ``app.intel.jobs``: each is set-based and computes the same
result when run again. The windows and the stages with scores are handed out in ranges of
member ids (``RANGE_ROWS`` stats rows each, one transaction each), so runners on several
workers share them. Between the two, one runner computes the brand's RFM boundaries once and
leaves them in Redis under the run's id, so every range of the run is scored against the same
ones (a runner that finds them gone, Redis having restarted, computes them again from the same
rows: the stages pass changes none of the columns they read). The other passes are claimed
whole: a run killed in one carries on with it, and a second runner waits for it rather than
running it twice.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.common.clock import utcnow
from app.extensions import db, redis_store
from app.intel import jobs as passes
from app.intel.models import MemberStats
from app.jobs.chunked import CURRENT_RUN, ChunkedJob, Step, register, run_chunked

# stats rows per range of the windows and stages passes: at 10 M members, 500 ranges each
RANGE_ROWS = 20_000
BOUNDS_TTL = 2 * 86400  # seconds the run's RFM boundaries are kept for its runners


def _whole(fn: Any, key: str | None = None) -> Any:
    def run(now: datetime, lo: int, hi: int) -> dict[str, int]:
        out = fn(now)
        return out if isinstance(out, dict) else {key or "count": out}

    return run


def _stats_keys(now: datetime, after: int, limit: int) -> list[int]:
    return list(
        db.session.scalars(
            select(MemberStats.member_id)
            .where(MemberStats.member_id > after)
            .order_by(MemberStats.member_id)
            .limit(limit)
        )
    )


def _windows(now: datetime, lo: int, hi: int) -> dict[str, int]:
    return {"windows": passes.windows_in_range(now, lo, hi)}


def _bounds_key() -> str:
    return f"intel:nightly:{CURRENT_RUN.get()}:rfm-bounds"


def _keep_bounds() -> dict[str, Any]:
    """The brand's RFM boundaries (``passes.rfm_bounds``), left in Redis for the run's
    ranges unless another runner left them first; the ones kept."""
    n, bounds = passes.rfm_bounds()
    value = {"n": n, **bounds, "r": [_iso(v) for v in bounds.get("r", [])]}
    redis_store.client.set(_bounds_key(), json.dumps(value, default=int), nx=True, ex=BOUNDS_TTL)
    kept = redis_store.client.get(_bounds_key())
    return json.loads(kept) if kept is not None else value


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _rfm_bounds(now: datetime, lo: int, hi: int) -> dict[str, int]:
    return {"rfm_members": int(_keep_bounds()["n"])}


def _stages(now: datetime, lo: int, hi: int) -> dict[str, int]:
    kept = redis_store.client.get(_bounds_key())
    value = json.loads(kept) if kept is not None else _keep_bounds()
    bounds = {key: value[key] for key in ("f", "m") if key in value}
    if "r" in value:
        bounds["r"] = [datetime.fromisoformat(v) if v else v for v in value["r"]]
    return passes.stages_in_range(now, lo, hi, int(value["n"]), bounds)


def _planner_statistics(now: datetime, lo: int, hi: int) -> dict[str, int]:
    passes.refresh_planner_statistics()  # as the plain nightly does after writing rows
    return {}


NIGHTLY = register(
    ChunkedJob(
        "intel.nightly",
        (
            Step("rows", _whole(passes.ensure_rows, "rows_added"), owns_transactions=True),
            Step("windows", _windows, keys=_stats_keys),
            Step("rfm_bounds", _rfm_bounds),
            Step("stages_and_rfm", _stages, keys=_stats_keys),
            Step("planner_statistics", _planner_statistics, owns_transactions=True),
        ),
        chunk_size=RANGE_ROWS,
        counters=("rows_added", "windows", "stage_moves", "rfm_members", "rows_written"),
    )
)


def nightly(now: datetime | None = None, run_key: str | None = None) -> dict[str, Any]:
    """The ``intel.nightly`` job, restartable and shareable; the passes' counts."""
    return run_chunked(NIGHTLY, now=now or utcnow(), run_key=run_key)
