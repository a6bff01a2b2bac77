"""Production gunicorn settings; each can be overridden from the environment.

Gunicorn's own refusals (a request line over 4094 bytes: 414; headers too large: 431; a
malformed request: 400) are answered in the API's JSON error shape, and phone numbers are
masked in its access and error logs (app/common/serving.py).
"""

import multiprocessing
import os

from app.common import serving

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
# A worker is replaced after this many requests (a guard against slow leaks). Replacing one
# costs about 1.6 s of CPU (loading the app), so the count is high: at 1,000 requests/s over
# five workers, 10,000 meant a new worker every 10 s, 8 % of a 2-core machine.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "100000"))
max_requests_jitter = 5000
limit_request_line = 4094  # bytes of "METHOD /path?query HTTP/1.1": longer answers 414
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = "-"
# Query strings are left out of the access log; a phone in the path is masked (logger_class).
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'
errorlog = "-"
logger_class = "app.common.serving.MaskingLogger"
preload_app = False

serving.install()


def post_worker_init(worker: object) -> None:
    """The app is loaded: hide its start-up objects from the garbage collector."""
    from app.common import heap

    heap.settle()
