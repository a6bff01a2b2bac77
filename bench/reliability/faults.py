"""Fault scenarios: workers SIGKILLed mid-stream, PostgreSQL crashed mid-stream, Redis down."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

from bench.reliability import notify
from bench.reliability.cluster import Cluster, Gunicorn
from bench.reliability.snapshot import balance_of, differences, existing_ids, snapshot
from bench.reliability.stream import (
    admin_headers,
    new_till,
    retry_until_done,
    run_stream,
)

# Workers are killed for at most this long: every kill costs a worker boot (about a second of
# CPU on a small machine), and the run must stay bounded on a loaded 2-core machine.
KILL_WINDOW_SECONDS = 150


@dataclass
class Env:
    cluster: Cluster
    server: Gunicorn
    database_url: str
    token: str


def clean_run(env: Env, batches: list, store: str) -> dict[str, Any]:
    """The expectation: the same stream, once, without faults."""
    till = new_till(env.server.base, env.token, store)
    result = run_stream(env.server.base, till, batches, threads=3)
    retry_until_done(till, batches, result.failed_batches)
    return snapshot(env.database_url)


def killed_workers(env: Env, batches: list, store: str, expected: dict) -> dict[str, Any]:
    """SIGKILL random workers while batches stream in; retry every batch; compare."""
    till = new_till(env.server.base, env.token, store)
    stop = threading.Event()
    kills = []
    rng = random.Random(7)

    until = time.monotonic() + KILL_WINDOW_SECONDS

    def killer() -> None:
        while not stop.wait(rng.uniform(0.3, 1.0)) and time.monotonic() < until:
            pids = env.server.worker_pids()
            if pids:
                pid = rng.choice(pids)
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills.append(pid)
                except ProcessLookupError:
                    pass

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        result = run_stream(env.server.base, till, batches, threads=3)
    finally:
        stop.set()
        thread.join()
    retried = retry_until_done(till, batches, list(range(len(batches))))
    bad = {
        s: n for s, n in retried.statuses.items() if s not in ("duplicate", "accepted", "parked")
    }
    actual = snapshot(env.database_url)
    problems = [f"differs from the clean run: {name}" for name in differences(expected, actual)]
    if bad:
        problems.append(f"retry answered {bad}")
    if result.unclean_failures:
        problems.append(f"non-contract errors: {result.unclean_failures[:3]}")
    return {
        "kills": len(kills),
        "failed_batches": len(set(result.failed_batches)),
        "events": sum(len(b) for b in batches),
        "problems": problems,
    }


def postgres_restart(env: Env, batches: list, store: str) -> dict[str, Any]:
    """Crash-restart PostgreSQL a third of the way in; every acknowledged event must exist."""
    till = new_till(env.server.base, env.token, store)
    sent = [0]
    lock = threading.Lock()
    restarted = threading.Event()

    def on_batch(_index: int) -> None:
        with lock:
            sent[0] += 1
            due = sent[0] == len(batches) // 3
        if due:
            env.cluster.pg.crash_restart()
            restarted.set()

    result = run_stream(env.server.base, till, batches, threads=3, on_batch=on_batch)
    stored = existing_ids(env.database_url, store)
    lost = sorted(set(result.acknowledged) - stored)
    retry_until_done(till, batches, result.failed_batches)
    every = {
        e.get("sale_id") if e["type"] == "sale" else e["return_id"] for b in batches for e in b
    }
    missing = every - existing_ids(env.database_url, store)
    problems = []
    if not restarted.is_set():
        problems.append("PostgreSQL was not restarted")
    if lost:
        problems.append(f"{len(lost)} acknowledged events lost, e.g. {lost[:3]}")
    if missing:
        problems.append(f"{len(missing)} events missing after the retries")
    if result.unclean_failures:
        problems.append(f"non-contract errors: {result.unclean_failures[:3]}")
    return {
        "acknowledged": len(result.acknowledged),
        "failed_batches": len(set(result.failed_batches)),
        "problems": problems,
    }


def redis_down(env: Env, batches: list, store: str) -> dict[str, Any]:
    """With Redis stopped: money paths answer a clean JSON error (or succeed) and leave no
    half-done write; once it is back the same requests succeed and add up."""
    base, headers = env.server.base, admin_headers(env.token)
    till = new_till(base, env.token, store)
    member = till.identify(phone="13700000001", register=True, consent=True)
    if member.status not in (200, 201):
        raise RuntimeError(f"identify failed: {member.status} {member.json}")
    member_id = member.json["member_id"]
    adjust_url = f"{base}/admin/v1/members/{member_id}/points/adjustments"
    adjust = {"points": 50, "reason": "reliability: redis down"}
    problems = []

    env.cluster.redis.stop()
    try:
        answers = []
        half = run_stream(base, till, batches, threads=2)
        answers.append(("events", half.requests - len(half.failed_batches), half.unclean_failures))
        for i in range(3):
            r = requests.post(
                adjust_url,
                json=adjust,
                headers={**headers, "Idempotency-Key": f"rd-{i}"},
                timeout=30,
            )
            answers.append(("adjust", r.status_code, _clean(r)))
        payment, openid, transaction_id = notify.signed_notification(env.server.env, 5000)
        paid_down = notify.deliver(base, payment)
        answers.append(("notify", paid_down.status_code, _clean(paid_down)))
        ready = requests.get(f"{base}/readyz", timeout=30)
        if ready.status_code != 503:
            problems.append(f"/readyz answered {ready.status_code} with Redis down")
        for _kind, _status, unclean in answers:
            if unclean:
                problems.append(f"unclean answer with Redis down: {unclean}")
        acknowledged_down = set(half.acknowledged)
        # nothing half done: events are either acknowledged or absent
        stored = existing_ids(env.database_url, store)
        stray = stored - acknowledged_down
        if stray:
            problems.append(f"{len(stray)} events written but not acknowledged")
    finally:
        env.cluster.redis.start()
    deadline = time.monotonic() + 30
    while requests.get(f"{base}/readyz", timeout=30).status_code != 200:
        if time.monotonic() > deadline:
            problems.append("not ready 30 s after Redis came back")
            break
        time.sleep(0.2)
    retry_until_done(till, batches, list(range(len(batches))))
    for i in range(3):
        r = requests.post(
            adjust_url, json=adjust, headers={**headers, "Idempotency-Key": f"rd-{i}"}, timeout=30
        )
        if r.status_code not in (200, 201):
            problems.append(f"adjustment after recovery answered {r.status_code}")
    every = {
        e.get("sale_id") if e["type"] == "sale" else e["return_id"] for b in batches for e in b
    }
    if every - existing_ids(env.database_url, store):
        problems.append("events missing after Redis recovered")
    # the platform retries a notification until it is acknowledged: once more, now
    if notify.deliver(base, payment).status_code != 200:
        problems.append("payment notification refused after Redis recovered")
    paid = notify.effects(env.database_url, openid, transaction_id)
    if paid != (1, 1, 1, 50):
        problems.append(f"payment during the outage left {paid} (members, purchases, credits, pts)")
    held = balance_of(env.database_url, member_id)
    if held != 150:
        problems.append(f"the adjusted member holds {held} points, not 150")
    return {
        "events_acked_while_down": len(half.acknowledged),
        "notify_status_while_down": paid_down.status_code,
        "problems": problems,
    }


def _clean(response: requests.Response) -> str | None:
    """None if the answer is a success or a JSON error in the contract's shape."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} non-JSON"
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return f"{response.status_code} {str(body)[:80]}"
    if response.status_code == 500:
        return f"500 {body['error'].get('code')}"
    return None
