"""Deterministic streams of signed POS batches, sent from threads, with their outcomes."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

import requests

from pos_adapter.client import PosClient

ACKNOWLEDGED = {"accepted", "duplicate", "parked"}


def admin_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_till(base: str, token: str, store_code: str) -> PosClient:
    """A store and an activated terminal of it."""
    headers = admin_headers(token)
    response = requests.post(
        f"{base}/admin/v1/stores",
        json={"code": store_code, "name": f"reliability {store_code}"},
        headers=headers,
        timeout=30,
    )
    response.raise_for_status()
    created = requests.post(
        f"{base}/admin/v1/stores/{store_code}/terminals",
        json={"name": "till"},
        headers=headers,
        timeout=30,
    )
    created.raise_for_status()
    till = PosClient.for_url(base)
    activated = till.activate(created.json()["activation_code"])
    if activated.status != 201:
        raise RuntimeError(f"activation failed: {activated.status} {activated.json}")
    return till


def make_batches(
    prefix: str, *, batches: int, size: int, phones: int, seed: int
) -> list[list[dict[str, Any]]]:
    """Sales (80% naming a member by phone) and returns of some of them; a few returns come
    one batch before their sale, so they are parked and applied when it arrives."""
    rng = random.Random(seed)
    events: list[list[dict[str, Any]]] = [[] for _ in range(batches)]
    for b in range(batches):
        for i in range(size):
            paid = rng.randint(100, 30000)
            sale_id = f"{prefix}-{b}-{i}"
            sale: dict[str, Any] = {
                "type": "sale",
                "sale_id": sale_id,
                "occurred_at": "2026-11-20T10:00:00+08:00",
                "total_fen": paid + rng.choice((0, 0, 500)),
                "paid_fen": paid,
                "lines": [{"sku": f"SKU-{rng.randint(1, 50)}", "qty": 1, "amount_fen": paid}],
            }
            if rng.random() < 0.8:
                sale["member"] = {"phone": f"1390000{rng.randint(0, phones - 1):04d}"}
            events[b].append(sale)
            roll = rng.random()
            if roll < 0.12:  # a return, in a later batch (or one before the sale: parked)
                target = b - 1 if roll < 0.03 and b > 0 else min(b + rng.randint(1, 3), batches - 1)
                events[target].append(
                    {
                        "type": "return",
                        "return_id": f"R{sale_id}",
                        "sale_id": sale_id,
                        "occurred_at": "2026-11-21T10:00:00+08:00",
                        "refund_fen": rng.randint(1, paid),
                    }
                )
    if max(len(b) for b in events) > 100:
        raise ValueError("a batch holds more than the 100 events the protocol allows")
    return events


@dataclass
class StreamResult:
    acknowledged: dict[str, str] = field(default_factory=dict)  # event id → status
    failed_batches: list[int] = field(default_factory=list)
    unclean_failures: list[str] = field(default_factory=list)  # not a JSON error body
    statuses: dict[str, int] = field(default_factory=dict)  # per-event status counts
    requests: int = 0


def send_batch(
    till: PosClient, batch: list[dict[str, Any]], result: StreamResult, lock: threading.Lock
) -> bool:
    """One upload; records what the server acknowledged. True when the request succeeded."""
    try:
        response = till.send_events(batch)
    except requests.RequestException as exc:  # a killed worker drops the connection
        with lock:
            result.requests += 1
        return _note_failure(result, lock, None, type(exc).__name__)
    with lock:
        result.requests += 1
    if response.status != 200:
        return _note_failure(result, lock, response, None)
    with lock:
        for item in response.json["results"]:
            result.statuses[item["status"]] = result.statuses.get(item["status"], 0) + 1
            if item["status"] in ACKNOWLEDGED:
                result.acknowledged[item["id"]] = item["status"]
    return True


def _note_failure(
    result: StreamResult, lock: threading.Lock, response: Any, exc: str | None
) -> bool:
    if response is not None:
        body = response.json
        is_contract = isinstance(body, dict) and isinstance(body.get("error"), dict)
        if not is_contract or response.status < 400 or response.status == 500:
            with lock:
                result.unclean_failures.append(f"{response.status}: {str(body)[:120]}")
    return False


def run_stream(
    base: str,
    till: PosClient,
    batches: list[list[dict[str, Any]]],
    *,
    threads: int,
    result: StreamResult | None = None,
    on_batch: Any = None,
) -> StreamResult:
    """Send every batch once (``threads`` at a time, in order); failures are remembered."""
    result = result or StreamResult()
    lock = threading.Lock()
    todo = list(range(len(batches)))
    clients = [
        PosClient.for_url(base, terminal_id=till.terminal_id, secret=till.secret)
        for _ in range(threads)
    ]

    def work(client: PosClient) -> None:
        while True:
            with lock:
                if not todo:
                    return
                index = todo.pop(0)
            if not send_batch(client, batches[index], result, lock):
                with lock:
                    result.failed_batches.append(index)
            if on_batch is not None:
                on_batch(index)

    workers = [threading.Thread(target=work, args=(c,)) for c in clients]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return result


def retry_until_done(
    till: PosClient, batches: list[list[dict[str, Any]]], indexes: list[int], attempts: int = 20
) -> StreamResult:
    """Send each batch again until one upload succeeds; the results must all be acknowledged."""
    result = StreamResult()
    lock = threading.Lock()
    for index in sorted(set(indexes)):
        for _ in range(attempts):
            if send_batch(till, batches[index], result, lock):
                break
        else:
            raise RuntimeError(f"batch {index} still failing after {attempts} attempts")
    return result
