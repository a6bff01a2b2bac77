"""Signed WeChat Pay v2 payment notifications for the bench, all generated before the run.

Each body is a complete notify (``app.payments.simulate``, the helpers the payment tests use)
for a distinct transaction id, signed with the bench's own merchant key; the payers come from a
pool of 5,000 openids, so some notifications enrol a new member (pay-as-membership) and most
credit one already known, as in a shop. Every body is one line (wrk sends them line by line).
"""

from __future__ import annotations

import random

import psycopg

PATH = "/payments/wechat/notify"
STORE = "BENCH"
BODIES = 60_000
PAYERS = 5_000
APPID = "wxbench0000000001"
MCH_ID = "1900000109"
API_KEY = "benchv2apikey0123456789abcdefAB"  # 32 characters, like a real v2 key


def platform_env() -> dict[str, str]:
    """The WeChat Pay settings the served app needs to verify these notifications."""
    return {"WECHAT_APPID": APPID, "WECHAT_MCH_ID": MCH_ID, "WECHAT_PAY_API_KEY": API_KEY}


def transaction_id(run_id: str, n: int) -> str:
    return f"42{run_id}{n:012d}"[:32]


def notify_bodies(run_id: str, count: int = BODIES, seed: int = 11) -> list[str]:
    from app.payments.simulate import wechat_v2_payment_fields, wechat_v2_xml

    rng = random.Random(seed)
    bodies = []
    for n in range(count):
        fields = wechat_v2_payment_fields(
            appid=APPID,
            mch_id=MCH_ID,
            transaction_id=transaction_id(run_id, n),
            openid=f"oBENCH{rng.randrange(PAYERS):08d}",
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


def available() -> bool:
    """Whether this checkout has the payment endpoints (issue 3)."""
    try:
        import app.payments.simulate  # noqa: F401
    except ImportError:
        return False
    return True
