"""The engine's applier SIGKILLed at random while signed payment notifications stream in.

Every notification answered ``SUCCESS`` must end as exactly one purchase with exactly one
credit (no loss, no double credit), whatever batch the applier was in when it died; a
refund sent before its payment must be held and then applied. The applier is restarted after
each kill (as a supervisor would); when the stream ends the backlog must drain.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from typing import Any

import psycopg
import requests

from bench.reliability.notify import deliver
from bench.reliability.snapshot import plain_url

PAYMENTS = 1200
PAYERS = 60
SENDERS = 6


def _bodies(config: dict[str, str], seed: int) -> list[tuple[bytes, str, str, int]]:
    from app.demo.notifications import wechat_v2_payment_fields, wechat_v2_xml

    rng = random.Random(seed)
    run = f"{int(time.time()) % 10**8:08d}"
    out = []
    for n in range(PAYMENTS):
        openid = f"oKILL{run}{rng.randrange(PAYERS):04d}"
        txn = f"4300{run}{n:08d}"
        paid = rng.randint(100, 20000)
        fields = wechat_v2_payment_fields(
            appid=config["WECHAT_APPID"],
            mch_id=config["WECHAT_MCH_ID"],
            transaction_id=txn,
            openid=openid,
            total_fee=paid,
        )
        out.append(
            (wechat_v2_xml(fields, config["WECHAT_PAY_API_KEY"]).encode(), openid, txn, paid)
        )
    return out


def _refund_first(config: dict[str, str], txn: str, paid: int) -> bytes:
    from app.demo.notifications import wechat_v2_refund_xml

    return wechat_v2_refund_xml(
        appid=config["WECHAT_APPID"],
        mch_id=config["WECHAT_MCH_ID"],
        api_key=config["WECHAT_PAY_API_KEY"],
        transaction_id=txn,
        refund_id=f"RK{txn}",
        refund_fee=paid // 2,
        total_fee=paid,
    ).encode()


def applier_killed(env: Any, seed: int = 7) -> dict[str, Any]:
    server = env.server
    config = server.env
    bodies = _bodies(config, seed)
    early = bodies[-1]  # its refund arrives first: held, then applied when the payment lands
    problems: list[str] = []
    answer = requests.post(
        f"{server.base}/payments/wechat/refund-notify",
        data=_refund_first(config, early[2], early[3]),
        headers={"Content-Type": "text/xml"},
        timeout=60,
    )
    if b"SUCCESS" not in answer.content:
        problems.append(f"early refund answered {answer.status_code}")
    acked: set[str] = set()
    lock = threading.Lock()
    queue = list(bodies)
    stop = threading.Event()
    kills = 0

    def sender() -> None:
        while True:
            with lock:
                if not queue:
                    return
                body, _, txn, _ = queue.pop(0)
            for _ in range(5):
                try:
                    r = deliver(server.base, body)
                except requests.RequestException:
                    continue
                if r.status_code == 200 and b"SUCCESS" in r.content:
                    with lock:
                        acked.add(txn)
                    break

    def killer() -> None:
        nonlocal kills
        rng = random.Random(seed)
        while not stop.wait(rng.uniform(0.1, 0.8)):
            server.kill_applier()
            kills += 1
            server.start_applier()

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    chaos = threading.Thread(target=killer)
    chaos.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    chaos.join()
    if server.applier is None:
        server.start_applier()
    drained = _wait_drained(env.database_url, 120)
    if drained is None:
        problems.append("the journal did not drain in 120 s")
    expected: dict[str, int] = defaultdict(int)
    for _, openid, txn, paid in bodies:
        if txn in acked:
            expected[openid] += paid // 100
    expected[early[1]] -= (early[3] // 100) - (early[3] // 100) * (
        early[3] - early[3] // 2
    ) // early[3]
    found = _found(env.database_url, [txn for _, _, txn, _ in bodies], list(expected))
    if len(acked) != PAYMENTS:
        problems.append(f"only {len(acked)} of {PAYMENTS} notifications acknowledged")
    if found["purchases"] != len(acked):
        problems.append(f"{found['purchases']} purchases for {len(acked)} acknowledged")
    if found["credits"] != found["purchases"]:
        problems.append(f"{found['credits']} credits for {found['purchases']} purchases")
    wrong = {
        o: (found["balances"].get(o), b)
        for o, b in expected.items()
        if found["balances"].get(o) != b
    }
    if wrong:
        problems.append(
            f"{len(wrong)} payers with another balance than expected: {list(wrong.items())[:3]}"
        )
    if found["held"]:
        problems.append(f"{found['held']} refunds still held")
    return {
        "payments": PAYMENTS,
        "acknowledged": len(acked),
        "applier_kills": kills,
        "drained_s": drained,
        "purchases": found["purchases"],
        "credits": found["credits"],
        "problems": problems,
    }


def _wait_drained(database_url: str, limit_s: float) -> float | None:
    began = time.monotonic()
    with psycopg.connect(plain_url(database_url), autocommit=True) as conn:
        while time.monotonic() - began < limit_s:
            left = conn.execute(
                "SELECT count(*) FROM money_events WHERE state = 'pending'"
            ).fetchone()[0]
            if not left:
                return round(time.monotonic() - began, 2)
            time.sleep(0.1)
    return None


def _found(database_url: str, txns: list[str], openids: list[str]) -> dict[str, Any]:
    with psycopg.connect(plain_url(database_url)) as conn:
        purchases = conn.execute(
            "SELECT count(*) FROM purchases WHERE external_id = ANY(%s)", (txns,)
        ).fetchone()[0]
        credits = conn.execute(
            "SELECT count(*) FROM points_entries e JOIN purchases p"
            " ON e.idempotency_key = 'purchase:' || p.id || ':earn'"
            " WHERE p.external_id = ANY(%s)",
            (txns,),
        ).fetchone()[0]
        balances = dict(
            conn.execute(
                "SELECT i.external_id, a.balance FROM member_identities i"
                " JOIN points_accounts a ON a.member_id = i.member_id"
                " WHERE i.external_id = ANY(%s)",
                (openids,),
            ).fetchall()
        )
        held = conn.execute("SELECT count(*) FROM money_events WHERE state = 'held'").fetchone()[0]
    return {"purchases": purchases, "credits": credits, "balances": balances, "held": held}
