"""The year-end expiry (``points.expire``) on a PostgreSQL database loaded for it.

    .venv/bin/python bench/expiry_bench.py --db-url postgresql+psycopg://postgres@127.0.0.1/DB
        [--members 20000] [--lots 5] [--chunk 0] [--baseline-members 1000] [--runners 1]
        [--redis-url redis://127.0.0.1:6379/7]

Wipes the database's ``public`` schema and migrates it, then loads, set-based (``INSERT …
SELECT generate_series``), ``--members`` members each with ``--lots`` lots due (earned in 2024,
expired at the 2026 Shanghai year end) and one lot that is not due yet, with their earn entries
and balances.

Baseline, same run, same database: the first ``--baseline-members`` members' due lots expired
lot by lot, one ``post_entry`` per lot under the member's lock, 200 members per transaction
(how the job worked before it was set-based). Then the job (``points.expire``) expires the rest
in this process. For each: lots per second (wall), the CPU time of this process and of the
database backends (from ``/proc``, the server being local) and CPU milliseconds per lot, with
the load average at start and end. Prints the ratio job ÷ baseline (lots per second) and the
audit (balances = ledger, lots = balances) after the run; exits 1 on an audit difference.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import members_load  # noqa: E402


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def backend_cpu(dsn: str, db_name: str) -> dict[int, float]:
    """CPU seconds (user + system) of each server backend connected to ``db_name``."""
    out = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        pids = [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (db_name,),
            )
        ]
    for pid in pids:
        cpu = proc_cpu(pid)
        if cpu is not None:
            out[pid] = cpu
    return out


def proc_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of process ``pid``, from ``/proc``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(dsn: str, members: int, lots: int) -> None:
    members_load.ensure_members(dsn, members)
    with psycopg.connect(dsn) as conn:
        conn.execute(
            """
            WITH g AS (
                SELECT m.id AS member_id, k,
                       CASE WHEN k <= %(lots)s THEN timestamptz '2024-06-01 04:00+00'
                            ELSE now() - interval '1 day' END AS earned_at,
                       CASE WHEN k <= %(lots)s THEN timestamptz '2026-01-01 00:00+08'
                            ELSE timestamptz '2099-01-01 00:00+08' END AS expires_at,
                       1 + (m.id + k) %% 50 AS points
                FROM members m, generate_series(1, %(lots)s + 1) k
                WHERE m.source = 'bench'
            ), e AS (
                INSERT INTO points_entries (member_id, points, balance_after, kind,
                    idempotency_key, created_at)
                SELECT member_id, points, 0, 'earn',
                       'bench:' || member_id || ':' || k || ':' || expires_at, earned_at
                FROM g
                RETURNING id, member_id, points, created_at, idempotency_key
            )
            INSERT INTO points_lots (member_id, entry_id, points, remaining, earned_at,
                expires_at, created_at)
            SELECT e.member_id, e.id, e.points, e.points, e.created_at,
                   CASE WHEN e.created_at < timestamptz '2025-01-01' THEN
                        timestamptz '2026-01-01 00:00+08'
                        ELSE timestamptz '2099-01-01 00:00+08' END,
                   e.created_at
            FROM e
            """,
            {"lots": lots},
        )
        conn.execute(
            """UPDATE points_accounts a SET balance = l.s FROM (
                   SELECT member_id, sum(remaining) AS s FROM points_lots GROUP BY member_id) l
               WHERE a.member_id = l.member_id"""
        )
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")


def measured(dsn: str, db_name: str, fn) -> dict:  # type: ignore[no-untyped-def]
    load_start = load_avg()
    server_before = backend_cpu(dsn, db_name)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = time.process_time() + children.ru_utime + children.ru_stime
    began = time.monotonic()
    lots = fn()
    seconds = time.monotonic() - began
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = time.process_time() + children.ru_utime + children.ru_stime - cpu_before
    server_after = backend_cpu(dsn, db_name)
    server_cpu = sum(v - server_before.get(pid, 0.0) for pid, v in server_after.items())
    return {
        "lots": lots,
        "seconds": round(seconds, 2),
        "lots_per_second": round(lots / seconds, 1) if seconds else None,
        "client_cpu_s": round(client_cpu, 2),
        "server_cpu_s": round(server_cpu, 2),
        "cpu_ms_per_lot": round(1000 * (client_cpu + server_cpu) / max(lots, 1), 3),
        "load_average": [load_start, load_avg()],
    }


def make_app(db_url: str, redis_url: str):  # type: ignore[no-untyped-def]
    from app import create_app
    from app.config import Config

    return create_app(
        Config.from_env(
            env={},
            ENV="testing",
            SECRET_KEY="expiry-bench-" + "x" * 40,
            DATABASE_URL=db_url,
            REDIS_URL=redis_url,
        )
    )


def runner(db_url: str, redis_url: str, now: datetime, chunk: int, run_key: str) -> dict:
    """One runner of the job's run ``run_key`` (in its own process)."""
    from sqlalchemy import text

    from app.extensions import db
    from app.points.jobs import expire_points

    with make_app(db_url, redis_url).app_context():
        counts = expire_points(now=now, batch_size=chunk, run_key=run_key).as_dict()
        # this runner's database backend ends with the process: its CPU is read here
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        db.session.rollback()
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {**counts, "backend_cpu_s": proc_cpu(pid), "rss_mb": round(rss_mb, 1)}


def lot_by_lot(member_ids: list[int], now: datetime) -> int:
    """The baseline: each due lot its own ``post_entry``, 200 members per transaction."""
    from sqlalchemy import select

    from app.db import unit_of_work
    from app.extensions import db
    from app.points.models import PointsLot
    from app.points.services import lock_account, post_entry

    count = 0
    for start in range(0, len(member_ids), 200):
        with unit_of_work():
            for member_id in member_ids[start : start + 200]:
                lock_account(member_id)
                due = db.session.scalars(
                    select(PointsLot)
                    .where(PointsLot.member_id == member_id, PointsLot.remaining > 0)
                    .where(PointsLot.expires_at <= now)
                    .order_by(PointsLot.expires_at, PointsLot.id)
                ).all()
                for lot in due:
                    post_entry(
                        member_id,
                        -lot.remaining,
                        kind="expire",
                        idempotency_key=f"expire:lot:{lot.id}",
                        ref_type="lot",
                        ref_id=str(lot.id),
                        from_lot=lot.id,
                        reason=f"points expired at {lot.expires_at.isoformat()}",
                    )
                    count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url", required=True, help="SQLAlchemy URL (postgresql+psycopg)")
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--lots", type=int, default=5, help="due lots per member")
    parser.add_argument("--chunk", type=int, default=0, help="members per chunk (0: default)")
    parser.add_argument("--baseline-members", type=int, default=1000)
    parser.add_argument("--runners", type=int, default=1, help="processes sharing the run")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    args = parser.parse_args()
    dsn = args.db_url.replace("postgresql+psycopg://", "postgresql://")
    db_name = dsn.rsplit("/", 1)[1]

    from flask_migrate import upgrade
    from sqlalchemy import select, text

    app = make_app(args.db_url, args.redis_url)
    with app.app_context():
        from app.extensions import db
        from app.points.jobs import expire_points
        from app.points.lots import lot_differences
        from app.points.services import audit_differences

        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        upgrade()
        db.session.remove()
        began = time.monotonic()
        load(dsn, args.members, args.lots)
        loaded_s = time.monotonic() - began
        from app.members.models import Member

        now = datetime(2026, 1, 1, tzinfo=UTC)
        first = list(
            db.session.scalars(select(Member.id).order_by(Member.id).limit(args.baseline_members))
        )
        db.session.rollback()
        baseline = measured(dsn, db_name, lambda: lot_by_lot(first, now))
        runs = []
        extra_server_cpu = [0.0]  # the runner processes' backends, gone by the end

        def job() -> int:
            if args.runners <= 1:
                run = expire_points(now=now, batch_size=args.chunk, run_key="bench")
                runs.append(run.as_dict())
                return run.lots
            context = multiprocessing.get_context("spawn")
            with context.Pool(args.runners) as pool:
                done = pool.starmap(
                    runner,
                    [(args.db_url, args.redis_url, now, args.chunk, "bench")] * args.runners,
                )
            # every runner answers the whole run's counts
            runs.append({k: v for k, v in done[0].items() if k not in ("backend_cpu_s", "rss_mb")})
            extra_server_cpu[0] = sum(d["backend_cpu_s"] or 0.0 for d in done)
            return done[0]["lots"]

        measured_job = measured(dsn, db_name, job)
        if extra_server_cpu[0]:
            measured_job["server_cpu_s"] = round(
                measured_job["server_cpu_s"] + extra_server_cpu[0], 2
            )
            cpu = measured_job["client_cpu_s"] + measured_job["server_cpu_s"]
            measured_job["cpu_ms_per_lot"] = round(1000 * cpu / max(measured_job["lots"], 1), 3)
        audit = len(audit_differences()) + len(lot_differences())
    ratio = None
    if baseline["lots_per_second"] and measured_job["lots_per_second"]:
        ratio = round(measured_job["lots_per_second"] / baseline["lots_per_second"], 1)
    out = {
        "members": args.members,
        "due_lots_per_member": args.lots,
        "load_seconds": round(loaded_s, 1),
        "baseline_lot_by_lot": {"members": len(first), **baseline},
        "job": {"runners": args.runners, "expired": runs[0], **measured_job},
        "ratio_lots_per_second": ratio,
        "audit_differences": audit,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(out))
    expected = (args.members - len(first)) * args.lots
    return 0 if audit == 0 and measured_job["lots"] == expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
