"""``intel.nightly`` as a chunked job (``app.jobs.chunked``): its passes (missing rows,
12-month windows, then lifecycle stages with RFM scores) run as the steps of one restartable run.

The passes themselves stay in ``app.intel.jobs`` and are called as they are: each is set-based,
commits per range of member ids and computes the same result when run again, so a run killed
in a pass carries on with that pass, and a second runner waits for the pass rather than
running it twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.common.clock import utcnow
from app.intel import jobs as passes
from app.jobs.chunked import ChunkedJob, Step, register, run_chunked


def _whole(fn: Any, key: str | None = None) -> Any:
    def run(now: datetime, lo: int, hi: int) -> dict[str, int]:
        out = fn(now)
        return out if isinstance(out, dict) else {key or "count": out}

    return run


def _stages_and_rfm(now: datetime, lo: int, hi: int) -> dict[str, int]:
    out = passes.stage_and_score(now)
    if out.get("rows_written"):
        passes.refresh_planner_statistics()  # as the plain nightly does after writing rows
    return out


NIGHTLY = register(
    ChunkedJob(
        "intel.nightly",
        (
            Step("rows", _whole(passes.ensure_rows, "rows_added"), owns_transactions=True),
            Step("windows", _whole(passes.refresh_windows, "windows"), owns_transactions=True),
            Step("stages_and_rfm", _stages_and_rfm, owns_transactions=True),
        ),
        counters=("rows_added", "windows", "stage_moves", "rfm_members", "rows_written"),
    )
)


def nightly(now: datetime | None = None, run_key: str | None = None) -> dict[str, Any]:
    """The ``intel.nightly`` job, restartable and shareable; the passes' counts."""
    return run_chunked(NIGHTLY, now=now or utcnow(), run_key=run_key)
