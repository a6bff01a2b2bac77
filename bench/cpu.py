"""Where a measurement's CPU went: seconds used by the app's workers, PostgreSQL and the load tool.

Read before and after a measurement, so a figure can say what bounds it (on a 2-core machine
the app, the database and the load generator share the same cores). ``app`` and ``postgres``
sum ``/proc/<pid>/stat`` over the processes named ``gunicorn`` and ``flask`` (the applier) and
``postgres``; ``applier`` is the applier's share of ``app``; ``load_tool``
is this process's own CPU (the Python clients: POS uploaders, identify, the fallback HTTP load)
plus that of the children it waited for meanwhile (wrk), from ``getrusage``; ``machine_busy``
is every core's non-idle time from ``/proc/stat``. A server process that exits during the
measurement takes its time with it, so ``app`` and ``postgres`` are lower bounds.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

GROUPS = {"gunicorn": "app", "flask": "app", "postgres": "postgres"}  # flask: the applier
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _by_process() -> dict[tuple[int, str], float]:
    """CPU seconds of each live app / applier / PostgreSQL process, by (pid, group)."""
    used: dict[tuple[int, str], float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        group = GROUPS.get(comm)
        if group is None:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
        used[(int(entry.name), group)] = seconds
        if comm == "flask":
            used[(int(entry.name), "applier")] = seconds
    return used


def _machine_busy() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / TICK


def _load_tool() -> float:
    used = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        used += usage.ru_utime + usage.ru_stime
    return used


def snapshot() -> dict:
    return {"processes": _by_process(), "load_tool": _load_tool(), "machine_busy": _machine_busy()}


def per_request(before: dict, after: dict, requests: int) -> dict:
    """CPU milliseconds per request of each group between two snapshots.

    A process's share is what it used between them: one started meanwhile counts whole, one
    that exited meanwhile (a pgbench connection's backend) is left out, never subtracted.
    """
    if requests <= 0:
        return {}
    used = {"app": 0.0, "applier": 0.0, "postgres": 0.0}
    for key, seconds in after["processes"].items():
        used[key[1]] += seconds - before["processes"].get(key, 0.0)
    used["load_tool"] = after["load_tool"] - before["load_tool"]
    used["machine_busy"] = after["machine_busy"] - before["machine_busy"]
    return {f"{name}_cpu_ms": round(value * 1000 / requests, 2) for name, value in used.items()}
