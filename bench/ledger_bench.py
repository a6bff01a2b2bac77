"""Ledger credits per second: ``post_entry`` against a raw-SQL baseline, on PostgreSQL.

    .venv/bin/python bench/ledger_bench.py [--seconds 8] [--members 200]

``DATABASE_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1/huiyuan_bench``) names the
database; it is created if missing and migrated. Each credit is its own transaction, as an
earn from a payment notification is. The baseline does the same work by hand with the same
driver: lock the account row, check the idempotency key, insert the entry, insert the lot,
update the balance, commit. The two alternate in rounds so that noise on a shared machine hits
both alike. Bounded in time: about ``2 × seconds`` plus set-up, well under a minute.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from sqlalchemy.engine import make_url

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1/huiyuan_bench"
ROUNDS = 4


def ensure_database(url: str) -> None:
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        raise SystemExit(
            "the benchmark runs on PostgreSQL: set DATABASE_URL=postgresql+psycopg://…"
        )
    admin = parsed.set(drivername="postgresql", database="postgres")
    dsn = admin.render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (parsed.database,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{parsed.database}"')


def orm_credits(members: list[int], tag: str, seconds: float) -> tuple[int, float]:
    from app.db import unit_of_work
    from app.points.services import post_entry

    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        member_id = members[count % len(members)]
        with unit_of_work():
            post_entry(member_id, 10, kind="earn", idempotency_key=f"bench:{tag}:{count}")
        count += 1
    return count, time.perf_counter() - start


def raw_credits(dsn: str, members: list[int], tag: str, seconds: float) -> tuple[int, float]:
    expires = datetime(2099, 1, 1, tzinfo=UTC)
    count = 0
    with psycopg.connect(dsn) as conn:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            member_id = members[count % len(members)]
            key = f"raw:{tag}:{count}"
            now = datetime.now(UTC)
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT balance FROM points_accounts WHERE member_id = %s FOR UPDATE",
                    (member_id,),
                )
                (balance,) = cur.fetchone()
                cur.execute("SELECT id FROM points_entries WHERE idempotency_key = %s", (key,))
                assert cur.fetchone() is None
                cur.execute(
                    "INSERT INTO points_entries (member_id, points, balance_after, kind, "
                    "idempotency_key, created_at) VALUES (%s, 10, %s, 'earn', %s, %s) "
                    "RETURNING id",
                    (member_id, balance + 10, key, now),
                )
                (entry_id,) = cur.fetchone()
                cur.execute(
                    "INSERT INTO points_lots (member_id, entry_id, points, remaining, earned_at, "
                    "expires_at, created_at) VALUES (%s, %s, 10, 10, %s, %s, %s)",
                    (member_id, entry_id, now, expires, now),
                )
                cur.execute(
                    "UPDATE points_accounts SET balance = %s, updated_at = %s WHERE member_id = %s",
                    (balance + 10, now, member_id),
                )
            conn.commit()
            count += 1
        return count, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per method (max 25)")
    parser.add_argument("--members", type=int, default=200)
    args = parser.parse_args()
    seconds = min(args.seconds, 25.0)
    url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    ensure_database(url)

    from flask_migrate import upgrade

    from app import create_app
    from app.config import Config
    from app.db import unit_of_work
    from app.extensions import db
    from app.members.services import create_member
    from app.points.services import audit_differences

    app = create_app(Config.from_env(env={}, DATABASE_URL=url, ENV="development"))
    with app.app_context():
        upgrade()
        with unit_of_work():
            members = [create_member(source="bench").id for _ in range(args.members)]
        tag = uuid.uuid4().hex[:8]
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        orm = [0, 0.0]
        raw = [0, 0.0]
        for round_no in range(ROUNDS):
            n, t = orm_credits(members, f"{tag}:{round_no}", seconds / ROUNDS)
            orm[0], orm[1] = orm[0] + n, orm[1] + t
            n, t = raw_credits(dsn, members, f"{tag}:{round_no}", seconds / ROUNDS)
            raw[0], raw[1] = raw[0] + n, raw[1] + t
        db.session.remove()
        assert audit_differences() == [], "the ledger and the balances disagree"
    orm_rate, raw_rate = orm[0] / orm[1], raw[0] / raw[1]
    print(f"post_entry (ORM, lots, idempotency): {orm_rate:8.0f} credits/s ({orm[0]} credits)")
    print(f"raw SQL baseline (same statements):  {raw_rate:8.0f} credits/s ({raw[0]} credits)")
    print(f"ratio post_entry / raw:              {orm_rate / raw_rate:8.2f}")


if __name__ == "__main__":
    main()
