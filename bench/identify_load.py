"""Member identify by phone through the signed till endpoint, timed request by request.

The client signs with ``PosClient`` but sends with the standard library's ``http.client``
(one connection per call: gunicorn's sync workers close each one), not with ``requests``:
measured here, ``requests`` cost 1.65-1.71 ms of the client's own CPU a call against
0.67-0.68 ms, and raised p50 / p99 at the client by 1-2.5 / 4 ms. The figure is the
server's latency as a till sees it, so the load tool must not be most of it (``wrk`` is used
for the HTTP figures for the same reason).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any
from urllib.parse import urlparse

import members_load

from pos_adapter.client import PosClient


def lean_client(base: str, terminal_id: str, secret: str) -> PosClient:
    """A ``PosClient`` that sends with ``http.client``: the cheapest client the stdlib has."""
    url = urlparse(base)

    def transport(
        method: str, path: str, query: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Any]:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        try:
            target = path + (f"?{query}" if query else "")
            conn.request(method, target, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data.decode("utf-8", "replace")

    return PosClient(transport, terminal_id=terminal_id, secret=secret)


def identify_latencies(
    base: str,
    till: PosClient,
    members: int,
    seconds: float,
    clients: int = 2,
    codes: list[str] | None = None,
) -> tuple[list[float], int]:
    """Sorted latencies (ms) of identify calls for random loaded phones (or, given ``codes``,
    by those member codes in turn), and the failures."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop_at = time.monotonic() + seconds

    def worker(index: int) -> None:
        own = lean_client(base, till.terminal_id, till.secret)  # type: ignore[arg-type]
        if codes:
            asks = [{"member_code": c} for c in codes[index::clients] * 50]
        else:
            asks = [{"phone": p} for p in members_load.sample_phones(members, 50_000, seed=index)]
        for ask in asks:
            if time.monotonic() >= stop_at:
                break
            started = time.perf_counter()
            response = own.identify(**ask)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status != 200:
                errors[index] += 1
                continue
            latencies[index].append(elapsed)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(x for per in latencies for x in per), sum(errors)
