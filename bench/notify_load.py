"""Signed WeChat Pay v2 payment notifications for the bench, all generated before the run.

Each body is a complete notify (``app.demo.notifications``, the helpers the payment tests use)
for a distinct transaction id, signed with the bench's own merchant key. As in a shop, most
payers are regulars: 90% come from a pool of 5,000 openids that ``ensure_payers`` attaches to
loaded members before the run (so every run measures the same mix, whatever earlier runs left),
and 10% are first-time payers, new in each run, whom the notify enrols (pay-as-membership).
Every body is one line (wrk sends them line by line).
"""

from __future__ import annotations

import random
import time

import psycopg

PATH = "/payments/wechat/notify"
STORE = "BENCH"
BODIES = 60_000
PAYERS = 5_000
NEW_PAYERS = 0.10  # share of notifications from a payer never seen before
APPID = "wxbench0000000001"
MCH_ID = "1900000109"
API_KEY = "benchv2apikey0123456789abcdefAB"  # 32 characters, like a real v2 key


def platform_env() -> dict[str, str]:
    """The WeChat Pay settings the served app needs to verify these notifications."""
    return {"WECHAT_APPID": APPID, "WECHAT_MCH_ID": MCH_ID, "WECHAT_PAY_API_KEY": API_KEY}


def transaction_id(run_id: str, n: int) -> str:
    return f"42{run_id}{n:012d}"[:32]


def regular_openid(n: int) -> str:
    return f"oBENCH{n:08d}"


def ensure_payers(dsn: str, member_phone_prefix: str) -> None:
    """Give loaded members ``0 … PAYERS-1`` the regulars' openids (set-based; kept if present)."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            """
            INSERT INTO member_identities (member_id, kind, app, external_id, created_at)
            SELECT m.id, 'wechat_openid', %(app)s, 'oBENCH' || lpad(g::text, 8, '0'), now()
            FROM generate_series(0, %(last)s) AS g
            JOIN members m ON m.phone = %(prefix)s || lpad(g::text, 8, '0')
            ON CONFLICT (kind, app, external_id) DO NOTHING
            """,
            {"app": APPID, "last": PAYERS - 1, "prefix": member_phone_prefix},
        )
        conn.commit()


def notify_bodies(run_id: str, count: int = BODIES, seed: int = 11) -> list[str]:
    from app.demo.notifications import wechat_v2_payment_fields, wechat_v2_xml

    rng = random.Random(seed)
    bodies = []
    for n in range(count):
        if rng.random() < NEW_PAYERS:
            openid = f"oNEW{run_id}{n:06d}"
        else:
            openid = regular_openid(rng.randrange(PAYERS))
        fields = wechat_v2_payment_fields(
            appid=APPID,
            mch_id=MCH_ID,
            transaction_id=transaction_id(run_id, n),
            openid=openid,
            total_fee=rng.randint(500, 30000),
            store=STORE,
        )
        bodies.append(wechat_v2_xml(fields, API_KEY).replace("\n", ""))
    return bodies


def credited(dsn: str, run_id: str) -> int:
    """How many of this run's notifications became a purchase (each exactly once)."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT count(*) FROM purchases WHERE source = 'wechat' AND external_id LIKE %s",
            (f"%42{run_id}%",),
        ).fetchone()[0]


def wait_drained(dsn: str, limit_s: float) -> float:
    """Seconds until no journalled notification is pending (``limit_s`` at most)."""
    began = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() - began < limit_s:
            left = conn.execute(
                "SELECT count(*) FROM money_events WHERE state = 'pending'"
            ).fetchone()[0]
            if not left:
                break
            time.sleep(0.02)
    return time.monotonic() - began


def apply_lag(dsn: str, run_id: str) -> dict[str, float]:
    """Received → applied, p50 / p99 in ms, over this run's notifications."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            """
            SELECT count(*),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY applied_at - received_at),
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY applied_at - received_at)
            FROM money_events WHERE state = 'applied' AND event_key LIKE %s
            """,
            (f"wechat:pay:42{run_id}%",),
        ).fetchone()
    count, p50, p99 = row
    return {
        "events": int(count),
        "p50_ms": round(p50.total_seconds() * 1000, 1) if p50 else 0.0,
        "p99_ms": round(p99.total_seconds() * 1000, 1) if p99 else 0.0,
    }


def available() -> bool:
    """Whether this checkout has the payment endpoints (issue 3)."""
    try:
        import app.demo.notifications  # noqa: F401
    except ImportError:
        return False
    return True
