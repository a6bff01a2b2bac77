"""POS ingest benchmark: signed sale events per second through HTTP, against pgbench -N.

    .venv/bin/python bench/pos_ingest.py [--seconds 20] [--clients 4] [--pg-url URL]

It (re)creates two databases on the PostgreSQL server: ``huiyuan_bench_pos`` (migrated, served
by gunicorn with the production config on a free loopback port, Redis db 14) and
``huiyuan_bench_pgbench`` (``pgbench -i``). Then it activates a terminal, posts signed batches
of 100 sale events from ``--clients`` threads for ``--seconds``, runs ``pgbench -N`` with as many
clients for as long, and prints both figures and their ratio.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pos_adapter.client import PosClient  # noqa: E402

BIN = Path(sys.executable).parent
APP_DB = "huiyuan_bench_pos"
PGBENCH_DB = "huiyuan_bench_pgbench"
REDIS_URL = "redis://127.0.0.1:6379/14"
BATCH = 100


def recreate_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(pg: urlparse, port: int) -> dict[str, str]:
    auth = pg.username + (f":{pg.password}" if pg.password else "")
    return {
        **os.environ,
        "HUIYUAN_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": f"postgresql+psycopg://{auth}@{pg.hostname}:{pg.port or 5432}/{APP_DB}",
        "REDIS_URL": REDIS_URL,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
    }


def flask(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


def wait_ready(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("gunicorn exited during start-up")
        try:
            if requests.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit("gunicorn did not become ready in 120 s")


def activated_terminal(base: str, admin_token: str) -> PosClient:
    """A new activated till of store BENCH (created unless a kept database has it)."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    store = requests.post(
        f"{base}/admin/v1/stores",
        json={"code": "BENCH", "name": "bench"},
        headers=headers,
        timeout=10,
    )
    if store.status_code != 409:
        store.raise_for_status()
    created = requests.post(
        f"{base}/admin/v1/stores/BENCH/terminals",
        json={"name": "bench till"},
        headers=headers,
        timeout=10,
    )
    created.raise_for_status()
    till = PosClient.for_url(base)
    if till.activate(created.json()["activation_code"]).status != 201:
        raise SystemExit("activation failed")
    return till


def sale_batch(
    prefix: str, number: int, rng: random.Random, phone_prefix: str = "139"
) -> list[dict]:
    now = datetime.now(UTC).isoformat()
    events = []
    for i in range(BATCH):
        paid = rng.randint(500, 30000)
        event = {
            "type": "sale",
            "sale_id": f"{prefix}-{number}-{i}",
            "occurred_at": now,
            "total_fen": paid,
            "paid_fen": paid,
            "lines": [
                {"sku": f"SKU-{rng.randint(1, 500)}", "qty": 1, "amount_fen": paid - paid // 3},
                {"sku": f"SKU-{rng.randint(1, 500)}", "qty": 2, "amount_fen": paid // 3},
            ],
        }
        if rng.random() < 0.8:  # most sales name a member, from a pool of 5,000 phones
            event["member"] = {"phone": f"{phone_prefix}{rng.randint(0, 4999):08d}"}
        events.append(event)
    return events


def post_for(
    base: str,
    till: PosClient,
    seconds: float,
    clients: int,
    prefix: str = "c",
    phone_prefix: str = "139",
) -> tuple[int, float, int]:
    counts = [0] * clients
    failures = [0] * clients
    stop_at = time.monotonic() + seconds

    def worker(index: int) -> None:
        own = PosClient.for_url(base, terminal_id=till.terminal_id, secret=till.secret)
        rng = random.Random(index)
        number = 0
        while time.monotonic() < stop_at:
            response = own.send_events(
                sale_batch(f"{prefix}{index}", number, rng, phone_prefix=phone_prefix)
            )
            number += 1
            if response.status != 200:
                failures[index] += 1
                continue
            counts[index] += sum(r["status"] == "accepted" for r in response.json["results"])

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), time.monotonic() - started, sum(failures)


def _pgbench_args(pg: urlparse) -> tuple[list[str], dict[str, str]]:
    base = ["-h", pg.hostname or "127.0.0.1", "-p", str(pg.port or 5432), "-U", pg.username]
    return base, {**os.environ, "PGPASSWORD": pg.password or ""}


def pgbench_init(pg: urlparse) -> None:
    """pgbench's tables at scale 10 in ``PGBENCH_DB``."""
    base, env = _pgbench_args(pg)
    subprocess.run(
        ["pgbench", "-i", "-q", "-s", "10", *base, PGBENCH_DB],
        check=True,
        env=env,
        capture_output=True,
    )


def pgbench_tps(pg: urlparse, seconds: int, clients: int, init: bool = False) -> float:
    """``pgbench -N`` TPS (``init``: build its tables first)."""
    if init:
        pgbench_init(pg)
    base, env = _pgbench_args(pg)
    out = subprocess.run(
        [
            "pgbench",
            "-N",
            "-T",
            str(seconds),
            "-c",
            str(clients),
            "-j",
            str(clients),
            *base,
            PGBENCH_DB,
        ],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"tps = ([\d.]+)", out)
    if not match:
        raise SystemExit(f"could not read pgbench output:\n{out}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    pg = urlparse(args.pg_url)

    recreate_database(args.pg_url, APP_DB)
    recreate_database(args.pg_url, PGBENCH_DB)
    port = free_port()
    env = app_env(pg, port)
    flask(env, "db", "upgrade")
    admin_token = flask(env, "admin", "create-token", "bench").strip().splitlines()[-1]
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()

    log = open(Path(tempfile.gettempdir()) / "huiyuan-bench-pos.log", "w")
    server = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "-c",
            "gunicorn.conf.py",
            "--access-logfile",
            "/dev/null",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server)
        till = activated_terminal(base, admin_token)
        accepted, elapsed, failed = post_for(base, till, args.seconds, args.clients)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        log.close()
    events_per_s = accepted / elapsed
    tps = pgbench_tps(pg, args.seconds, args.clients, init=True)
    print(
        f"POS ingest: {accepted} sale events accepted in {elapsed:.1f} s "
        f"({args.clients} clients, batches of {BATCH}, {failed} failed batches)"
    )
    print(f"POS ingest: {events_per_s:.0f} sale events/s")
    print(f"pgbench -N: {tps:.0f} TPS ({args.clients} clients, {args.seconds} s, scale 10)")
    print(f"ratio: {events_per_s / tps:.3f} sale events per pgbench -N transaction")


if __name__ == "__main__":
    main()
