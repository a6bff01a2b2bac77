"""schemathesis over /openapi.json: every operation, valid and invalid inputs, each with the
credentials its audience uses (admin, member, clerk tokens; POS requests signed like a till).

Checks on every response: no 5xx (``not_a_server_error``; the contract's 503
``PLATFORM_DISABLED`` for an unconfigured platform excepted) and the body matches the documented
schema for its status (``response_schema_conformance``). Each failure is reported once per
operation and check, with a reproducing curl command.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from bench.reliability.stream import admin_headers, new_till
from pos_adapter.client import PosClient

CHECKS = [not_a_server_error, response_schema_conformance]
SKIP_PATHS = {"/docs", "/openapi.json"}
# They end the credentials the rest of the run fuzzes with: exercised once, at the end.
SKIP_OPERATIONS = {
    "DELETE /mp/v1/me",
    "POST /mp/v1/logout",
    "POST /admin/v1/members/{member_id}/erase",
}


def tokens(env: Any) -> tuple[dict[str, dict[str, str]], PosClient]:
    """A bearer token per audience, and an activated till."""
    base, headers = env.server.base, admin_headers(env.token)
    till = new_till(base, env.token, "FZ")
    clerk = requests.post(
        f"{base}/admin/v1/stores/FZ/clerks",
        json={"username": "fuzz.clerk", "password": "fuzz-password-123", "name": "Fuzz"},
        headers=headers,
        timeout=30,
    )
    clerk.raise_for_status()
    login = requests.post(
        f"{base}/clerk/v1/login",
        json={"username": "fuzz.clerk", "password": "fuzz-password-123"},
        timeout=30,
    )
    login.raise_for_status()
    member = till.identify(phone="13600000001", register=True, consent=True).json["member_id"]
    return {
        "/admin/": headers,
        "/clerk/": {"Authorization": f"Bearer {login.json()['token']}"},
        "/mp/": {"Authorization": f"Bearer {member_token(env, member)}"},
    }, till


def member_token(env: Any, member_id: int) -> str:
    from app import create_app
    from app.config import Config
    from miniprogram_api.auth import issue_member_token

    app = create_app(Config.from_env(env=env.server.env))
    with app.app_context():
        return issue_member_token(member_id, "wechat")


def _send(case: Any, base: str, auth: dict[str, str], till: PosClient | None) -> requests.Response:
    kwargs = case.as_transport_kwargs(base_url=base, headers=auth)
    kwargs.pop("timeout", None)
    session = requests.Session()
    prepared = session.prepare_request(requests.Request(**_request_args(kwargs)))
    if till is not None and case.path.startswith("/pos/") and case.path != "/pos/v1/activate":
        path, _, query = prepared.path_url.partition("?")
        body = prepared.body or b""
        body = body.encode() if isinstance(body, str) else body
        prepared.headers.update(till.signed_headers(prepared.method, path, query, body))
    return session.send(prepared, timeout=30, allow_redirects=False)


def _request_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    allowed = ("method", "url", "headers", "params", "json", "data", "files", "cookies")
    return {k: v for k, v in kwargs.items() if k in allowed}


def run(env: Any, *, quick: bool = False, examples: int | None = None) -> dict[str, Any]:
    base = env.server.base
    auth, till = tokens(env)
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    examples = examples or (8 if quick else 25)
    failures: dict[tuple[str, str], str] = {}
    counts = defaultdict(int)
    operations = 0
    started = time.monotonic()
    # HQ's erasure goes first: schemathesis's bad tokens exhaust the per-address throttle of
    # failed admin tokens (as an attacker's would), after which even a good token waits.
    problems = erasure_by_hq(base, till, auth)
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIP_PATHS:
            continue
        label = f"{operation.method.upper()} {operation.path}"
        if label in SKIP_OPERATIONS:
            continue
        operations += 1
        headers = next((h for prefix, h in auth.items() if operation.path.startswith(prefix)), {})
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            _fuzz_operation(operation, mode, base, headers, till, examples, failures, counts, label)
    problems += [f"{label}: {check}: {text}" for (label, check), text in sorted(failures.items())]
    problems += hostile_events(till)
    problems += hostile_requests(base, till, auth)
    return {
        "operations": operations,
        "requests": sum(counts.values()),
        "seconds": round(time.monotonic() - started),
        "problems": problems,
    }


def _fuzz_operation(operation, mode, base, headers, till, examples, failures, counts, label):
    try:
        strategy = operation.as_strategy(generation_mode=mode)
    except Exception as exc:  # noqa: BLE001  (an operation schema cannot always be negated)
        counts[f"{label}:unsupported"] += 0
        if mode is schemathesis.GenerationMode.POSITIVE:
            failures[(label, "strategy")] = f"{type(exc).__name__}: {exc}"[:300]
        return

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(case=strategy)
    def fuzz(case):
        try:
            response = _send(case, base, headers, till)
        except requests.RequestException as exc:
            failures.setdefault((label, "transport"), f"{type(exc).__name__}: {exc}"[:300])
            return
        counts[label] += 1
        for check in CHECKS:
            if check is not_a_server_error and _platform_disabled(response):
                continue
            try:
                case.validate_response(response, checks=[check], headers=headers)
            except (AssertionError, FailureGroup) as exc:  # a check failed: curl command inside
                failures.setdefault((label, check.__name__), _first_lines(exc, response))

    try:
        fuzz()
    except Unsatisfiable:  # nothing to negate (an operation without inputs)
        return


HUGE = 8758562884741819392
_SALE = {"type": "sale", "occurred_at": "2026-11-20T10:00:00+08:00", "total_fen": 100}
_BIG = 9_000_000_000_000
HOSTILE_EVENTS = [
    {**_SALE, "sale_id": "H1", "paid_fen": 100, "lines": [], "member": {"member_id": HUGE}},
    {**_SALE, "sale_id": "H\x00", "paid_fen": 100, "lines": []},
    {**_SALE, "sale_id": "H3", "paid_fen": HUGE, "lines": []},
    {**_SALE, "sale_id": "H4", "paid_fen": 100, "lines": [{"sku": "\x00", "qty": 1}]},
    {"type": "return", "return_id": "H5", "sale_id": "H\x00", "refund_fen": -1},
    {"type": "sale"},
    [],
    None,
    # issue 14: amounts past POS_MAX_SALE_FEN, a lone surrogate, year 9999, paid above total
    {**_SALE, "sale_id": "H6", "total_fen": _BIG, "paid_fen": _BIG, "lines": []},
    {
        **_SALE,
        "sale_id": "H7",
        "paid_fen": 100,
        "lines": [{"sku": "\ud800", "qty": 1, "amount_fen": 1}],
    },
    {
        **_SALE,
        "sale_id": "H8",
        "paid_fen": 100,
        "lines": [],
        "occurred_at": "9999-12-31T23:59:59-12:00",
    },
    {**_SALE, "sale_id": "H9", "paid_fen": 101, "lines": []},
    {
        "type": "return",
        "return_id": "H10",
        "sale_id": "H9",
        "refund_fen": _BIG,
        "occurred_at": "2026-11-20T10:00:00+08:00",
    },
    {
        **_SALE,
        "sale_id": "H11",
        "paid_fen": 100,
        "lines": [],
        "member": {"phone": "13８００００００１２\ud800"},
    },
]


def hostile_events(till: PosClient) -> list[str]:
    """The event schema in /openapi.json is a list of objects, so schemathesis sends few real
    events: hostile ones, each beside a good sale, must be rejected one by one."""
    good = {**_SALE, "sale_id": "H-good", "paid_fen": 100, "lines": []}
    body = json.dumps({"events": [*HOSTILE_EVENTS, good]}).encode()  # "\ud800" stays escaped
    response = till.send(
        "POST", "/pos/v1/events", body, till.signed_headers("POST", "/pos/v1/events", "", body)
    )
    if response.status != 200:
        return [f"POST /pos/v1/events with hostile events: {response.status} {response.json}"]
    found = [r["status"] for r in response.json["results"]]
    if found != ["rejected"] * len(HOSTILE_EVENTS) + ["accepted"]:
        return [f"POST /pos/v1/events with hostile events answered {found}"]
    return []


def _error_shape(response: requests.Response, status: int, label: str) -> list[str]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != status or not isinstance(body, dict) or "error" not in body:
        got = f"{response.status_code} {response.text[:120]!r}"
        return [f"{label}: expected {status} in the error shape, got {got}"]
    return []


def hostile_requests(base: str, till: PosClient, auth: dict[str, dict[str, str]]) -> list[str]:
    """Issue 14's hostile requests against the production server (gunicorn in front)."""
    problems: list[str] = []
    deep = "[" * 5000 + "]" * 5000
    json_headers = {"Content-Type": "application/json"}
    for path in ("/clerk/v1/login", "/pos/v1/activate"):
        r = requests.post(f"{base}{path}", data=deep, headers=json_headers, timeout=30)
        problems += _error_shape(r, 400, f"deep JSON on {path}")
    r = requests.post(
        f"{base}/clerk/v1/members/1/tags",
        data='{"a": ' + deep + "}",
        headers={**json_headers, **auth["/clerk/"]},
        timeout=30,
    )
    if r.status_code >= 500:
        problems.append(f"deep JSON on a clerk endpoint: {r.status_code}")
    r = requests.post(
        f"{base}/clerk/v1/login",
        data='{"username": "\\ud800", "password": "x"}',
        headers=json_headers,
        timeout=30,
    )
    if r.status_code >= 500:
        problems.append(f"lone surrogate on /clerk/v1/login: {r.status_code}")
    body = b'{"events": []}'
    headers = {
        **till.signed_headers("POST", "/pos/v1/events", "", body),
        "X-Timestamp": "\u00b2",
    }
    r = requests.post(
        f"{base}/pos/v1/events", data=body, headers={**headers, **json_headers}, timeout=30
    )
    problems += _error_shape(r, 401, "X-Timestamp: \u00b2")
    big = b"[" + b"1," * (3 * 1024 * 1024) + b"1]"  # 6 MiB, no credentials
    r = requests.post(f"{base}/clerk/v1/login", data=big, headers=json_headers, timeout=60)
    problems += _error_shape(r, 413, "a 6 MiB body")
    r = requests.get(f"{base}/admin/v1/stores?q={'x' * 5000}", timeout=30)
    problems += _error_shape(r, 414, "a 5 KB URL")
    mp = auth["/mp/"]
    if requests.post(f"{base}/mp/v1/logout", headers=mp, timeout=30).status_code != 204:
        problems.append("POST /mp/v1/logout did not answer 204")
    elif requests.get(f"{base}/mp/v1/me", headers=mp, timeout=30).status_code != 401:
        problems.append("a logged-out member token still works")
    return problems


def erasure_by_hq(base: str, till: PosClient, auth: dict[str, dict[str, str]]) -> list[str]:
    """HQ erases a member enrolled at the till (consent given) through the production server."""
    problems: list[str] = []
    member = till.identify(phone="13600000002", register=True, consent=True).json["member_id"]
    r = requests.post(
        f"{base}/admin/v1/members/{member}/erase", headers=auth["/admin/"], timeout=30
    )
    if r.status_code != 200:
        problems.append(f"erasure answered {r.status_code}")
    return problems


def _platform_disabled(response: requests.Response) -> bool:
    """The contract's answer for a platform this server has no credentials for (only WeChat
    Pay v2 is configured here: the others would call out beyond loopback)."""
    try:
        body = response.json()
    except ValueError:
        return False
    error = body.get("error") if isinstance(body, dict) else None
    return (
        response.status_code == 503
        and isinstance(error, dict)
        and error.get("code") == "PLATFORM_DISABLED"
    )


def _first_lines(exc: Exception, response: requests.Response) -> str:
    text = " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"[{response.status_code}] {text[:600]}"
