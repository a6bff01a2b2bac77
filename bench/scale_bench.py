"""``make bench-scale``: the engine at ten million members and a year of history.

    .venv/bin/python bench/scale_bench.py [--members 10000000] [--purchases 100000000]
        [--db huiyuan_scale] [--pg-url URL] [--redis-url URL] [--seconds 10] [--load-only]
        [--steps http,expiry,rfm,birthdays,kpi] [--tablespace DIR --disk-path DIR
        --compression 3] [--expiry-runners 2] [--expiry-chunk 1000]

Loopback only (PostgreSQL at ``--pg-url``, Redis db 12). Steps:

1. says how much disk the load needs (bytes per member and per purchase measured with this
   loader, WAL and index-build sort files) and refuses to start when it is not free or the file
   system would pass 85 % full;
2. loads, set-based and resumable, into ``--db`` (migrated): the members with their phone
   identities and points accounts (``members_load.py``, chunks of a million), then the
   purchases over 13 months with their keys, ledger entries and points lots, by two writers in
   chunks of ``--chunk`` purchases (``load_purchases``), each chunk a transaction recorded in
   ``scale_bench_parts``: a run that stopped goes on after the last chunk committed;
3. measures, each figure with the load average beside it:
   notify, POS ingest, identify by phone and worker memory by running ``run_all.py`` on the
   same database (``--skip-intel``; its tier review covers every member), identify by member
   code (the same till endpoint, ``member_code``), the year-end expiry of every member's due
   lots (``points.expire`` at 1 January), the RFM/lifecycle job (``intel.rebuild_stats`` then
   ``intel.nightly``), a birthday run (``members.birthdays``) and a KPI month
   (``reports.rollup`` then ``kpis()`` for 30 days), in the order of ``--steps``;
4. writes ``bench/results/scale.json`` after every step (a later run on the same load keeps the
   figures of the steps it does not take again) and prints one summary line.
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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import members_load  # noqa: E402
from run_all import database_url, ensure_database  # noqa: E402

# on-disk bytes per row with indexes, measured with this loader at 1 M members / 10 M purchases
# (2026-11-24, docs/scaling.md): a member with its phone identity and points account 372; a
# purchase with its key row, earn entry, entry key row and lot, all their indexes, 830 (9-digit
# ids; the 10-digit ids of 100 M add a byte to each text key), 84.6 less since the partitions
# lost their key indexes (migration 0020_key_lookups: 618.9 against 743.5 bytes of purchases,
# entries and lots at 200 k / 2 M, the other with a 40-byte wider member index). The estimate
# adds 5 % (free-space maps, the catalog, the other tables), twice max_wal_size of WAL
# (checkpoints lag a bulk load) and the sort files of the two index builds running after the
# load (TEMP_BYTES_PER_PURCHASE)
BYTES_PER_MEMBER = 380
BYTES_PER_PURCHASE = 756
TEMP_BYTES_PER_PURCHASE = 50
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


def needed_bytes(members: int, purchases: int, wal_bytes: int = 2 * 1024**3) -> int:
    """Disk a load of ``members`` and ``purchases`` takes at its peak: the rows and indexes,
    5 %, ``wal_bytes`` of WAL and the index builds' sort files."""
    rows = members * BYTES_PER_MEMBER + purchases * BYTES_PER_PURCHASE
    return int(rows * 1.05) + wal_bytes + purchases * TEMP_BYTES_PER_PURCHASE


def check_disk(
    dsn: str, members: int, purchases: int, path: str | None = None, compression: float = 1.0
) -> dict:
    """Refuse (SystemExit) when loading what is missing would fill the disk past 85 %.

    ``path`` is a directory on the file system that holds the rows (default: the server's
    data directory); ``compression`` the factor by which that file system shrinks them (a
    tablespace on btrfs with ``compress=zstd``, or ZFS with ``compression=lz4``: measure it
    with a small load first). The WAL stays in the data directory, uncompressed."""
    with psycopg.connect(dsn) as conn:
        data_dir = path or conn.execute("SHOW data_directory").fetchone()[0]
        wal = (
            2
            * conn.execute(
                "SELECT setting::bigint * 1024 * 1024 FROM pg_settings WHERE name = 'max_wal_size'"
            ).fetchone()[0]
        )
        have_m = members_load.loaded(conn)
        have_p = _purchases_loaded(conn)
    path = data_dir if os.access(data_dir, os.R_OK) else "/"
    usage = shutil.disk_usage(path)
    rows = needed_bytes(max(0, members - have_m), max(0, purchases - have_p), 0)
    need = int(rows / compression) + wal if rows else 0  # loaded: the WAL it had is recycled
    after = (usage.used + need) / usage.total
    info = {
        "needed_gb": round(need / 1e9, 1),
        "free_gb": round(usage.free / 1e9, 1),
        "full_after_load": round(after, 3),
        "full_scale_gb": round(needed_bytes(10_000_000, 100_000_000, wal) / 1e9, 1),
        "compression": compression,
        "path": path,
    }
    say(
        f"disk: this load needs about {info['needed_gb']} GB (rows shrunk {compression}x by "
        f"the file system), {info['free_gb']} GB free ({path}); {after:.0%} full afterwards "
        f"(limit {MAX_FULL:.0%}); the full scale (10 M / 100 M) needs about "
        f"{info['full_scale_gb']} GB uncompressed"
    )
    if need > usage.free or after > MAX_FULL:
        raise SystemExit(f"not enough disk: refusing to load ({info})")
    return info


def _purchases_loaded(conn: psycopg.Connection) -> int:
    """Purchases whose rows are all written (by both writers)."""
    if not conn.execute("SELECT to_regclass('scale_bench_parts')").fetchone()[0]:
        return 0
    per_writer = conn.execute(
        "SELECT sum(rows) FROM scale_bench_parts WHERE chunk >= 0 GROUP BY writer"
    ).fetchall()
    return int(min(r[0] for r in per_writer)) if len(per_writer) == len(WRITERS) else 0


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


# the loaded tables, and the indexes taken off during the load and built afterwards: the ones
# whose keys arrive in random order (a member, a store), which would cost a random page write
# per row; every other index (primary keys, the keys tables' unique keys, the ledger's key)
# receives ascending keys from a single writer and stays, so uniqueness is checked as rows go in
LOADED = ("purchases", "purchases_keys", "points_entries", "points_entries_keys", "points_lots")
DEFERRED_INDEXES = (
    "ix_purchases_member_id",
    "ix_purchases_store_id",
    "ix_points_entries_member_id",
    "ix_points_lots_open",
)
STORES = 100


def _u(stream: int) -> str:
    """A uniform [0, 1) number drawn from ``g`` (the purchase's number) and ``stream``:
    deterministic, so a chunk written again, or by the other writer, draws the same values."""
    return f"((hashint8extended(g, {stream}) & 9007199254740991)::float8 / 9007199254740992.0)"


def _store(member: str) -> str:
    """The store of purchase ``g`` by the member ``member`` (an offset from the first bench
    member, as SQL): four purchases in five at the member's own store, as shoppers keep to
    theirs, the fifth at any."""
    return f"(%(s0)s + (CASE WHEN {_u(4)} < 0.8 THEN {member} ELSE g END %% {STORES})::int)"


# one purchase ``g`` (1 … N): every column any writer needs, as SQL over generate_series
_PURCHASE = f"""
    SELECT g,
           %(base)s::bigint + g AS pid,
           CASE WHEN g %% 5 = 0 THEN 'pos' ELSE 'wechat' END AS source,
           'sc' || (%(base)s::bigint + g) AS external_id,
           %(m0)s + floor(%(members)s * power({_u(1)}, 2))::int AS member_id,
           {_store(f"floor(%(members)s * power({_u(1)}, 2))::bigint")} AS store_id,
           500 + floor({_u(2)} * 20000)::int AS fen,
           to_timestamp(%(start)s + ((g - 1) + {_u(3)}) * %(step)s) AS at
    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g
"""
_EXPIRES = (
    "make_timestamptz(extract(year FROM at AT TIME ZONE 'Asia/Shanghai')::int + 2, 1, 1, "
    "0, 0, 0, 'Asia/Shanghai')"
)
# the rows the engine writes for a purchase's earn (app/points/purchases.py, credit_points):
# the purchase and its key, one earn entry keyed purchase:<id>:earn and its key, one lot
# expiring at the end of the next local year (POINTS_EXPIRY year_end_next); points = fen // 100
WRITERS: dict[str, tuple[str, ...]] = {
    "purchases": (
        f"""INSERT INTO purchases (id, source, external_id, member_id, store_id, paid_fen,
                total_fen, discount_fen, multiplier_percent, refunded_fen, points_base,
                points_earned, occurred_at, created_at)
            SELECT pid, source, external_id, member_id, store_id, fen, fen, 0, 100, 0,
                   fen / 100, fen / 100, at, at FROM ({_PURCHASE}) p""",
        f"""INSERT INTO points_lots (id, member_id, entry_id, points, remaining, earned_at,
                expires_at, created_at)
            SELECT pid, member_id, pid, fen / 100, fen / 100, at, {_EXPIRES}, at
            FROM ({_PURCHASE}) p""",
    ),
    "entries": (
        f"""INSERT INTO points_entries (id, member_id, points, balance_after, kind,
                idempotency_key, ref_type, ref_id, store_id, created_at)
            SELECT pid, member_id, fen / 100, 0, 'earn', 'purchase:' || pid || ':earn',
                   'purchase', source || ':' || external_id, store_id, at
            FROM ({_PURCHASE}) p""",
        f"""INSERT INTO points_entries_keys (idempotency_key, id, created_at)
            SELECT 'purchase:' || pid || ':earn', pid, at FROM ({_PURCHASE}) p""",
        f"""INSERT INTO purchases_keys (source, external_id, id, created_at)
            SELECT source, external_id, pid, at FROM ({_PURCHASE}) p""",
    ),
}
WRITER_NUMBER = {"purchases": 0, "entries": 1}
DONE = -1  # scale_bench_parts.chunk of the finishing steps (indexes, balances, ANALYZE)


def _setup(conn: psycopg.Connection, members: int, purchases: int) -> dict:
    """The load's parameters, fixed at its first run and read back when it resumes."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS scale_bench_plan (members int, purchases bigint, "
        "base bigint, m0 int, s0 int, start double precision, step double precision)"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS scale_bench_parts (chunk int, writer int, rows bigint, "
        "seconds real, cpu_seconds real, loaded_at timestamptz DEFAULT now(), "
        "PRIMARY KEY (chunk, writer))"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS scale_bench_indexes (name text PRIMARY KEY, definition text)"
    )
    row = conn.execute(
        "SELECT members, purchases, base, m0, s0, start, step FROM scale_bench_plan"
    ).fetchone()
    if row is not None:
        plan = dict(
            zip(("members", "purchases", "base", "m0", "s0", "start", "step"), row, strict=True)
        )
        if (plan["members"], plan["purchases"]) != (members, purchases):
            raise SystemExit(
                f"this database was loaded for {plan['members']:,} members and "
                f"{plan['purchases']:,} purchases: use those, or another --db"
            )
        return plan
    if conn.execute("SELECT to_regclass('scale_bench_chunks')").fetchone()[0]:
        raise SystemExit("this database was loaded by the earlier loader: drop it first")
    m0 = conn.execute(
        "SELECT id FROM members WHERE phone = %s", (members_load.phone(0),)
    ).fetchone()[0]
    # the references the switched-off foreign-key triggers would check: the members drawn from
    # are m0 … m0 + members - 1, all there
    have = conn.execute(
        "SELECT count(*) FROM members WHERE id >= %s AND id < %s", (m0, m0 + members)
    ).fetchone()[0]
    if have != members:
        raise SystemExit(f"members {m0} … {m0 + members - 1} are not contiguous ({have:,} found)")
    conn.execute(
        "INSERT INTO stores (code, name, city, created_at) SELECT 'SCALE' || g, "
        "'scale store ' || g, '上海', now() FROM generate_series(1, %s) g "
        "WHERE NOT EXISTS (SELECT 1 FROM stores WHERE code LIKE 'SCALE%%')",
        (STORES,),
    )
    s0, count = conn.execute(
        "SELECT min(id), count(*) FROM stores WHERE code LIKE 'SCALE%%'"
    ).fetchone()
    if (
        count != STORES
        or conn.execute(
            "SELECT max(id) - min(id) + 1 FROM stores WHERE code LIKE 'SCALE%%'"
        ).fetchone()[0]
        != STORES
    ):
        raise SystemExit("the SCALE stores are not contiguous")
    # ids of one width (10^digits …), so the text keys built from them ascend with them
    top = max(
        conn.execute(f"SELECT coalesce(max(id), 0) FROM {t}").fetchone()[0]
        for t in ("purchases", "points_entries", "points_lots")
    )
    base = 10 ** len(str(purchases))
    if top >= base:
        raise SystemExit(f"ids up to {top} already used: load into an empty history")
    now = time.time()
    start = now - MONTHS * 30 * 86400
    plan = {
        "members": members,
        "purchases": purchases,
        "base": base,
        "m0": m0,
        "s0": s0,
        "start": start,
        "step": (now - start) / purchases,
    }
    conn.execute(
        "INSERT INTO scale_bench_plan VALUES (%(members)s, %(purchases)s, %(base)s, %(m0)s, "
        "%(s0)s, %(start)s, %(step)s)",
        plan,
    )
    return plan


def _defer_indexes(conn: psycopg.Connection) -> None:
    """Record, then drop, the indexes built after the load (once)."""
    recorded = {r[0] for r in conn.execute("SELECT name FROM scale_bench_indexes")}
    for name in DEFERRED_INDEXES:
        if name in recorded:  # dropped by an earlier run (or already built again)
            continue
        definition = conn.execute("SELECT pg_get_indexdef(to_regclass(%s))", (name,)).fetchone()[0]
        if definition is None:
            raise SystemExit(f"index {name} not found: is the database migrated?")
        with conn.transaction():
            conn.execute(
                "INSERT INTO scale_bench_indexes VALUES (%s, %s)",
                (name, definition.replace(" ON ONLY ", " ON ")),
            )
            conn.execute(f"DROP INDEX {name}")


def _write_chunks(dsn: str, writer: str, plan: dict, chunk: int, done: set) -> None:
    """One writer's chunks, in order (its keys ascend): each chunk one transaction, recorded."""
    total = -(-plan["purchases"] // chunk)
    number = WRITER_NUMBER[writer]
    with psycopg.connect(dsn) as conn:
        members_load.bulk_session(conn)
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        for n in range(total):
            if (n, number) in done:
                continue
            lo, hi = n * chunk + 1, min(plan["purchases"], (n + 1) * chunk)
            began, cpu = time.monotonic(), backend_cpu(backend)
            for sql in WRITERS[writer]:
                cur = conn.execute(sql, {**plan, "lo": lo, "hi": hi})
                if cur.rowcount != hi - lo + 1:  # every purchase has its key, entry and lot
                    raise RuntimeError(
                        f"{writer} chunk {n}: {cur.rowcount} rows, not {hi - lo + 1}"
                    )
            seconds = time.monotonic() - began
            used = None if cpu is None else backend_cpu(backend) - cpu
            conn.execute(
                "INSERT INTO scale_bench_parts (chunk, writer, rows, seconds, cpu_seconds) "
                "VALUES (%s, %s, %s, %s, %s)",
                (n, number, hi - lo + 1, seconds, used),
            )
            conn.commit()
            say(
                f"  {writer} {hi:,}/{plan['purchases']:,} "
                f"({(hi - lo + 1) / seconds:,.0f}/s, "
                f"{'?' if used is None else f'{used:.1f}'} CPU s, load {load_avg()})"
            )


def backend_cpu(pid: int) -> float | None:
    """CPU seconds a PostgreSQL backend has used (``/proc``: a local server, readable by this
    user), or None: on a shared machine it tells what a chunk costs whatever the load."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _parallel(jobs: list, workers: int = 2) -> None:
    """Run the callables on ``workers`` threads (each opens its own connection); the first
    error is raised once all have stopped."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()


def _build_index(dsn: str, name: str, definition: str) -> None:
    began = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        cpu = backend_cpu(backend)
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 0")  # two builds share the cores
        if conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is None:
            conn.execute(definition)
        used = None if cpu is None else f"{backend_cpu(backend) - cpu:.1f}"
    say(f"  index {name}: {time.monotonic() - began:.0f} s, {used} CPU s (load {load_avg()})")


def _finish(dsn: str, plan: dict) -> None:
    """After the last chunk: the deferred indexes (two builds at a time), the sequences, the
    balances (the sum of each member's lots), ANALYZE; recorded as chunk ``DONE``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        indexes = conn.execute("SELECT name, definition FROM scale_bench_indexes").fetchall()
    _parallel([lambda n=n, d=d: _build_index(dsn, n, d) for n, d in indexes])
    with psycopg.connect(dsn) as conn:
        members_load.bulk_session(conn)
        conn.execute("SET work_mem = '512MB'")
        top = plan["base"] + plan["purchases"]
        for table in ("purchases", "points_entries", "points_lots"):
            conn.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", (table, top))
        say("balances: each member's points, from the same draws as the rows")
        began = time.monotonic()
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        cpu = backend_cpu(backend)
        conn.execute(
            # in member order: the planner, which cannot count the draws' groups, probes the
            # accounts by key for each one; in random order that dirtied a random page per row,
            # which at 10 M accounts (730 MB) were written back again and again
            f"""UPDATE points_accounts a SET balance = s.points FROM (
                    SELECT member_id, sum(fen / 100) AS points FROM ({_PURCHASE}) p
                    GROUP BY member_id ORDER BY member_id) s
                WHERE a.member_id = s.member_id""",
            {**plan, "lo": 1, "hi": plan["purchases"]},
        )
        used = None if cpu is None else backend_cpu(backend) - cpu
        conn.execute(
            "INSERT INTO scale_bench_parts (chunk, writer, rows, seconds, cpu_seconds) "
            "VALUES (%s, 0, 0, %s, %s)",
            (DONE, time.monotonic() - began, used),
        )
        conn.commit()
        say(f"  balances: {time.monotonic() - began:.0f} s, {used} CPU s (load {load_avg()})")
    with psycopg.connect(dsn, autocommit=True) as conn:
        say("VACUUM FULL points_accounts (the balance update left a dead row per member), ANALYZE")
        began = time.monotonic()
        conn.execute("VACUUM (FULL, ANALYZE) points_accounts")
        conn.execute("ANALYZE")
        say(f"  VACUUM FULL and ANALYZE: {time.monotonic() - began:.0f} s (load {load_avg()})")


STATS = -2  # scale_bench_parts.chunk of the members' stats (load_stats)
_MONTH = "date_trunc('month', timezone('Asia/Shanghai', at))::date"


def _stage_sql(db_url: str, at: datetime) -> str:
    """The engine's lifecycle rule (``intel.jobs.stage_expression``) at ``at``, as SQL over a
    relation named ``member_stats``."""
    from expiry_bench import make_app
    from sqlalchemy.dialects import postgresql

    app = make_app(db_url, None)
    with app.app_context():
        from app.extensions import db
        from app.intel.jobs import stage_expression

        try:
            expression = stage_expression(at)
            return str(
                expression.compile(
                    dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
                )
            )
        finally:
            db.session.remove()
            db.engine.dispose()  # its pooled connection, closed now rather than by the GC


def load_stats(dsn: str, db_url: str) -> float:
    """The members' stats as the engine keeps them, so that the RFM/lifecycle figure measures
    the nightly job and not a one-off rebuild: each member's monthly rows per store (visits and
    money), as the purchase hooks (``intel.on_purchases_applied``) add them, and a stats row
    with the totals, first and last purchase and the last one's store, also theirs, and the
    stage last night's job left (the engine's rule at this time yesterday). The 12-month
    windows and RFM scores are left to the night (``window_month`` and the scores empty), as
    on the first night of a month, when every member's window moves. Two statements over the
    draws, one transaction, recorded as chunk ``STATS``. Returns seconds spent (0 when done
    before)."""
    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT 1 FROM scale_bench_parts WHERE chunk = %s", (STATS,)).fetchone():
            return 0.0
        plan = dict(
            zip(
                ("members", "purchases", "base", "m0", "s0", "start", "step"),
                conn.execute(
                    "SELECT members, purchases, base, m0, s0, start, step FROM scale_bench_plan"
                ).fetchone(),
                strict=True,
            )
        )
        stage = _stage_sql(db_url, datetime.now(UTC) - timedelta(days=1))
        members_load.bulk_session(conn)
        conn.execute("SET work_mem = '1GB'")
        began = time.monotonic()
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        cpu = backend_cpu(backend)
        params = {**plan, "lo": 1, "hi": plan["purchases"]}
        say("member stats: the monthly rows per member and store")
        months = conn.execute(
            f"""INSERT INTO member_store_months (member_id, store_id, month, visits, payer_fen)
                SELECT member_id, store_id, {_MONTH}, count(*), sum(fen) FROM ({_PURCHASE}) p
                GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
            params,
        ).rowcount
        say(f"  {months:,} monthly rows ({time.monotonic() - began:.0f} s, load {load_avg()})")
        rows = conn.execute(
            f"""INSERT INTO member_stats (member_id, joined_at, join_channel, join_store_id,
                    first_purchase_at, last_purchase_at, last_store_id, purchase_count,
                    payer_fen_total, window_month, purchases_12m, payer_fen_12m, lifecycle,
                    lifecycle_since, updated_at)
                SELECT member_id, joined_at, join_channel, join_store_id, first_purchase_at,
                       last_purchase_at, last_store_id, purchase_count, payer_fen_total, NULL,
                       0, 0, {stage},
                       CASE WHEN {stage} = 'new' THEN joined_at ELSE last_purchase_at END, now()
                FROM (
                    SELECT m.id AS member_id, m.created_at AS joined_at,
                           m.source AS join_channel, m.join_store_id,
                           s.first AS first_purchase_at, s.last AS last_purchase_at,
                           CASE WHEN s.g IS NOT NULL THEN
                               (SELECT {_store("m.id - %(m0)s")} FROM (SELECT s.g AS g) AS one)
                           END AS last_store_id,
                           coalesce(s.n, 0) AS purchase_count,
                           coalesce(s.fen, 0) AS payer_fen_total
                    FROM members m LEFT JOIN (
                        SELECT member_id, count(*) AS n, sum(fen) AS fen, min(at) AS first,
                               max(at) AS last, max(g) AS g
                        FROM ({_PURCHASE}) p GROUP BY member_id) s ON s.member_id = m.id
                    WHERE m.id >= %(m0)s AND m.id < %(m0)s + %(members)s
                ) AS member_stats
                ORDER BY member_id""",
            params,
        ).rowcount
        used = None if cpu is None else backend_cpu(backend) - cpu
        conn.execute(
            "INSERT INTO scale_bench_parts (chunk, writer, rows, seconds, cpu_seconds) "
            "VALUES (%s, 0, %s, %s, %s)",
            (STATS, rows, time.monotonic() - began, used),
        )
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE member_store_months")
        conn.execute("ANALYZE member_stats")
    seconds = time.monotonic() - began
    say(f"  {rows:,} stats rows: {seconds:.0f} s in all, {used} CPU s (load {load_avg()})")
    return seconds


def load_purchases(dsn: str, members: int, purchases: int, chunk: int) -> float:
    """Purchases (80 % WeChat, 20 % till) spread evenly over 13 months up to now, each with the
    rows the engine writes for it: its key, its earn entry and that entry's key, its lot.
    Members are the loaded bench members, skewed like real shoppers (a few buy often).
    Returns seconds spent (0 when everything was there).

    Set-based and resumable: two writers run side by side on their own connections, one the
    purchases and their lots, the other the entries, their keys and the purchases' keys (about
    the same bytes each), each ``--chunk`` purchases per transaction recorded in
    ``scale_bench_parts``, drawing the same rows from the purchase's number
    (``hashint8extended``); each table has one writer, so its ids and keys arrive in order.
    Their sessions skip the triggers (the key triggers, the foreign-key checks:
    ``members_load.bulk_session``) and write the keys rows themselves; the primary keys and
    the keys tables' unique keys stay and check every row as it goes in, and every insert must
    write one row per purchase. The indexes on a member or a store are dropped first and built
    after the last chunk, two at a time; then the sequences, the balances, ANALYZE.
    """
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        plan = _setup(conn, members, purchases)
        done = {(c, w) for c, w in conn.execute("SELECT chunk, writer FROM scale_bench_parts")}
        if (DONE, 0) in done:
            return 0.0
        _defer_indexes(conn)
    say(
        f"two writers, chunks of {chunk:,} purchases; ids from {plan['base'] + 1:,}; "
        f"indexes built afterwards: {', '.join(DEFERRED_INDEXES)}"
    )
    _parallel([lambda w=w: _write_chunks(dsn, w, plan, chunk, done) for w in WRITERS])
    loaded = time.monotonic() - started
    say(f"rows written in {loaded:.0f} s ({purchases / max(loaded, 1e-9):,.0f} purchases/s)")
    _finish(dsn, plan)
    return time.monotonic() - started


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def results_path(db_name: str, kind: str = "scale") -> Path:
    """``bench/results/scale.json`` for the default database, ``scale_<db>.json`` otherwise."""
    suffix = "" if db_name == "huiyuan_scale" else f"_{db_name}"
    return ROOT / "bench" / "results" / f"{kind}{suffix}.json"


def in_process(
    pg_url: str,
    db_name: str,
    redis_url: str,
    steps: list[str],
    expiry_runners: int = 2,
    expiry_chunk: int = 1000,
    rfm_runners: int = 2,
    kpi_days: int = 30,
    on_step: Callable[[dict], None] = lambda figures: None,
) -> dict:
    """The long jobs, in this process (a worker's), in the order of ``steps``: expiry (by
    ``expiry_runners`` processes sharing one run, chunks of ``expiry_chunk`` members), RFM,
    birthdays, KPI month. ``on_step`` gets the figures so far after each."""
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
        from app.reports.rollup import rollup
        from app.reports.services import kpis

        now = datetime.now(UTC)
        today = now.date()
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

        db_url = database_url(pg, db_name)

        def shared(job: str, runners: int, at: datetime, chunk: int) -> dict:
            """``job`` run by ``runners`` processes sharing one run (each its own process,
            as on several workers); the run's counts, the runners' backend CPU seconds."""
            import multiprocessing

            args = (db_url, redis_url, job, at, chunk, f"scale-{job}-{at:%Y%m%d%H%M%S}")
            with multiprocessing.get_context("spawn").Pool(runners) as pool:
                counts = pool.starmap(job_runner, [args] * runners)
            # every runner answers the whole run's counts; CPU and memory are each its own
            out[f"{job}_runner_rss_mb"] = max(c.pop("rss_mb") for c in counts)
            cpu = [c.pop("backend_cpu_s") for c in counts]
            return {**counts[0], "backend_cpu_s": round(sum(c or 0.0 for c in cpu), 1)}

        def expiry() -> dict:
            if expiry_runners <= 1:
                return expire_points(now=year_end, batch_size=expiry_chunk).as_dict()
            return shared("expiry", expiry_runners, year_end, expiry_chunk)

        def night() -> dict:
            if rfm_runners <= 1:
                return nightly(now=now)
            return shared("nightly", rfm_runners, now, 0)

        def rebuild() -> dict:
            if rfm_runners <= 1:
                return rebuild_stats(chunk=5000, now=now)
            return shared("rebuild_stats", rfm_runners, now, 5000)

        for step in steps:
            if step == "rfm":
                say(
                    f"RFM/lifecycle: intel.nightly (windows, stages, RFM), {rfm_runners} "
                    "runners sharing one run"
                )
                timed("rfm", night)
            elif step == "rebuild":
                say("intel.rebuild_stats (every member's stats again from the purchases)")
                timed("rebuild_stats", rebuild)
            elif step == "birthdays":
                say("birthday run (members.birthdays)")
                timed("birthdays", lambda: send_birthday_coupons(now=now))
            elif step == "kpi":
                placed = place_rollup_cursors(now, kpi_days)
                say(
                    f"KPI month: reports.rollup of the last {kpi_days} days' rows "
                    f"(cursors {placed or 'as an earlier run left them'}), then kpis() for "
                    "30 days"
                )
                out["rollup_cursors"] = placed
                rolled = timed("rollup", lambda: rollup(now=now, max_chunks=10**7))
                out["rollup_rows"] = sum(rolled.values())
                timed("kpi_month", lambda: len(kpis(today - timedelta(days=29), today)["days"]))
            elif step == "expiry":
                say(
                    f"year-end expiry of every member's due lots (points.expire at {year_end}, "
                    f"{expiry_runners} runners, chunks of {expiry_chunk} members)"
                )
                out["expiry"] = timed("expiry", expiry)
            else:
                continue
            out["job_process_rss_mb"] = round(_peak_rss_mb(), 1)
            on_step(out)
    out["job_process_rss_mb"] = round(_peak_rss_mb(), 1)
    return out


def place_rollup_cursors(now: datetime, days: int) -> dict[str, int]:
    """Start the KPI rollup's cursors at the loaded history's last ``days`` days (the rollup,
    which runs every minute in service, would have folded in the earlier ones): purchases and
    ledger entries from the first of those days (their ids ascend with time), members (all
    loaded today) and the rest after their last row. Nothing is moved when the cursors exist
    (an earlier run: it goes on from there, so nothing is counted twice). The cursors placed."""
    from sqlalchemy import func, select, text

    from app.extensions import db
    from app.members.models import Member
    from app.reports.models import RollupCursor

    if db.session.scalar(select(func.count()).select_from(RollupCursor)):
        db.session.rollback()
        return {}
    base, purchases, step = db.session.execute(
        text("SELECT base, purchases, step FROM scale_bench_plan")
    ).one()
    first = base + max(0, purchases - int(days * 86400 / step))
    placed = {
        "purchases": first,
        "points": first,
        "members": db.session.scalar(select(func.max(Member.id))) or 0,
        "refunds": db.session.scalar(text("SELECT coalesce(max(id), 0) FROM purchase_refunds")),
        "coupon_events": db.session.scalar(text("SELECT coalesce(max(id), 0) FROM coupon_events")),
    }
    for name, last_id in placed.items():
        db.session.add(RollupCursor(name=name, last_id=last_id, gaps={}, updated_at=now))
    db.session.commit()
    return placed


def job_runner(
    db_url: str, redis_url: str, job: str, at: datetime, chunk: int, run_key: str
) -> dict:
    """One runner process of ``job`` (``expiry``, ``nightly`` or ``rebuild_stats``) on the run
    ``run_key``: the run's counts, this runner's database backend CPU seconds and its peak
    memory."""
    from expiry_bench import make_app, proc_cpu
    from sqlalchemy import text

    from app.extensions import db
    from app.intel.jobs import rebuild_stats
    from app.points.jobs import expire_points

    with make_app(db_url, redis_url).app_context():
        if job == "expiry":
            counts = expire_points(now=at, batch_size=chunk, run_key=run_key).as_dict()
        elif job == "nightly":
            from app.intel.nightly import nightly

            counts = dict(nightly(now=at, run_key=run_key))
        else:
            counts = dict(rebuild_stats(chunk=chunk, now=at, run_key=run_key))
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        db.session.rollback()
        return {**counts, "backend_cpu_s": proc_cpu(pid), "rss_mb": round(_peak_rss_mb(), 1)}


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
    parser.add_argument(
        "--chunk", type=int, default=1_000_000, help="purchases per transaction and writer"
    )
    parser.add_argument("--db", default="huiyuan_scale")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--load-only", action="store_true", help="load, then stop")
    parser.add_argument(
        "--steps",
        default="http,expiry,rfm,birthdays,kpi",
        help="measurements to take, in this order (comma-separated; default all)",
    )
    parser.add_argument(
        "--tablespace",
        help="create the database in a tablespace at this directory (owned by the server's "
        "user), e.g. on a compressing file system",
    )
    parser.add_argument(
        "--disk-path",
        help="a directory on the file system that bounds the load (default: "
        "the tablespace's, else the server's data directory)",
    )
    parser.add_argument(
        "--compression",
        type=float,
        default=1.0,
        help="factor by which that file system shrinks the rows (measured; default 1)",
    )
    parser.add_argument(
        "--kpi-days",
        type=int,
        default=30,
        help="days of loaded history the KPI step rolls up before reading 30 days of KPIs",
    )
    parser.add_argument("--expiry-runners", type=int, default=2)
    parser.add_argument("--expiry-chunk", type=int, default=1000, help="members per chunk")
    parser.add_argument(
        "--rfm-runners",
        type=int,
        default=2,
        help="processes sharing intel.nightly (and intel.rebuild_stats)",
    )
    args = parser.parse_args()
    pg = urlparse(args.pg_url)
    if pg.hostname not in (None, "127.0.0.1", "localhost", "::1"):
        raise SystemExit("loopback only: --pg-url must point at 127.0.0.1")
    began = time.monotonic()
    if args.tablespace:
        ensure_tablespace(args.pg_url, args.db, args.tablespace)
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
    disk = check_disk(
        dsn,
        args.members,
        args.purchases,
        path=args.disk_path or args.tablespace,
        compression=args.compression,
    )
    say(f"members: {args.members:,} (load {load_avg()})")
    members, members_s = members_load.ensure_members(dsn, args.members, progress=say, bulk=True)
    made = make_past_partitions(args.pg_url, args.db)
    say(f"{len(made)} monthly partitions made for the months loaded")
    say(f"purchases: {args.purchases:,} over {MONTHS} months, chunks of {args.chunk:,}")
    purchases_s = load_purchases(dsn, args.members, args.purchases, args.chunk)
    stats_s = load_stats(dsn, database_url(pg, args.db))
    with psycopg.connect(dsn) as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        have_p = _purchases_loaded(conn)
        server = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]
            for name in ("server_version", "shared_buffers", "work_mem", "max_wal_size")
        }
    say(f"loaded: {members:,} members, {have_p:,} purchases, database {size / 1e9:.2f} GB")
    results: dict = {
        "members": members,
        "purchases": have_p,
        "database_gb": round(size / 1e9, 2),
        "bytes_per_purchase_and_member": round(size / max(1, have_p + members), 1),
        "load": {
            "members_s": round(members_s, 1),
            "purchases_s": round(purchases_s, 1),
            "stats_s": round(stats_s, 1),
        },
        "disk": {**disk, "on_disk_gb": on_disk_gb(args.tablespace)},
        "server": server,
    }
    out = results_path(args.db)
    out.parent.mkdir(parents=True, exist_ok=True)
    loaded_now = any(results["load"].values())
    if loaded_now:
        # a new load: the figures of earlier loads are not this one's
        http, jobs = {}, {}
        out.write_text(json.dumps({**results, "steps": []}, indent=2) + "\n")
    else:
        http, jobs, load = earlier_figures(args.db, results)
        results["load"] = load or results["load"]
    if args.load_only:
        print(json.dumps(results))
        return 0
    steps = [s for s in args.steps.split(",") if s]
    # the steps measured on this load, this run's and the earlier runs' (kept in the figures)
    jobs["steps"] = [*[s for s in jobs.get("steps", []) if s not in steps], *steps]

    def save() -> None:
        """The figures so far, written after every step: a run stopped early keeps them."""
        summarise(results, http, jobs, steps, began)
        out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")

    if "http" in steps:
        http = http_figures(args)
        save()
    jobs.update(
        in_process(
            args.pg_url,
            args.db,
            args.redis_url,
            [s for s in steps if s != "http"],
            expiry_runners=args.expiry_runners,
            expiry_chunk=args.expiry_chunk,
            rfm_runners=args.rfm_runners,
            kpi_days=args.kpi_days,
            on_step=lambda figures: (jobs.update(figures), save()),
        )
    )
    save()
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


def summarise(results: dict, http: dict, jobs: dict, steps: list[str], began: float) -> None:
    """Fold the HTTP figures and the jobs' into ``results`` (the keys of ``scale.json``)."""

    def minutes(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds / 60, 2)

    tier_s = http.get("tier_review", {}).get("seconds")
    results.update(
        {
            "identify_p99_ms": http.get("identify_p99_ms"),
            "identify_by_code_p99_ms": http.get("identify_by_code_p99_ms"),
            "notify_ratio": http.get("notify_ratio"),
            "pos_ingest_ratio": http.get("pos_ingest_ratio"),
            "worker_rss_mb": max(
                [http.get("worker_rss_mb", 0)]
                + [v for k, v in jobs.items() if k.endswith("rss_mb") and v is not None]
            ),
            "http_load_average_at_start": http.get("load_average_at_start"),
            "expiry_minutes": minutes(jobs.get("expiry_s")),
            "tier_review_minutes": minutes(tier_s),
            "rfm_minutes": minutes(jobs.get("rfm_s")),
            "rebuild_stats_minutes": minutes(jobs.get("rebuild_stats_s")),
            "birthday_run_s": jobs.get("birthdays_s"),
            "kpi_month_s": jobs.get("kpi_month_s"),
            "kpi_rollup_rows_per_s": round(jobs["rollup_rows"] / jobs["rollup_s"])
            if jobs.get("rollup_rows") and jobs.get("rollup_s")
            else None,
            "steps": jobs.get("steps", steps),
            "jobs": jobs,
            "http": {
                k: http[k]
                for k in ("notify", "pos_ingest", "identify", "workers", "tier_review")
                if k in http
            },
            "targets": TARGETS,
            "cores": os.cpu_count(),
            "load_average_at_end": load_avg(),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "total_seconds": round(time.monotonic() - began, 1),
        }
    )


def earlier_figures(db_name: str, results: dict) -> tuple[dict, dict, dict | None]:
    """The HTTP and job figures of an earlier run on the same load (the steps not taken
    again keep them: a run stopped half-way goes on with ``--steps`` of the rest), and the
    figures of the load itself. A load writes the results afresh (no steps)."""
    http: dict = {}
    jobs: dict = {}
    try:
        before = json.loads(results_path(db_name).read_text())
    except (OSError, ValueError):
        return http, jobs, None
    if (before.get("members"), before.get("purchases")) != (
        results["members"],
        results["purchases"],
    ):
        return http, jobs, None
    jobs = before.get("jobs", {})
    if "http" in before.get("steps", []):
        try:
            http = json.loads(results_path(db_name, "scale_http").read_text())
        except (OSError, ValueError):
            pass
    return http, jobs, before.get("load")


def ensure_tablespace(server_url: str, db_name: str, location: str) -> None:
    """The tablespace ``<db>_space`` at ``location``, and the database in it (when new)."""
    space = f"{db_name}_space"
    with psycopg.connect(server_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_tablespace WHERE spcname = %s", (space,)).fetchone():
            conn.execute(f"CREATE TABLESPACE \"{space}\" LOCATION '{location}'")
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db_name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{db_name}" TABLESPACE "{space}"')


def on_disk_gb(directory: str | None) -> float | None:
    """Bytes the file system holding ``directory`` uses (what a compressing one really
    stores), or None without a tablespace."""
    if not directory:
        return None
    usage = shutil.disk_usage(directory)
    return round(usage.used / 1e9, 2)


if __name__ == "__main__":
    sys.exit(main())
