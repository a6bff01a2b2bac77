"""``make reliability-nodes``: Huiyuan on more than one machine, on loopback.

    .venv/bin/python -m bench.reliability.nodes [--payments N] [--keep]

Starts its own PostgreSQL primary (``initdb`` in a temp dir, a port in 5440–5449) and a
streaming replica of it (``pg_basebackup -R``), then two app nodes (gunicorn, each with its
money applier), two RQ workers and two schedulers, all on one Redis database
(``NODES_REDIS_URL``, default ``redis://127.0.0.1:6379/11``, emptied first) and with
``REPORTS_DATABASE_URL`` on the replica. It then

1. drives signed payment notifications and two POS tills at both nodes (one payment in ten is
   delivered to both nodes), SIGKILLs one node (gunicorn and its applier) and one worker
   mid-run, resends what failed to the surviving node (as a load balancer would), and
   restarts them;
2. runs the year-end expiry as two runners sharing one run (``flask jobs run points.expire
   --run-key … --as-of …``), SIGKILLs one mid-run and starts it again;
3. reads the KPIs through the nodes (served from the replica) and compares them with the
   primary once the replica has replayed;

and checks that nothing doubled and nothing was lost: every acknowledged payment is one
purchase with one credit, the tills' sales and returns are all there once, each lot expired
once, each scheduled period was claimed once with no gap, and ``flask audit`` is clean.
Prints PASS/FAIL and a summary line; writes ``bench/results/nodes.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402

from bench.reliability.cluster import BIN, PG_BIN, Gunicorn, Postgres  # noqa: E402
from bench.reliability.notify import deliver, wechat_settings  # noqa: E402
from bench.reliability.snapshot import plain_url  # noqa: E402
from bench.reliability.stream import (  # noqa: E402
    admin_headers,
    make_batches,
    new_till,
    retry_until_done,
    run_stream,
)

RESULTS = ROOT / "bench" / "results" / "nodes.json"
PORTS = range(5440, 5450)
AS_OF = "2028-01-01T00:00:00+0000"  # after the Shanghai year end 2027: every lot is due


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def port_in_range(taken: set[int]) -> int:
    for port in PORTS:
        if port in taken:
            continue
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                taken.add(port)
                return port
    raise RuntimeError("no free port in 5440-5449")


class Primary(Postgres):
    def __init__(self, root: Path, port: int):
        super().__init__(root)
        self.port = port

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir}"
            " -c max_connections=200 -c wal_level=replica -c max_wal_senders=5"
            " -c hot_standby=on"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start")


class Replica(Primary):
    """A hot standby streaming from the primary (``pg_basebackup -R``)."""

    def __init__(self, root: Path, port: int, primary: Primary):
        super().__init__(root, port)
        self.dir = root / "pg-replica"
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.primary = primary

    def init(self) -> None:
        self.dir.mkdir()
        if self._as_root:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self._run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary.port),
            "-U",
            "postgres",
            "-D",
            str(self.data),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
        )


class Proc:
    """A ``flask …`` process (worker, scheduler, job runner) with its log."""

    def __init__(self, root: Path, env: dict[str, str], name: str, *args: str):
        self.name, self.args, self.env = name, args, env
        self.log_path = root / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "flask"), "--app", "wsgi", *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def kill_node(node: Gunicorn) -> None:
    """SIGKILL a whole node: its gunicorn master, its workers and its applier."""
    pids = node.worker_pids()
    if node.proc is not None:
        node.proc.kill()
        node.proc.wait()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    node.proc = None
    node.kill_applier()


def flask(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        check=check,
        capture_output=True,
        text=True,
        timeout=600,
    )


def payment_bodies(config: dict[str, str], count: int) -> list[tuple[bytes, str, str, int]]:
    from bench.reliability import applier

    bodies = applier._bodies(config, seed=11)
    return bodies[:count]


def send_payments(
    nodes: list[Gunicorn], bodies: list, acked: set[str], on_progress: Any, stop_at: int
) -> dict[str, int]:
    """Body i goes to node i % 2 (one in ten to both); a failure is sent to the other node."""
    lock = threading.Lock()
    queue = list(enumerate(bodies))
    stats: dict[str, int] = defaultdict(int)

    def sender() -> None:
        while True:
            with lock:
                if not queue:
                    return
                i, (body, _, txn, _) = queue.pop(0)
            targets = [i % 2, 1 - i % 2] if i % 10 == 0 else [i % 2]
            for first in targets:
                for attempt in range(40):
                    node = nodes[(first + attempt) % 2]  # failover: the other node
                    try:
                        r = deliver(node.base, body)
                    except requests.RequestException:
                        with lock:
                            stats["failed_deliveries"] += 1
                        time.sleep(0.1)
                        continue
                    if r.status_code == 200 and b"SUCCESS" in r.content:
                        with lock:
                            acked.add(txn)
                            stats[f"node{(first + attempt) % 2}"] += 1
                        break
                    with lock:
                        stats["failed_deliveries"] += 1
                    time.sleep(0.1)
            with lock:
                stats["sent"] += 1
                done = stats["sent"]
            if done == stop_at:
                on_progress()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return dict(stats)


def wait_for(predicate: Any, seconds: float, step: float = 0.5) -> float | None:
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        if predicate():
            return round(time.monotonic() - began, 1)
        time.sleep(step)
    return None


def q(url: str, sql: str, params: Any = None) -> Any:
    with psycopg.connect(plain_url(url), autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=600)
    parser.add_argument("--batches", type=int, default=12, help="POS batches per till")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    if not (PG_BIN / "initdb").exists() or shutil.which("pg_basebackup") is None:
        print("make reliability-nodes needs PostgreSQL's initdb and pg_basebackup")
        return 2
    redis_url = os.environ.get("NODES_REDIS_URL", "redis://127.0.0.1:6379/11")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop everything on the way out
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="huiyuan-nodes-"))
    root.chmod(0o755)
    taken: set[int] = set()
    primary = Primary(root, port_in_range(taken))
    replica = Replica(root, port_in_range(taken), primary)
    nodes: list[Gunicorn] = []
    procs: list[Proc] = []
    problems: list[str] = []
    figures: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    try:
        import redis

        redis.Redis.from_url(redis_url).flushdb()  # our own database number, nothing else
        log(f"primary on :{primary.port}, replica on :{replica.port}, Redis {redis_url}")
        primary.init()
        primary.start()
        url = primary.create_database("huiyuan_nodes")
        replica.init()
        replica.start()
        replica_url = replica.url("huiyuan_nodes")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "HUIYUAN_"))}
        env.update(
            HUIYUAN_ENV="production",
            SECRET_KEY="nodes-" + os.urandom(24).hex(),
            DATABASE_URL=url,
            REPORTS_DATABASE_URL=replica_url,
            REDIS_URL=redis_url,
            **wechat_settings(),
        )
        flask(env, "db", "upgrade")
        token = flask(env, "admin", "create-token", "nodes").stdout.strip().splitlines()[-1]
        run_started = datetime.now(UTC)
        for name in ("a", "b"):
            nodes.append(Gunicorn(root, env, f"node-{name}", workers=2))
            nodes[-1].start()
        for i in (1, 2):
            procs.append(Proc(root, env, f"worker-{i}", "jobs", "worker"))
            procs.append(Proc(root, env, f"scheduler-{i}", "jobs", "scheduler", "--interval", "1"))
        for p in procs:
            p.start()
        log(f"nodes {nodes[0].base} {nodes[1].base}; 2 workers, 2 schedulers")

        # 1. payments and POS at both nodes; a node and a worker killed mid-run
        bodies = payment_bodies(env, args.payments)
        acked: set[str] = set()
        tills = [new_till(nodes[0].base, token, "N1"), new_till(nodes[1].base, token, "N2")]
        batches = [
            make_batches(f"A{i}", batches=args.batches, size=40, phones=200, seed=20 + i)
            for i in range(2)
        ]
        killed: dict[str, Any] = {}

        def chaos() -> None:
            log("SIGKILL node b (gunicorn and its applier) and worker-1")
            kill_node(nodes[1])
            procs[0].kill()
            killed["at"] = time.monotonic()

            def restart() -> None:
                time.sleep(5)
                nodes[1].start()
                procs[0].start()
                log("node b and worker-1 started again")

            threading.Thread(target=restart).start()

        pos_results: list[Any] = [None, None]

        def pos(i: int) -> None:
            pos_results[i] = run_stream(nodes[i].base, tills[i], batches[i], threads=2)

        pos_threads = [threading.Thread(target=pos, args=(i,)) for i in range(2)]
        for t in pos_threads:
            t.start()
        log(f"{len(bodies)} payments and 2 x {args.batches} POS batches at both nodes")
        pay_stats = send_payments(nodes, bodies, acked, chaos, stop_at=len(bodies) * 2 // 5)
        for t in pos_threads:
            t.join()
        from pos_adapter.client import PosClient

        for i in range(2):  # what failed goes again, through the node that is up
            survivor = PosClient.for_url(
                nodes[0].base, terminal_id=tills[i].terminal_id, secret=tills[i].secret
            )
            retry_until_done(survivor, batches[i], pos_results[i].failed_batches)
        figures["payments"] = {"sent": len(bodies), "acknowledged": len(acked), **pay_stats}
        figures["pos_failed_batches_resent"] = [len(r.failed_batches) for r in pos_results]
        drained = wait_for(
            lambda: not q(url, "SELECT count(*) FROM money_events WHERE state='pending'")[0][0],
            180,
        )
        figures["journal_drained_s"] = drained
        if drained is None:
            problems.append("the money journal did not drain in 180 s")
        traffic_done = datetime.now(UTC)

        # what was sent against what the primary holds
        txns = [txn for _, _, txn, _ in bodies]
        purchases = q(url, "SELECT count(*) FROM purchases WHERE external_id = ANY(%s)", (txns,))
        credits = q(
            url,
            "SELECT count(*) FROM points_entries e JOIN purchases p ON e.idempotency_key ="
            " 'purchase:' || p.id || ':earn' WHERE p.external_id = ANY(%s)",
            (txns,),
        )
        figures["payments"]["purchases"] = purchases[0][0]
        figures["payments"]["credits"] = credits[0][0]
        if len(acked) != len(bodies):
            problems.append(f"{len(bodies) - len(acked)} payments never acknowledged")
        if purchases[0][0] != len(acked) or credits[0][0] != len(acked):
            problems.append(
                f"{len(acked)} payments acknowledged: {purchases[0][0]} purchases, "
                f"{credits[0][0]} credits"
            )
        sent_sales = sum(e["type"] == "sale" for b in batches for batch in b for e in batch)
        sent_returns = sum(e["type"] == "return" for b in batches for batch in b for e in batch)
        sales = q(url, "SELECT count(*), count(DISTINCT (store_id, sale_id)) FROM pos_sales")[0]
        returns = q(url, "SELECT count(*), count(DISTINCT (store_id, return_id)) FROM pos_returns")
        figures["pos"] = {
            "sales_sent": sent_sales,
            "sales": sales[0],
            "returns_sent": sent_returns,
            "returns": returns[0][0],
        }
        if sales[0] != sent_sales or sales[1] != sent_sales:
            problems.append(f"{sent_sales} sales sent, {sales[0]} stored ({sales[1]} distinct)")
        if returns[0][0] != sent_returns or returns[0][1] != sent_returns:
            problems.append(f"{sent_returns} returns sent, {returns[0][0]} stored")

        # 2. the year-end expiry: two runners on one run, one SIGKILLed and started again
        due = q(
            url,
            "SELECT count(*), coalesce(sum(remaining), 0) FROM points_lots"
            " WHERE remaining > 0 AND expires_at <= %s",
            (datetime(2028, 1, 1, tzinfo=UTC),),
        )[0]
        run_args = (
            "jobs", "run", "points.expire", "--run-key", "nodes-year-end",
            "--as-of", AS_OF, "--chunk-size", "4", "--quiet",
        )  # fmt: skip
        runners = [Proc(root, env, f"expiry-{i}", *run_args) for i in (1, 2)]
        log(f"year-end expiry of {due[0]} lots ({due[1]} points): two runners, one killed")
        for r in runners:
            r.start()
        progress_id = None

        def chunks_done() -> int:
            rows = q(
                url,
                "SELECT count(*) FROM job_chunks c JOIN job_progress p ON p.id = c.progress_id"
                " WHERE p.run_key = 'nodes-year-end' AND c.status = 'done'",
            )
            return rows[0][0]

        wait_for(lambda: chunks_done() >= 5, 120, 0.1)
        runners[0].kill()
        figures["expiry_killed_after_chunks"] = chunks_done()
        runners[0].start()
        for r in runners:
            assert r.proc is not None
            r.proc.wait(timeout=600)
        progress = q(
            url,
            "SELECT id, state, result FROM job_progress WHERE run_key = 'nodes-year-end'",
        )[0]
        progress_id = progress[0]
        chunk_rows = q(
            url,
            "SELECT count(*), count(DISTINCT lo), count(DISTINCT worker) FROM job_chunks"
            " WHERE progress_id = %s",
            (progress_id,),
        )[0]
        left = q(
            url,
            "SELECT count(*) FROM points_lots WHERE remaining > 0 AND expires_at <= %s",
            (datetime(2028, 1, 1, tzinfo=UTC),),
        )[0][0]
        expire_entries = q(
            url, "SELECT count(*), count(DISTINCT idempotency_key), coalesce(-sum(points), 0)"
            " FROM points_entries WHERE kind = 'expire'",
        )[0]  # fmt: skip
        result = progress[2] or {}
        figures["expiry"] = {
            "due_lots": due[0],
            "due_points": int(due[1]),
            "result": result,
            "state": progress[1],
            "chunks": chunk_rows[0],
            "runner_processes": chunk_rows[2],
            "entries": expire_entries[0],
            "left_due": left,
        }
        if progress[1] != "done" or left:
            problems.append(f"expiry run {progress[1]}, {left} due lots left")
        if (result.get("lots"), result.get("points")) != (due[0], int(due[1])):
            problems.append(f"expiry counted {result}, expected {due[0]} lots/{due[1]} points")
        if expire_entries[0] != due[0] or expire_entries[1] != due[0]:
            problems.append(f"{expire_entries[0]} expire entries for {due[0]} due lots")
        if chunk_rows[0] != chunk_rows[1]:
            problems.append("a range was handed out twice")

        # 3. reports through the nodes, served by the replica
        log("KPIs through both nodes (read from the replica)")
        rollup_after = traffic_done

        def rolled_up() -> bool:
            return bool(
                q(
                    url,
                    "SELECT count(*) FROM job_runs WHERE name = 'reports.rollup'"
                    " AND status = 'done' AND started_at > %s",
                    (rollup_after,),
                )[0][0]
            )

        figures["rollup_wait_s"] = wait_for(rolled_up, 150)

        def replayed() -> bool:
            lsn = q(url, "SELECT pg_current_wal_lsn()")[0][0]
            return bool(
                q(replica_url, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (str(lsn),))[0][0]
            )

        figures["replica_catch_up_s"] = wait_for(replayed, 60, 0.1)
        lag = q(url, "SELECT replay_lag FROM pg_stat_replication")
        figures["replica_replay_lag"] = str(lag[0][0]) if lag else None
        figures["replica_in_recovery"] = q(replica_url, "SELECT pg_is_in_recovery()")[0][0]
        today = datetime.now(UTC).astimezone(_shanghai()).date()
        first = date(2026, 11, 1)
        start = min(first, today - timedelta(days=1))
        api = []
        for node in nodes:
            r = requests.get(
                f"{node.base}/admin/v1/reports/kpis",
                params={"from": start.isoformat(), "to": today.isoformat()},
                headers=admin_headers(token),
                timeout=60,
            )
            r.raise_for_status()
            api.append(sum(d["purchases"] for d in r.json()["days"]))
        on_primary = q(
            url,
            "SELECT coalesce(sum(purchases), 0) FROM kpi_daily WHERE store_id = 0"
            " AND day BETWEEN %s AND %s",
            (start, today),
        )[0][0]
        readers = q(
            replica_url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'huiyuan_nodes'"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
        )[0][0]
        figures["kpis"] = {
            "purchases_via_node_a": api[0],
            "purchases_via_node_b": api[1],
            "purchases_on_primary": int(on_primary),
            "purchases_sent": len(acked) + sent_sales,
            "app_connections_on_replica": readers,
        }
        if not (api[0] == api[1] == int(on_primary)):
            problems.append(f"KPIs via the replica {api} differ from the primary {on_primary}")
        if not readers:
            problems.append("no app connection on the replica: the reports read elsewhere")

        # 4. each scheduled period claimed once, with no gap
        for p in procs:
            p.stop()
        from app.jobs.registry import PERIODIC

        runs = q(
            url,
            "SELECT name, period_key, status, attempts FROM job_runs WHERE claimed_at >= %s",
            (run_started,),
        )
        by_job: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
        for name, key, status, attempts in runs:
            by_job[name].append((key, status, attempts))
        schedule: dict[str, Any] = {}
        for name, rows in sorted(by_job.items()):
            keys = [k for k, _, _ in rows]
            every = PERIODIC[name].every
            gaps = 0
            if every is not None:
                numbers = sorted(int(k.split(":")[1]) for k in keys)
                gaps = (numbers[-1] - numbers[0] + 1) - len(numbers)
            schedule[name] = {
                "periods": len(keys),
                "duplicates": len(keys) - len(set(keys)),
                "gaps": gaps,
                "not_done": sum(s != "done" for _, s, _ in rows),
                "retried": sum(a > 1 for _, _, a in rows),
            }
            if schedule[name]["duplicates"] or gaps:
                problems.append(f"{name}: {schedule[name]}")
        figures["schedule"] = schedule
        unfinished = sum(s["not_done"] for s in schedule.values())
        if unfinished > 2:  # at most what the killed worker held, and the run at the stop
            problems.append(f"{unfinished} scheduled runs not done")

        for node in nodes:
            node.stop()
        out = flask(env, "audit", check=False)
        figures["audit"] = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
        if out.returncode != 0:
            problems.append("flask audit: " + " | ".join(out.stdout.strip().splitlines()[-5:]))
    except Exception as exc:  # noqa: BLE001 (a crash of the harness is a failure, with its reason)
        problems.append(f"harness: {type(exc).__name__}: {exc}")
        import traceback

        traceback.print_exc()
    finally:
        for node in nodes:
            try:
                node.stop()
            except Exception:  # noqa: BLE001, S110 (stopping what is left)
                pass
        for p in procs:
            p.stop()
        replica.stop()
        primary.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    elapsed = time.monotonic() - started
    figures["load_after"] = os.getloadavg()[0]
    record = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "seconds": round(elapsed),
        "figures": figures,
        "problems": problems,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n")
    for problem in problems:
        print(f"PROBLEM {problem}")
    print(json.dumps(figures, indent=1, default=str, ensure_ascii=False))
    print(_summary(figures, problems, elapsed))
    return 1 if problems else 0


def _shanghai() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Shanghai")


def _summary(f: dict[str, Any], problems: list[str], elapsed: float) -> str:
    pay = f.get("payments", {})
    pos = f.get("pos", {})
    exp = f.get("expiry", {})
    kpi = f.get("kpis", {})
    sched = f.get("schedule", {})
    return " ".join(
        [
            "reliability-nodes:",
            "PASS" if not problems else f"FAIL ({len(problems)} problems)",
            f"2 nodes/2 workers/2 schedulers; {pay.get('acknowledged')}/{pay.get('sent')}"
            f" payments acked → {pay.get('purchases')} purchases/{pay.get('credits')} credits"
            f" ({pay.get('failed_deliveries', 0)} deliveries failed over);",
            f"POS {pos.get('sales')}/{pos.get('sales_sent')} sales,"
            f" {pos.get('returns')}/{pos.get('returns_sent')} returns;",
            f"expiry {exp.get('result', {}).get('lots')}/{exp.get('due_lots')} lots by"
            f" {exp.get('runner_processes')} runner processes (one killed), {exp.get('left_due')}"
            " left;",
            f"KPIs via replica {kpi.get('purchases_via_node_a')} = primary"
            f" {kpi.get('purchases_on_primary')};",
            f"{sum(s['periods'] for s in sched.values())} periods,"
            f" {sum(s['duplicates'] for s in sched.values())} doubled,"
            f" {sum(s['gaps'] for s in sched.values())} gaps;",
            f"{f.get('audit', 'audit: not run')}; load {f.get('load_before', 0):.1f}; "
            f"{elapsed:.0f}s",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
