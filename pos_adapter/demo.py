"""A till session against a running server, through the signed client.

    make run     # prints the demo terminals' activation codes
    .venv/bin/python -m pos_adapter.demo --activation-code ABCD-EFGH-JKMN

Activates the terminal, enrols a member by phone, sells, holds points for a second sale,
sells it with the discount, and returns half of it; prints each answer.
"""

from __future__ import annotations

import argparse
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from pos_adapter.client import PosClient, PosResponse


def show(step: str, response: PosResponse) -> Any:
    print(f"{step}: {response.status} {json.dumps(response.json, ensure_ascii=False)}")
    if response.status >= 400:
        raise SystemExit(1)
    return response.json


def main() -> None:
    parser = argparse.ArgumentParser(description="Run one signed till session.")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--activation-code", required=True)
    parser.add_argument("--phone", default="13800138000")
    args = parser.parse_args()

    till = PosClient.for_url(args.url)
    show("activate", till.activate(args.activation_code))
    member = show("identify", till.identify(phone=args.phone, register=True))
    now = datetime.now(UTC).isoformat()
    run = secrets.token_hex(3)
    first = {
        "type": "sale",
        "sale_id": f"DEMO-{run}-1",
        "occurred_at": now,
        "total_fen": 5800,
        "paid_fen": 5800,
        "member": {"member_id": member["member_id"]},
        "lines": [{"sku": "TEA-OOLONG", "qty": 2, "amount_fen": 5800}],
    }
    show("sale", till.send_events([first]))
    hold = show(
        "hold",
        till.hold(
            sale_id=f"DEMO-{run}-2", member_id=member["member_id"], points=30, total_fen=3000
        ),
    )
    second = {
        **first,
        "sale_id": f"DEMO-{run}-2",
        "total_fen": 3000,
        "paid_fen": 3000 - hold["discount_fen"],
        "lines": [{"sku": "CAKE", "qty": 1, "amount_fen": 3000}],
        "redemption_id": hold["id"],
    }
    show("sale with points", till.send_events([second]))
    back = {
        "type": "return",
        "return_id": f"DEMO-{run}-2-R",
        "sale_id": second["sale_id"],
        "occurred_at": now,
        "refund_fen": second["paid_fen"] // 2,
    }
    show("return", till.send_events([back]))
    show("identify again", till.identify(phone=args.phone))


if __name__ == "__main__":
    main()
