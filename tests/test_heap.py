"""Long-running processes freeze their start-up objects out of the garbage collector's way."""

from __future__ import annotations

import subprocess
import sys


def test_settle_freezes_the_objects_alive_once_and_only_once():
    code = (
        "import gc\n"
        "from app.common import heap\n"
        "import app\n"
        "before = gc.get_freeze_count()\n"
        "heap.settle()\n"
        "frozen = gc.get_freeze_count()\n"
        "heap.settle()\n"
        "print(before, frozen, gc.get_freeze_count())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, frozen, again = map(int, out.stdout.split())
    assert before == 0 and frozen > 10_000  # the app's modules and objects
    assert again == frozen  # a second call freezes nothing more


def test_gunicorn_workers_settle_once_the_app_is_loaded_and_are_rarely_replaced():
    code = (
        "import gc\n"
        "config = {}\n"
        "exec(compile(open('gunicorn.conf.py').read(), 'gunicorn.conf.py', 'exec'), config)\n"
        "config['post_worker_init'](None)\n"
        "print(config['max_requests'], gc.get_freeze_count())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    max_requests, frozen = map(int, out.stdout.split())
    assert max_requests == 100_000 and frozen > 10_000
