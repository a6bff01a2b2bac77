"""Peak memory and time of the long jobs that walk every member or purchase, one process.

    .venv/bin/python bench/jobs_memory.py --db-url postgresql+psycopg://postgres@127.0.0.1/DB
        [--jobs rebuild_stats,nightly,rollup] [--chunk 5000] [--rollup-chunks 1000]
        [--redis-url URL]

Runs, in this one process and in turn (as a worker running the long jobs does), on a database
loaded by ``bench/scale_bench.py --load-only`` (members, 13 months of purchases with their
entries and lots): ``intel.rebuild_stats`` (the stats from the purchases), ``intel.nightly``
(windows, stages, RFM) and ``reports.rollup`` (the KPI counters of every row not yet rolled up).
For each job: seconds, the load average at its start, and the process's peak resident memory
(``VmHWM``) during that job alone (the peak is reset before each job through
``/proc/self/clear_refs``), beside the peak after the app started (the floor). Prints one JSON
line. The baseline for the time, in the same run: ``SELECT count(*), sum(paid_fen)`` over every
purchase (one scan of the history), so ``rebuild_vs_scan`` says how many scans a rebuild costs.

Runs the code of the checkout it is started from (``HUIYUAN_ROOT`` overrides it: how the figures
"before" a change were taken, with the same script).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(os.environ.get("HUIYUAN_ROOT") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0: ``5`` in ``clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", required=True, help="SQLAlchemy URL (postgresql+psycopg)")
    parser.add_argument("--jobs", default="rebuild_stats,nightly,rollup")
    parser.add_argument("--chunk", type=int, default=5000, help="members per rebuild chunk")
    parser.add_argument(
        "--rollup-chunks", type=int, default=1000, help="rollup chunks per source at most"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    args = parser.parse_args()

    from sqlalchemy import text

    from app import create_app
    from app.config import Config

    config = Config.from_env(
        env={},
        ENV="testing",
        SECRET_KEY="jobs-memory-bench-" + "x" * 40,
        DATABASE_URL=args.db_url,
        REDIS_URL=args.redis_url,
    )
    app = create_app(config)
    out: dict = {"code": str(ROOT), "jobs": {}}
    with app.app_context():
        from app.extensions import db
        from app.intel.jobs import nightly, rebuild_stats
        from app.reports.rollup import rollup

        now = datetime.now(UTC)
        counts = db.session.execute(
            text(
                "SELECT (SELECT count(*) FROM members), (SELECT count(*) FROM purchases),"
                " (SELECT count(*) FROM member_visit_days)"
            )
        ).one()
        out["members"], out["purchases"], out["visit_days_before"] = (int(c) for c in counts)
        db.session.rollback()
        out["floor_rss_mb"] = vm_hwm_mb()
        began = time.monotonic()
        db.session.execute(text("SELECT count(*), sum(paid_fen) FROM purchases")).one()
        db.session.rollback()
        out["baseline_scan_s"] = round(time.monotonic() - began, 2)
        runs = {
            "rebuild_stats": lambda: rebuild_stats(chunk=args.chunk, now=now),
            "nightly": lambda: nightly(now=now),
            "rollup": lambda: rollup(now=now, max_chunks=args.rollup_chunks),
        }
        for name in args.jobs.split(","):
            db.session.remove()
            reset_peak()
            load = round(os.getloadavg()[0], 2)
            began = time.monotonic()
            result = runs[name]()
            seconds = time.monotonic() - began
            out["jobs"][name] = {
                "seconds": round(seconds, 1),
                "peak_rss_mb": vm_hwm_mb(),
                "load_average": load,
                "result": {k: v for k, v in result.items() if isinstance(v, int | float)},
            }
            print(f"[jobs-memory] {name}: {out['jobs'][name]}", file=sys.stderr, flush=True)
        if "rebuild_stats" in out["jobs"] and out["baseline_scan_s"]:
            out["rebuild_vs_scan"] = round(
                out["jobs"]["rebuild_stats"]["seconds"] / out["baseline_scan_s"], 1
            )
    out["load_average_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
