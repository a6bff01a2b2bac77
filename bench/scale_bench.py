"""``make bench-scale``: the engine at ten million members and a year of history.

    .venv/bin/python bench/scale_bench.py [--members 10000000] [--purchases 100000000]
        [--db huiyuan_scale] [--pg-url URL] [--redis-url URL] [--seconds 10] [--load-only]

Loopback only (PostgreSQL at ``--pg-url``, Redis db 12). Steps:

1. says how much disk the load needs (from bytes per member and per purchase measured on this
   schema, partitioned history included) and refuses to start when the file system would
   pass 85 % full;
2. loads, set-based and resumable, into ``--db`` (migrated): the members with their phone
   identities and points accounts (``members_load.py``, chunks of a million), then the
   purchases over 13 months with their ledger entries and points lots, in chunks of
   ``--chunk`` purchases, each one ``INSERT … SELECT generate_series`` transaction recorded in
   ``scale_bench_chunks``: a run that stopped goes on after the last chunk committed;
3. measures, each figure with the load average beside it:
   notify, POS ingest, identify by phone and worker memory by running ``run_all.py`` on the
   same database (``--skip-intel``; its tier review covers every member), identify by member
   code (the same till endpoint, ``member_code``), the year-end expiry of every member's due
   lots (``points.expire`` at 1 January), the RFM/lifecycle job (``intel.rebuild_stats`` then
   ``intel.nightly``), a birthday run (``members.birthdays``) and a KPI month
   (``reports.rollup`` then ``kpis()`` for 30 days);
4. prints one summary line and writes ``bench/results/scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import members_load  # noqa: E402
from run_all import database_url, ensure_database  # noqa: E402

# on-disk bytes per row with indexes, measured on this schema at 100 k members / 1 M purchases
# (2026-11-23: 45 MB of member tables, 848 MB of purchases, entries, lots and their keys)
# (partitioned history, keys tables included); the estimate adds 20 % for WAL and bloat
BYTES_PER_MEMBER = 450
BYTES_PER_PURCHASE = 850
MAX_FULL = 0.85
MONTHS = 13
TARGETS = {
    "identify_p99_ms": 10.0,
    "identify_by_code_p99_ms": 10.0,
    "notify_ratio": 0.25,
    "pos_ingest_ratio": 0.5,
    "expiry_minutes": 30.0,
    "tier_review_minutes": 15.0,
    "rfm_minutes": 15.0,
    "worker_rss_mb": 150.0,
}


def say(text: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {text}", flush=True)


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def needed_bytes(members: int, purchases: int) -> int:
    return int((members * BYTES_PER_MEMBER + purchases * BYTES_PER_PURCHASE) * 1.2)


def check_disk(dsn: str, members: int, purchases: int) -> dict:
    """Refuse (SystemExit) when loading what is missing would fill the disk past 85 %."""
    with psycopg.connect(dsn) as conn:
        data_dir = conn.execute("SHOW data_directory").fetchone()[0]
        have_m = members_load.loaded(conn)
        have_p = _purchases_loaded(conn)
    path = data_dir if os.access(data_dir, os.R_OK) else "/"
    usage = shutil.disk_usage(path)
    need = needed_bytes(max(0, members - have_m), max(0, purchases - have_p))
    after = (usage.used + need) / usage.total
    info = {
        "needed_gb": round(need / 1e9, 1),
        "free_gb": round(usage.free / 1e9, 1),
        "full_after_load": round(after, 3),
        "full_scale_gb": round(needed_bytes(10_000_000, 100_000_000) / 1e9, 1),
    }
    say(
        f"disk: this load needs about {info['needed_gb']} GB, {info['free_gb']} GB free "
        f"({path}); {after:.0%} full afterwards (limit {MAX_FULL:.0%}); the full scale "
        f"(10 M / 100 M) needs about {info['full_scale_gb']} GB"
    )
    if need > usage.free or after > MAX_FULL:
        raise SystemExit(f"not enough disk: refusing to load ({info})")
    return info


def _purchases_loaded(conn: psycopg.Connection) -> int:
    if not conn.execute("SELECT to_regclass('scale_bench_chunks')").fetchone()[0]:
        return 0
    return int(conn.execute("SELECT coalesce(sum(rows), 0) FROM scale_bench_chunks").fetchone()[0])


def make_past_partitions(pg_url: str, db_name: str) -> list[str]:
    """The partitions of the 13 months loaded (the migration makes only this month's and the
    next ones'): without them the history would all sit in the default partitions."""
    from sqlalchemy import create_engine

    from app.common.partitions import PARTITIONED, ensure_month, is_partitioned

    engine = create_engine(database_url(urlparse(pg_url), db_name))
    created = []
    month = datetime.now(UTC).date().replace(day=1)
    with engine.begin() as conn:
        for _ in range(MONTHS + 1):
            for table in PARTITIONED:
                if is_partitioned(conn, table) and ensure_month(conn, table, month):
                    created.append(f"{table}_p{month:%Y%m}")
            month = (month - timedelta(days=1)).replace(day=1)
    engine.dispose()
    return created


def load_purchases(dsn: str, members: int, purchases: int, chunk: int) -> float:
    """Purchases (80 % WeChat, 20 % till) spread over 13 months, each with its earn entry and
    its lot, chunk by chunk; members are the loaded bench members, skewed like real shoppers
    (a few buy often). Returns seconds spent (0 when all chunks are there)."""
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS scale_bench_chunks (chunk int PRIMARY KEY, rows int, "
            "seconds real, loaded_at timestamptz DEFAULT now())"
        )
        done = {r[0] for r in conn.execute("SELECT chunk FROM scale_bench_chunks")}
        m0 = conn.execute(
            "SELECT id FROM members WHERE phone = %s", (members_load.phone(0),)
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO stores (code, name, city, created_at) SELECT 'SCALE' || g, "
            "'scale store ' || g, '上海', now() FROM generate_series(1, 100) g "
            "WHERE NOT EXISTS (SELECT 1 FROM stores WHERE code LIKE 'SCALE%%')"
        )
        s0 = conn.execute("SELECT min(id) FROM stores WHERE code LIKE 'SCALE%%'").fetchone()[0]
    total = -(-purchases // chunk)
    for n in range(total):
        if n in done:
            continue
        lo, hi = n * chunk + 1, min(purchases, (n + 1) * chunk)
        began = time.monotonic()
        with psycopg.connect(dsn) as conn:
            conn.execute(
                """
                WITH g AS (
                    SELECT g,
                           %(m0)s + floor(%(members)s * power(random(), 2))::int AS member_id,
                           %(s0)s + g %% 100 AS store_id,
                           500 + floor(random() * 20000)::int AS fen,
                           now() - (g %% (%(months)s * 30)) * interval '1 day'
                                 - random() * interval '1 day' AS at
                    FROM generate_series(%(lo)s, %(hi)s) g
                ), p AS (
                    INSERT INTO purchases (source, external_id, member_id, store_id, paid_fen,
                        total_fen, discount_fen, multiplier_percent, refunded_fen, points_base,
                        points_earned, occurred_at, created_at)
                    SELECT CASE WHEN g %% 5 = 0 THEN 'pos' ELSE 'wechat' END, 'sc' || g,
                           member_id, store_id, fen, fen, 0, 100, 0, fen / 100, fen / 100, at, at
                    FROM g
                    RETURNING id, member_id, store_id, points_earned, occurred_at
                ), e AS (
                    INSERT INTO points_entries (member_id, points, balance_after, kind,
                        idempotency_key, ref_type, ref_id, store_id, created_at)
                    SELECT member_id, points_earned, 0, 'earn', 'purchase:' || id, 'purchase',
                           id::text, store_id, occurred_at
                    FROM p WHERE points_earned > 0
                    RETURNING id, member_id, points, created_at
                )
                INSERT INTO points_lots (member_id, entry_id, points, remaining, earned_at,
                    expires_at, created_at)
                SELECT member_id, id, points, points, created_at,
                       make_timestamptz(extract(year FROM created_at AT TIME ZONE
                           'Asia/Shanghai')::int + 2, 1, 1, 0, 0, 0, 'Asia/Shanghai'),
                       created_at
                FROM e
                """,
                {
                    "m0": m0,
                    "s0": s0,
                    "members": members,
                    "months": MONTHS,
                    "lo": lo,
                    "hi": hi,
                },
            )
            conn.execute(
                "INSERT INTO scale_bench_chunks (chunk, rows, seconds) VALUES (%s, %s, %s)",
                (n, hi - lo + 1, time.monotonic() - began),
            )
            conn.commit()
        rate = (hi - lo + 1) / (time.monotonic() - began)
        say(f"  purchases {hi:,}/{purchases:,} ({rate:,.0f}/s, load {load_avg()})")
    if time.monotonic() - started > 1:
        say("balances from the lots, then ANALYZE")
        with psycopg.connect(dsn, autocommit=True) as conn:
            top = conn.execute("SELECT max(member_id) FROM points_accounts").fetchone()[0] or 0
            for lo in range(0, top + 1, 1_000_000):
                conn.execute(
                    """UPDATE points_accounts a SET balance = l.s FROM (
                           SELECT member_id, sum(remaining) AS s FROM points_lots
                           WHERE member_id >= %s AND member_id < %s GROUP BY member_id) l
                       WHERE a.member_id = l.member_id AND a.balance <> l.s""",
                    (lo, lo + 1_000_000),
                )
            conn.execute("ANALYZE")
    return time.monotonic() - started


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def results_path(db_name: str, kind: str = "scale") -> Path:
    """``bench/results/scale.json`` for the default database, ``scale_<db>.json`` otherwise."""
    suffix = "" if db_name == "huiyuan_scale" else f"_{db_name}"
    return ROOT / "bench" / "results" / f"{kind}{suffix}.json"


def in_process(pg_url: str, db_name: str, redis_url: str, steps: set[str]) -> dict:
    """The long jobs, in this process (a worker's): expiry, RFM, birthdays, KPI month."""
    from app import create_app
    from app.config import Config

    pg = urlparse(pg_url)
    config = Config.from_env(
        env={},
        ENV="testing",
        SECRET_KEY="scale-bench-" + "x" * 40,
        DATABASE_URL=database_url(pg, db_name),
        REDIS_URL=redis_url,
    )
    app = create_app(config)
    out: dict = {}
    with app.app_context():
        from app.intel.jobs import nightly, rebuild_stats
        from app.members.birthday import send_birthday_coupons
        from app.points.jobs import expire_points
        from app.reports.jobs import rollup
        from app.reports.services import kpis

        now = datetime.now(UTC)
        year_end = datetime(now.year + 1, 1, 1, tzinfo=UTC) - timedelta(hours=8)  # Shanghai

        def timed(name: str, fn) -> object:  # type: ignore[no-untyped-def]
            load = load_avg()
            began = time.monotonic()
            value = fn()
            seconds = time.monotonic() - began
            out[f"{name}_s"] = round(seconds, 1)
            out[f"{name}_load_average"] = load
            say(f"  {name}: {seconds:.1f} s (load {load}): {value}")
            return value

        if "rfm" in steps:
            say("RFM/lifecycle: intel.rebuild_stats, then intel.nightly")
            timed("rebuild_stats", lambda: rebuild_stats(chunk=5000, now=now))
            timed("rfm", lambda: nightly(now=now))
        if "birthdays" in steps:
            say("birthday run (members.birthdays)")
            timed("birthdays", lambda: send_birthday_coupons(now=now))
        if "kpi" in steps:
            say("KPI month: reports.rollup, then kpis() for 30 days")
            timed("rollup", lambda: rollup(now=now))
            today = now.date()
            timed("kpi_month", lambda: len(kpis(today - timedelta(days=29), today)["days"]))
        if "expiry" in steps:  # last: the longest
            say("year-end expiry of every member's due lots (points.expire)")
            run = timed("expiry", lambda: expire_points(now=year_end))
            out["expiry"] = {"members": run.members, "lots": run.lots, "points": run.points}
    out["job_process_rss_mb"] = round(_peak_rss_mb(), 1)
    return out


def http_figures(args: argparse.Namespace) -> dict:
    """run_all.py on this database: notify, POS, identify by phone, worker RSS, tier review."""
    command = [
        sys.executable,
        str(ROOT / "bench" / "run_all.py"),
        "--app-db",
        args.db,
        "--pgbench-db",
        f"{args.db}_pgbench",
        "--members",
        str(args.members),
        "--skip-intel",
        "--seconds",
        str(args.seconds),
        "--pg-url",
        args.pg_url,
        "--redis-url",
        args.redis_url,
        "--results",
        str(results_path(args.db, "scale_http")),
    ]
    load = load_avg()
    subprocess.run(command, check=True, cwd=ROOT)
    figures = json.loads(results_path(args.db, "scale_http").read_text())
    figures["load_average_at_start"] = load
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000_000)
    parser.add_argument("--purchases", type=int, default=100_000_000)
    parser.add_argument("--chunk", type=int, default=250_000, help="purchases per transaction")
    parser.add_argument("--db", default="huiyuan_scale")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--load-only", action="store_true", help="load, then stop")
    parser.add_argument(
        "--steps",
        default="http,rfm,birthdays,kpi,expiry",
        help="measurements to take (comma-separated; default all)",
    )
    args = parser.parse_args()
    pg = urlparse(args.pg_url)
    if pg.hostname not in (None, "127.0.0.1", "localhost", "::1"):
        raise SystemExit("loopback only: --pg-url must point at 127.0.0.1")
    began = time.monotonic()
    ensure_database(args.pg_url, args.db, fresh=False)
    dsn = database_url(pg, args.db, "postgresql")
    env = {
        **os.environ,
        "DATABASE_URL": database_url(pg, args.db),
        "SECRET_KEY": "scale-bench-key-0123456789abcdefghijklmnop",
    }
    say(f"migrating {args.db}")
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "flask"), "--app", "wsgi", "db", "upgrade"],
        check=True,
        cwd=ROOT,
        env=env,
        capture_output=True,
    )
    disk = check_disk(dsn, args.members, args.purchases)
    say(f"members: {args.members:,} (load {load_avg()})")
    members, members_s = members_load.ensure_members(dsn, args.members, progress=say)
    made = make_past_partitions(args.pg_url, args.db)
    say(f"{len(made)} monthly partitions made for the months loaded")
    say(f"purchases: {args.purchases:,} over {MONTHS} months, chunks of {args.chunk:,}")
    purchases_s = load_purchases(dsn, args.members, args.purchases, args.chunk)
    with psycopg.connect(dsn) as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        have_p = _purchases_loaded(conn)
    say(f"loaded: {members:,} members, {have_p:,} purchases, database {size / 1e9:.2f} GB")
    results: dict = {
        "members": members,
        "purchases": have_p,
        "database_gb": round(size / 1e9, 2),
        "bytes_per_purchase_and_member": round(size / max(1, have_p + members), 1),
        "load": {"members_s": round(members_s, 1), "purchases_s": round(purchases_s, 1)},
        "disk": disk,
    }
    if args.load_only:
        print(json.dumps(results))
        return 0
    steps = set(args.steps.split(","))
    http = http_figures(args) if "http" in steps else {}
    jobs = in_process(args.pg_url, args.db, args.redis_url, steps)

    def minutes(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds / 60, 2)

    tier_s = http.get("tier_review", {}).get("seconds")
    rfm_parts = [jobs.get("rebuild_stats_s"), jobs.get("rfm_s")]
    results.update(
        {
            "identify_p99_ms": http.get("identify_p99_ms"),
            "identify_by_code_p99_ms": http.get("identify_by_code_p99_ms"),
            "notify_ratio": http.get("notify_ratio"),
            "pos_ingest_ratio": http.get("pos_ingest_ratio"),
            "worker_rss_mb": max(http.get("worker_rss_mb", 0), jobs["job_process_rss_mb"]),
            "http_load_average_at_start": http.get("load_average_at_start"),
            "expiry_minutes": minutes(jobs.get("expiry_s")),
            "tier_review_minutes": minutes(tier_s),
            "rfm_minutes": minutes(sum(rfm_parts)) if None not in rfm_parts else None,
            "rfm_nightly_minutes": minutes(jobs.get("rfm_s")),
            "birthday_run_s": jobs.get("birthdays_s"),
            "kpi_month_s": jobs.get("kpi_month_s"),
            "steps": sorted(steps),
            "jobs": jobs,
            "http": {
                k: http[k] for k in ("notify", "pos_ingest", "identify", "workers") if k in http
            },
            "targets": TARGETS,
            "cores": os.cpu_count(),
            "load_average_at_end": load_avg(),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "total_seconds": round(time.monotonic() - began, 1),
        }
    )
    out = results_path(args.db)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    missed = [
        k
        for k, target in TARGETS.items()
        if results.get(k) is not None
        and (results[k] < target if k.endswith("ratio") else results[k] > target)
    ]
    figures = " ".join(
        f"{k}={results[k]}"
        for k in (
            "identify_p99_ms",
            "identify_by_code_p99_ms",
            "notify_ratio",
            "pos_ingest_ratio",
            "expiry_minutes",
            "tier_review_minutes",
            "rfm_minutes",
            "birthday_run_s",
            "kpi_month_s",
            "worker_rss_mb",
        )
        if results.get(k) is not None
    )
    print(
        f"SCALE {results['measured_at']} members={members} purchases={have_p} {figures} "
        f"load_avg={results['http_load_average_at_start']}/{results['load_average_at_end']} "
        f"missed={','.join(missed) or 'none'} -> {out.relative_to(ROOT)}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
