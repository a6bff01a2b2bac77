"""Where a measurement's CPU went: seconds used by the app's workers, PostgreSQL and the load tool.

Read from ``/proc`` before and after a measurement, so a figure can say what bounds it (on a
2-core machine the app, the database and the load generator share the same cores). Processes
are grouped by name: ``gunicorn`` (the app), ``postgres`` (the server and its backends),
``wrk`` (the load tool); ``machine_busy`` is every core's non-idle time from ``/proc/stat``.
A process that exits during the measurement takes its time with it, so the groups are lower
bounds.
"""

from __future__ import annotations

import os
from pathlib import Path

GROUPS = {"gunicorn": "app", "postgres": "postgres", "wrk": "load_tool"}
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _by_group() -> dict[str, float]:
    used = dict.fromkeys(GROUPS.values(), 0.0)
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
        used[group] += (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    return used


def _machine_busy() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / TICK


def snapshot() -> dict[str, float]:
    return {**_by_group(), "machine_busy": _machine_busy()}


def per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict:
    """CPU milliseconds per request of each group between two snapshots."""
    if requests <= 0:
        return {}
    return {
        f"{name}_cpu_ms": round((after[name] - before[name]) * 1000 / requests, 2)
        for name in before
    }
