"""Member identify by phone through the signed till endpoint, timed request by request."""

from __future__ import annotations

import threading
import time

import members_load

from pos_adapter.client import PosClient


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
        own = PosClient.for_url(base, terminal_id=till.terminal_id, secret=till.secret)
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
