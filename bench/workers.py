"""Peak resident memory of gunicorn's workers: ``VmHWM`` from ``/proc``, sampled in the background.

A worker's high-water mark is kept by the kernel for the worker's life; sampling every half
second also keeps the figure of a worker that gunicorn recycles (``max_requests``) mid-run.
"""

from __future__ import annotations

import threading
from pathlib import Path


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = task / "children"
        if children.exists():
            found += [int(c) for c in children.read_text().split()]
    return found


def _vm_kb(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class WorkerMemory:
    def __init__(self, master_pid: int, interval: float = 0.5, extra: list[int] | None = None):
        self.master_pid = master_pid
        self.extra = list(extra or [])  # other worker processes (the engine's applier)
        self.interval = interval
        self.peaks_kb: dict[int, int] = {}
        self.master_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        self.master_kb = max(self.master_kb, _vm_kb(self.master_pid, "VmHWM") or 0)
        for pid in [*_children(self.master_pid), *self.extra]:
            hwm = _vm_kb(pid, "VmHWM")
            if hwm is not None:
                self.peaks_kb[pid] = max(hwm, self.peaks_kb.get(pid, 0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.sample()
            self._stop.set()
            self._thread.join()

    def peak_mb(self) -> float:
        return max(self.peaks_kb.values(), default=0) / 1024

    def report(self) -> dict:
        peaks = sorted(self.peaks_kb.values())
        return {
            "workers_seen": len(peaks),
            "peak_vmhwm_mb_max": round(max(peaks, default=0) / 1024, 1),
            "peak_vmhwm_mb_min": round(min(peaks, default=0) / 1024, 1),
            "master_vmhwm_mb": round(self.master_kb / 1024, 1),
        }
