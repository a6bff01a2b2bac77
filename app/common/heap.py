"""Long-running processes hide their start-up objects from the garbage collector.

A web worker or the applier holds about 230,000 objects once the app is loaded (modules,
SQLAlchemy metadata, schemas, phone metadata). CPython's full (generation 2) collection walks
all of them: measured in a till-ingest loop, one took 121-130 ms of CPU, about a tenth of
the CPU of the 40 batches around it, and the request it lands in waits that long.
``gc.freeze()`` moves the objects alive at that moment to a permanent generation the
collector skips; the same full collections then took 4-7 ms. Objects made later are collected
as before.
"""

from __future__ import annotations

import gc

_settled = False


def settle() -> None:
    """Collect once, then freeze what survives (call when start-up is over; once a process)."""
    global _settled
    if _settled:
        return
    _settled = True
    gc.collect()
    gc.freeze()
