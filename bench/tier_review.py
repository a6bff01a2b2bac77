"""The nightly tier review over a million members: members reviewed per second.

    .venv/bin/python bench/tier_review.py --pg-url postgresql://postgres@127.0.0.1/DB \
        [--members 1000000]

Loads, set-based (``INSERT … SELECT generate_series``), the bench members (``members_load``)
and for each a tier row on a three-step ladder, with a month that has just left the rolling
window and one inside it; one in ten is past its keep period with a basis that earns less.
Then runs the review job (``app.tiers.jobs:review_tiers``, chunk by chunk as in production) and,
as the baseline in the same run, one ``UPDATE`` touching every tier row once. Prints
``tier_review_per_s`` and the ratio baseline-time / review-time. ``make bench`` runs it on its
application database after the other measurements.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import members_load  # noqa: E402


def _months(now: datetime) -> tuple[int, int, int]:
    from app.tiers.ladder import month_of, window_start

    start = window_start(now)
    year, month = divmod(start, 100)
    index = year * 12 + month - 1 - 1
    dropped = (index // 12) * 100 + index % 12 + 1
    return dropped, start, month_of(now)


def load_tiers(dsn: str, now: datetime) -> int:
    """Fresh tier rows for every bench member; returns how many."""
    dropped, _, current = _months(now)
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "TRUNCATE member_tier_months, tier_changes, member_tiers, tiers, tier_settings"
        )
        conn.execute(
            "INSERT INTO tier_settings (id, basis, keep_months, review_max_steps, version,"
            " updated_at, reeval_state, reeval_done, reeval_total, reeval_after)"
            " VALUES (1, 'payer_fen_12m', 12, 1, 1, now(), 'done', 0, 0, 0)"
        )
        conn.execute(
            "INSERT INTO tiers (code, name, rank, threshold, earn_multiplier_pct) VALUES"
            " ('NORMAL', '普通会员', 1, 0, 100), ('VIP', 'VIP会员', 2, 100000, 150),"
            " ('SVIP', '至尊VIP', 3, 300000, 200)"
        )
        # basis in the window: 0 … 399,999 fen; the dropped month adds 50,000 more to the total
        conn.execute(
            """
            INSERT INTO member_tiers (member_id, tier_code, reached_at, keep_until, reach_no,
                payer_fen_12m, purchases_12m, growth, window_month, updated_at)
            SELECT m.id,
                   CASE WHEN m.id %% 10 = 0 THEN 'SVIP'
                        WHEN (m.id::bigint * 7919) %% 400000 + 50000 >= 300000 THEN 'SVIP'
                        WHEN (m.id::bigint * 7919) %% 400000 + 50000 >= 100000 THEN 'VIP'
                        ELSE 'NORMAL' END,
                   %(now)s - interval '400 days',
                   CASE WHEN m.id %% 10 = 0 THEN %(now)s - interval '1 day'
                        ELSE %(now)s + interval '100 days' END,
                   1, (m.id::bigint * 7919) %% 400000 + 50000, 3, 0, %(dropped)s, %(now)s
            FROM members m WHERE m.source = %(source)s
            """,
            {"now": now, "dropped": dropped, "source": members_load.SOURCE},
        )
        conn.execute(
            """
            INSERT INTO member_tier_months (member_id, month, payer_fen, purchases)
            SELECT member_id, %(dropped)s, 50000, 1 FROM member_tiers
            UNION ALL
            SELECT member_id, %(current)s, payer_fen_12m - 50000, 2 FROM member_tiers
            """,
            {"dropped": dropped, "current": current},
        )
        conn.execute("ANALYZE member_tiers")
        conn.execute("ANALYZE member_tier_months")
        return conn.execute("SELECT count(*) FROM member_tiers").fetchone()[0]


def baseline_seconds(dsn: str) -> float:
    """One UPDATE touching every tier row: the floor of any pass over them."""
    with psycopg.connect(dsn) as conn:
        started = time.monotonic()
        conn.execute("UPDATE member_tiers SET updated_at = updated_at")
        conn.commit()
        return time.monotonic() - started


def review_seconds(app_url: str, now: datetime) -> tuple[float, dict]:
    from app import create_app
    from app.config import Config

    app = create_app(
        Config.from_env(
            env={}, ENV="testing", DATABASE_URL=app_url, SECRET_KEY=secrets.token_urlsafe(48)
        )
    )
    with app.app_context():
        from app.tiers.jobs import review_tiers

        started = time.monotonic()
        counts = review_tiers(now=now)
        return time.monotonic() - started, counts


def measure(pg_dsn: str, app_url: str, members: int) -> dict:
    members_load.ensure_members(pg_dsn, members)
    now = datetime.now(UTC) + timedelta(minutes=1)
    loaded = load_tiers(pg_dsn, now)
    base = baseline_seconds(pg_dsn)
    seconds, counts = review_seconds(app_url, now)
    return {
        "members": loaded,
        "seconds": round(seconds, 2),
        "tier_review_per_s": round(counts["members"] / seconds),
        "changed": counts["changed"],
        "baseline_update_all_s": round(base, 2),
        "ratio_baseline_over_review": round(base / seconds, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", required=True, help="postgresql://user@host/db (migrated)")
    parser.add_argument("--members", type=int, default=1_000_000)
    args = parser.parse_args()
    app_url = args.pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    result = measure(args.pg_url, app_url, args.members)
    print(
        f"TIER REVIEW members={result['members']} in {result['seconds']}s "
        f"tier_review_per_s={result['tier_review_per_s']} changed={result['changed']} "
        f"baseline(one UPDATE of all rows)={result['baseline_update_all_s']}s "
        f"ratio={result['ratio_baseline_over_review']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
