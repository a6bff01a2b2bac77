"""What the database holds, in figures that two runs of the same stream must share."""

from __future__ import annotations

from typing import Any

import psycopg

QUERIES = {
    "balances": "SELECT m.phone, a.balance FROM members m JOIN points_accounts a "
    "ON a.member_id = m.id WHERE m.status = 'active' ORDER BY m.phone NULLS FIRST, m.id",
    "members": "SELECT status, count(*) FROM members GROUP BY status ORDER BY status",
    "sales": "SELECT count(*), sum(paid_fen), sum(total_fen), count(member_id) FROM pos_sales",
    "lines": "SELECT count(*), sum(amount_fen) FROM pos_sale_lines",
    "returns": "SELECT state, count(*), sum(refund_fen), sum(points_taken) FROM pos_returns "
    "GROUP BY state ORDER BY state",
    "purchases": "SELECT count(*), sum(paid_fen), sum(refunded_fen), sum(points_earned) "
    "FROM purchases",
    "entries": "SELECT kind, count(*), sum(points) FROM points_entries GROUP BY kind ORDER BY kind",
}


def plain_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def snapshot(database_url: str) -> dict[str, Any]:
    with psycopg.connect(plain_url(database_url)) as conn:
        return {name: conn.execute(sql).fetchall() for name, sql in QUERIES.items()}


def differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    return [name for name in QUERIES if expected[name] != actual[name]]


def existing_ids(database_url: str, store_code: str) -> set[str]:
    """Sale and return ids recorded for one store."""
    with psycopg.connect(plain_url(database_url)) as conn:
        rows = conn.execute(
            "SELECT s.sale_id FROM pos_sales s JOIN stores t ON t.id = s.store_id "
            "WHERE t.code = %(c)s UNION ALL SELECT r.return_id FROM pos_returns r "
            "JOIN stores t ON t.id = r.store_id WHERE t.code = %(c)s",
            {"c": store_code},
        ).fetchall()
    return {r[0] for r in rows}


def balance_of(database_url: str, member_id: int) -> int:
    with psycopg.connect(plain_url(database_url)) as conn:
        row = conn.execute(
            "SELECT balance FROM points_accounts WHERE member_id = %s", (member_id,)
        ).fetchone()
    return int(row[0]) if row else 0
