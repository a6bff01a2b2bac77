"""Shared set-up for the POS tests: stores with activated terminals and signed clients."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from app.common.clock import utcnow
from pos_adapter.client import PosClient


def make_store(client: FlaskClient, headers: dict[str, str], code: str) -> None:
    response = client.post(
        "/admin/v1/stores", json={"code": code, "name": f"store {code}"}, headers=headers
    )
    assert response.status_code == 201, response.get_json()


def new_terminal(client: FlaskClient, headers: dict[str, str], store_code: str) -> dict:
    response = client.post(
        f"/admin/v1/stores/{store_code}/terminals", json={"name": "till"}, headers=headers
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def signed_client(client: FlaskClient, headers: dict[str, str], store_code: str) -> PosClient:
    """An activated terminal of ``store_code`` (which must exist)."""
    created = new_terminal(client, headers, store_code)
    till = PosClient.for_flask(client, clock=lambda: utcnow().timestamp())
    response = till.activate(created["activation_code"])
    assert response.status == 201, response.json
    return till


def sale(sale_id: str, paid_fen: int, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "sale",
        "sale_id": sale_id,
        "occurred_at": "2026-11-20T10:00:00+08:00",
        "total_fen": max(paid_fen, extra.pop("total_fen", paid_fen)),
        "paid_fen": paid_fen,
        "lines": extra.pop("lines", [{"sku": "TEA-01", "qty": 1, "amount_fen": paid_fen}]),
    }
    event.update(extra)
    return event


def refund(return_id: str, sale_id: str, refund_fen: int) -> dict[str, Any]:
    return {
        "type": "return",
        "return_id": return_id,
        "sale_id": sale_id,
        "occurred_at": "2026-11-21T10:00:00+08:00",
        "refund_fen": refund_fen,
    }


def statuses(response: Any) -> list[str]:
    assert response.status == 200, response.json
    return [r["status"] for r in response.json["results"]]


def present(till: PosClient, member_id: int) -> str:
    """The member shows their app's member code and this till scans it: a presence token."""
    from app.members.codes import issue_member_code

    code, _ = issue_member_code(member_id)
    response = till.identify(member_code=code)
    assert response.status == 200, response.json
    return response.json["presence_token"]
