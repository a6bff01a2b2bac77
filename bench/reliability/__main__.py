"""``make reliability``: fault, load and hostile-input scenarios on throwaway services.

    .venv/bin/python -m bench.reliability [--quick] [--keep]

Starts its own PostgreSQL cluster and Redis on free loopback ports and gunicorn with the
production config, runs every scenario, then ``flask audit`` on every database; exits 1 if any
scenario found a problem or the audit a difference. Prints one summary line at the end.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.reliability import applier, faults, notify  # noqa: E402
from bench.reliability.cluster import Cluster  # noqa: E402
from bench.reliability.stream import make_batches  # noqa: E402

SCENARIOS = ("kill", "notify", "applier_kill", "pg_restart", "redis_down", "schemathesis")
RESULTS = ROOT / "bench" / "results" / "reliability.json"


def prepare(cluster: Cluster, name: str) -> tuple[dict[str, str], str, str]:
    url = cluster.pg.create_database(name)
    env = cluster.app_env(url)
    cluster.flask(env, "db", "upgrade")
    token = (
        cluster.flask(env, "admin", "create-token", "reliability").stdout.strip().splitlines()[-1]
    )
    return env, url, token


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller streams (a smoke run)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, help="run only these scenarios"
    )
    args = parser.parse_args()
    wanted = set(args.only or SCENARIOS)
    size = 40 if args.quick else 75  # sales per batch; returns come on top (at most 100)
    started = time.monotonic()
    figures: dict = {}
    problems: dict[str, list[str]] = {}
    missing = Cluster.missing_programs()
    if missing:
        print(
            f"make reliability needs {', '.join(missing)}: apt-get install postgresql redis-server"
        )
        return 2
    cluster = Cluster()
    try:
        log(f"services in {cluster.root}")
        cluster.start()
        clean_env, clean_url, clean_token = prepare(cluster, "rel_clean")
        env, url, token = prepare(cluster, "rel_main")
        env.update(notify.wechat_settings())

        batches = make_batches("K", batches=30 if args.quick else 40, size=size, phones=300, seed=1)
        if "kill" in wanted:
            log("clean run of the POS stream")
            clean = cluster.server(clean_env, "clean")
            clean_ctx = faults.Env(cluster, clean, clean_url, clean_token)
            expected = faults.clean_run(clean_ctx, batches, "S1")
            clean.stop()
        server = cluster.server(env, "main")
        main_env = faults.Env(cluster, server, url, token)

        def scenario(name: str, title: str, fn) -> None:
            if name not in wanted:
                return
            log(title)
            found = fn()
            problems[name] = found.pop("problems")
            figures[name] = found

        scenario(
            "kill",
            "POS stream with workers SIGKILLed at random",
            lambda: faults.killed_workers(main_env, batches, "S1", expected),
        )
        scenario(
            "notify",
            f"{notify.DELIVERIES} concurrent duplicate deliveries of one payment notification",
            lambda: notify.duplicate_deliveries(main_env),
        )
        scenario(
            "applier_kill",
            f"{applier.PAYMENTS} payment notifications, the applier SIGKILLed at random",
            lambda: applier.applier_killed(main_env),
        )
        pg_batches = make_batches("P", batches=24, size=size, phones=300, seed=2)
        scenario(
            "pg_restart",
            "POS stream with PostgreSQL crash-restarted",
            lambda: faults.postgres_restart(main_env, pg_batches, "S2"),
        )
        rd_batches = make_batches("D", batches=6, size=20, phones=300, seed=3)
        scenario(
            "redis_down",
            "money paths with Redis stopped",
            lambda: faults.redis_down(main_env, rd_batches, "S3"),
        )

        def fuzzing() -> dict:
            from bench.reliability import fuzz

            return fuzz.run(main_env, quick=args.quick)

        scenario("schemathesis", "schemathesis over /openapi.json", fuzzing)

        server.stop()
        log("flask audit on every database")
        for name, e in (("clean", clean_env), ("main", env)):
            out = cluster.flask(e, "audit", check=False)
            figures[f"audit_{name}"] = out.stdout.strip().splitlines()[-1]
            if out.returncode != 0:
                problems[f"audit_{name}"] = out.stdout.strip().splitlines()[-20:]
    finally:
        cluster.close(keep=args.keep)
    elapsed = time.monotonic() - started
    failed = {name: p for name, p in problems.items() if p}
    for name, found in failed.items():
        for line in found:
            print(f"PROBLEM {name}: {line}")
    record = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {_cores()} cores, {_memory_gb()} GB",
        "seconds": round(elapsed),
        "figures": figures,
        "problems": failed,
    }
    if not args.quick and not args.only:  # only a full run is the figure of record
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    print(_summary(record, figures, failed, elapsed))
    return 1 if failed else 0


def _summary(record: dict, f: dict, failed: dict, elapsed: float) -> str:
    parts = [
        "reliability:",
        "PASS" if not failed else f"FAIL ({', '.join(failed)})",
    ]
    if "notify" in f:
        parts.append(
            f"notify {f['notify']['deliveries']} dup deliveries → "
            f"{f['notify']['members']} member/{f['notify']['credits']} credit;"
        )
    if "kill" in f:
        parts.append(
            f"{f['kill']['kills']} workers killed over {f['kill']['events']} events "
            f"({f['kill']['failed_batches']} batches failed, retried = clean run);"
        )
    if "applier_kill" in f:
        ak = f["applier_kill"]
        parts.append(
            f"applier killed {ak['applier_kills']}× over {ak['acknowledged']} payments → "
            f"{ak['purchases']} purchases/{ak['credits']} credits, drained in {ak['drained_s']} s;"
        )
    if "pg_restart" in f:
        parts.append(f"PG crash-restart: {f['pg_restart']['acknowledged']} acked, 0 lost;")
    if "redis_down" in f:
        rd = f["redis_down"]
        parts.append(
            f"Redis down: POS 503 ({rd['events_acked_while_down']} acked), payment notify "
            f"{rd['notify_status_while_down']}, recovered;"
        )
    if "schemathesis" in f:
        parts.append(
            f"schemathesis {f['schemathesis']['operations']} ops "
            f"{f['schemathesis']['requests']} requests;"
        )
    parts.append(f"{f.get('audit_main', 'audit: not run')}; {elapsed:.0f}s")
    return " ".join(parts)


def _cores() -> int:
    import os

    return os.cpu_count() or 0


def _memory_gb() -> int:
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return round(kb / 1024 / 1024)


if __name__ == "__main__":
    raise SystemExit(main())
