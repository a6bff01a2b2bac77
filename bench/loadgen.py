"""HTTP load for the bench: wrk when installed, else a Python keep-alive generator.

Both report the same figures: requests per second, p50 and p99 latency in milliseconds, and
how many responses were not the expected status. wrk (Debian/Ubuntu: ``apt-get install wrk``)
is the established tool and costs the machine less; the fallback (threads, each with one
``http.client`` keep-alive connection) is there for machines without it and says so.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

WRK_SCRIPT = r"""
-- posts the bodies of a file, one per line, each once across all threads (then wraps)
local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do bodies[#bodies + 1] = line end
local counter, threads = 0, {}
function setup(thread)
  thread:set("id", counter); counter = counter + 1; table.insert(threads, thread)
end
function init(args)
  index = id; stride = tonumber(os.getenv("BENCH_THREADS")); wrapped = 0; bad = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
end
function request()
  local body = bodies[(index % #bodies) + 1]
  if index >= #bodies then wrapped = wrapped + 1 end
  index = index + stride
  return wrk.format(nil, nil, nil, body)
end
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
function done(summary, latency, requests)
  local w, b = 0, 0
  for _, t in ipairs(threads) do w = w + t:get("wrapped"); b = b + t:get("bad") end
  io.write(string.format("BENCH wrapped=%d bad=%d\n", w, b))
end
"""


@dataclass
class LoadResult:
    tool: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-200 answers and socket errors
    reused: int = 0  # bodies sent a second time (the pre-generated list ran out)

    def as_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in vars(self).items()}


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run(
    url: str,
    *,
    seconds: int,
    connections: int,
    threads: int = 2,
    bodies: list[str] | None = None,
    content_type: str = "text/xml",
    force_python: bool = False,
) -> LoadResult:
    """GET ``url`` (no ``bodies``) or POST each body once, for ``seconds``."""
    if have_wrk() and not force_python:
        return _wrk(url, seconds, connections, threads, bodies, content_type)
    return _python(url, seconds, connections, bodies, content_type)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def _wrk(
    url: str,
    seconds: int,
    connections: int,
    threads: int,
    bodies: list[str] | None,
    content_type: str,
) -> LoadResult:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    env = None
    with tempfile.TemporaryDirectory() as tmp:
        if bodies is not None:
            body_file = Path(tmp) / "bodies.txt"
            body_file.write_text("\n".join(bodies) + "\n")
            script = Path(tmp) / "post.lua"
            script.write_text(WRK_SCRIPT)
            cmd += ["-s", str(script)]
            env = {
                "BENCH_BODIES": str(body_file),
                "BENCH_THREADS": str(threads),
                "BENCH_CONTENT_TYPE": content_type,
                "PATH": "/usr/bin:/bin",
            }
        out = subprocess.run(
            [*cmd, url], capture_output=True, text=True, check=True, env=env
        ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    elapsed = _ms(re.search(r"requests in ([\d.]+\w+),", out).group(1)) / 1000
    errors = 0
    for match in re.finditer(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match.group(1))
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    reused = 0
    custom = re.search(r"BENCH wrapped=(\d+) bad=(\d+)", out)
    if custom:
        reused = int(custom.group(1))
        errors = max(errors, int(custom.group(2)))
    return LoadResult(
        tool="wrk",
        requests=requests,
        seconds=elapsed,
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        p50_ms=_ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
        p99_ms=_ms(re.search(r"\s99%\s+(\S+)", out).group(1)),
        errors=errors,
        reused=reused,
    )


def _python(
    url: str, seconds: int, connections: int, bodies: list[str] | None, content_type: str
) -> LoadResult:
    match = re.match(r"http://([^/:]+):(\d+)(/.*)", url)
    host, port, path = match.group(1), int(match.group(2)), match.group(3)
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    next_body = iter(range(10**9))
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        while time.monotonic() < stop_at:
            body = None
            if bodies is not None:
                with lock:
                    body = bodies[next(next_body) % len(bodies)].encode()
            started = time.perf_counter()
            try:
                if body is None:
                    conn.request("GET", path)
                else:
                    conn.request("POST", path, body, {"Content-Type": content_type})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    errors[i] += 1
                if response.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                continue
            latencies[i].append((time.perf_counter() - started) * 1000)
        conn.close()

    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - started
    merged = sorted(x for per in latencies for x in per)
    sent = len(merged) + sum(errors)
    return LoadResult(
        tool="python",
        requests=len(merged),
        seconds=elapsed,
        rps=len(merged) / elapsed,
        p50_ms=percentile(merged, 50),
        p99_ms=percentile(merged, 99),
        errors=sum(errors),
        reused=max(0, sent - len(bodies)) if bodies is not None else 0,
    )


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


if __name__ == "__main__":  # quick check: python bench/loadgen.py http://127.0.0.1:8000/healthz
    import sys

    print(json.dumps(run(sys.argv[1], seconds=3, connections=4).as_dict()))
