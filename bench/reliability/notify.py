"""1,000 concurrent duplicate deliveries of one WeChat Pay notification (API v2, signed with
the merchant key exactly as WeChat signs): one member, one purchase, one credit."""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from typing import Any

import psycopg
import requests

from bench.reliability.snapshot import plain_url

DELIVERIES = 1000
SENDERS = 50


def wechat_settings() -> dict[str, str]:
    """Merchant settings for the server's environment (enables WeChat Pay API v2)."""
    return {
        "WECHAT_APPID": "wxrel" + secrets.token_hex(6),
        "WECHAT_MCH_ID": "1900000109",
        "WECHAT_PAY_API_KEY": secrets.token_hex(16),
    }


def signed_notification(config: dict[str, str], paid_fen: int) -> tuple[bytes, str, str]:
    """``(xml body, payer openid, transaction id)`` of a new successful payment."""
    from app.demo.notifications import wechat_v2_payment_fields, wechat_v2_xml

    transaction_id = "4200" + str(secrets.randbelow(10**24)).zfill(24)
    openid = "oREL" + secrets.token_hex(10)
    fields = wechat_v2_payment_fields(
        appid=config["WECHAT_APPID"],
        mch_id=config["WECHAT_MCH_ID"],
        transaction_id=transaction_id,
        openid=openid,
        total_fee=paid_fen,
    )
    body = wechat_v2_xml(fields, config["WECHAT_PAY_API_KEY"], "MD5").encode()
    return body, openid, transaction_id


def deliver(base: str, body: bytes) -> requests.Response:
    return requests.post(
        f"{base}/payments/wechat/notify",
        data=body,
        headers={"Content-Type": "text/xml"},
        timeout=60,
    )


def effects(database_url: str, openid: str, transaction_id: str) -> tuple[int, int, int, int]:
    """``(members, purchases, credits, balance)`` a payment left behind."""
    return _effects(database_url, openid, transaction_id)


def duplicate_deliveries(env: Any, deliveries: int = DELIVERIES) -> dict[str, Any]:
    paid_fen = 12345
    body, openid, transaction_id = signed_notification(env.server.env, paid_fen)
    url = f"{env.server.base}/payments/wechat/notify"
    answers: Counter = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(SENDERS)
    per_sender = [deliveries // SENDERS + (i < deliveries % SENDERS) for i in range(SENDERS)]

    def sender(count: int) -> None:
        session = requests.Session()
        barrier.wait()
        for _ in range(count):
            try:
                r = session.post(url, data=body, headers={"Content-Type": "text/xml"}, timeout=60)
                key = f"{r.status_code} {'SUCCESS' if b'SUCCESS' in r.content else r.text[:60]}"
            except requests.RequestException as exc:
                key = type(exc).__name__
            with lock:
                answers[key] += 1

    threads = [threading.Thread(target=sender, args=(n,)) for n in per_sender]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    members, purchases, credits, balance = _effects(env.database_url, openid, transaction_id)
    problems = []
    if answers != Counter({"200 SUCCESS": deliveries}):
        problems.append(f"answers {dict(answers)}")
    if (members, purchases, credits) != (1, 1, 1):
        problems.append(f"{members} members, {purchases} purchases, {credits} credits")
    if balance != paid_fen // 100:
        problems.append(f"balance {balance}, expected {paid_fen // 100}")
    return {
        "deliveries": deliveries,
        "members": members,
        "credits": credits,
        "balance": balance,
        "problems": problems,
    }


def _effects(database_url: str, openid: str, transaction_id: str) -> tuple[int, int, int, int]:
    with psycopg.connect(plain_url(database_url)) as conn:
        members = conn.execute(
            "SELECT count(DISTINCT member_id) FROM member_identities WHERE external_id = %s",
            (openid,),
        ).fetchone()[0]
        purchases = conn.execute(
            "SELECT count(*) FROM purchases WHERE external_id = %s", (transaction_id,)
        ).fetchone()[0]
        credits, balance = conn.execute(
            "SELECT count(e.id), coalesce(max(a.balance), 0) FROM member_identities i "
            "JOIN points_accounts a ON a.member_id = i.member_id "
            "LEFT JOIN points_entries e ON e.member_id = i.member_id AND e.kind = 'earn' "
            "WHERE i.external_id = %s",
            (openid,),
        ).fetchone()
    return int(members), int(purchases), int(credits), int(balance)
