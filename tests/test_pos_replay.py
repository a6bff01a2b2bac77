"""Offline tills upload in bursts, out of order, more than once: the result must not change.

Every batch is replayed three times, batches shuffled and returns put ahead of their sales;
balances and records must equal one clean pass. On PostgreSQL the replays also run at once
from three threads.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict

from sqlalchemy import select

from app.admin.auth import create_admin_token
from app.extensions import db, redis_store
from app.members.models import MemberIdentity
from app.points.models import PointsAccount, PointsEntry, Purchase
from app.points.services import audit_differences
from app.pos.models import PosReturn, PosSale, PosSaleLine
from pos_adapter.client import PosClient
from tests.conftest import _truncate_all, requires_postgres
from tests.pos_support import make_store, refund, sale, signed_client, statuses

BATCH = 10


def build_batches(seed: int = 11) -> list[list[dict]]:
    rng = random.Random(seed)
    payers = (
        [{"phone": f"1380000{i:04d}"} for i in range(5)]
        + [{"wechat_openid": f"o-wx-{i}"} for i in range(3)]
        + [{"alipay_user_id": f"20880000{i:08d}"} for i in range(2)]
        + [None]
    )
    events: list[dict] = []
    for i in range(60):
        paid = rng.randint(1, 30000)
        who = rng.choice(payers)
        lines = [{"sku": f"SKU-{rng.randint(1, 9)}", "qty": 1, "amount_fen": paid}]
        events.append(sale(f"S{i:03d}", paid, member=who, lines=lines))
        left = paid
        for j in range(rng.choice([0, 0, 1, 2, 3])):
            if left <= 1:
                break
            amount = rng.randint(1, left // 2 or 1)
            left -= amount
            events.append(refund(f"R{i:03d}-{j}", f"S{i:03d}", amount))
    return [events[i : i + BATCH] for i in range(0, len(events), BATCH)]


def replay_plan(batches: list[list[dict]], seed: int) -> list[list[dict]]:
    rng = random.Random(seed)
    plan = []
    for batch in batches * 3:
        returns = [e for e in batch if e["type"] == "return"]
        sales = [e for e in batch if e["type"] == "sale"]
        rng.shuffle(returns)
        rng.shuffle(sales)
        plan.append(returns + sales)
    rng.shuffle(plan)
    return plan


def fresh_till(client) -> PosClient:
    db.session.remove()
    _truncate_all(db)
    redis_store.client.flushdb()
    headers = {"Authorization": f"Bearer {create_admin_token('replay')}"}
    make_store(client, headers, "SH001")
    return signed_client(client, headers, "SH001")


def snapshot() -> dict:
    db.session.remove()
    who = {}
    for identity in db.session.scalars(select(MemberIdentity).order_by(MemberIdentity.id)):
        who.setdefault(identity.member_id, f"{identity.kind}:{identity.external_id}")
    ledger: dict[tuple, int] = defaultdict(int)
    for entry in db.session.scalars(select(PointsEntry)):
        ledger[(who[entry.member_id], entry.kind)] += entry.points
    purchases = {p.id: p for p in db.session.scalars(select(Purchase))}
    sales = {
        s.sale_id: (
            who.get(s.member_id),
            s.total_fen,
            s.paid_fen,
            purchases[s.purchase_id].refunded_fen,
            purchases[s.purchase_id].points_earned,
            len(s.lines),
        )
        for s in db.session.scalars(select(PosSale))
    }
    returns = {
        r.return_id: (r.sale_id, r.refund_fen, r.state)
        for r in db.session.scalars(select(PosReturn))
    }
    balances = {who[a.member_id]: a.balance for a in db.session.scalars(select(PointsAccount))}
    assert audit_differences() == []
    line_count = len(db.session.scalars(select(PosSaleLine)).all())
    return {
        "balances": balances,
        "ledger": dict(ledger),
        "sales": sales,
        "returns": returns,
        "lines": line_count,
    }


def clean_pass(client, batches) -> dict:
    till = fresh_till(client)
    for batch in batches:
        assert "rejected" not in statuses(till.send_events(batch))
    return snapshot()


def test_three_shuffled_replays_with_returns_first_equal_one_clean_pass(client):
    batches = build_batches()
    expected = clean_pass(client, batches)
    assert all(state == "applied" for _, _, state in expected["returns"].values())
    till = fresh_till(client)
    seen = set()
    for batch in replay_plan(batches, seed=5):
        response = till.send_events(batch)
        seen.update(statuses(response))
    assert "rejected" not in seen and "conflict" not in seen
    assert {"parked", "duplicate"} <= seen
    assert snapshot() == expected


@requires_postgres
def test_three_concurrent_shuffled_replays_equal_one_clean_pass(app):
    batches = build_batches(seed=23)
    expected = clean_pass(app.test_client(), batches)
    till = fresh_till(app.test_client())
    errors: list[object] = []

    def replay(seed: int) -> None:
        own = PosClient.for_flask(
            app.test_client(), terminal_id=till.terminal_id, secret=till.secret
        )
        for batch in replay_plan(batches, seed=seed):
            response = own.send_events(batch)
            if response.status != 200 or "rejected" in statuses(response):
                errors.append(response.json)

    threads = [threading.Thread(target=replay, args=(seed,)) for seed in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert snapshot() == expected
