"""What one SQL statement costs in Python CPU, by layer: the bound on notify and POS figures.

    .venv/bin/python bench/statement_cost.py [--repeat 2000]

``DATABASE_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1/huiyuan_bench``; created
and migrated if missing) names the database. One primary-key lookup of a points balance is run
``--repeat`` times through each layer the app could use, in one process, alternating the layers
in rounds so noise hits them alike, and the process CPU per statement is printed with its ratio
to the raw driver:

- raw psycopg (``conn.execute`` with ``%s`` parameters): the floor;
- ``app.db.fetch_rows`` (the statement compiled once, run on the driver's cursor with
  SQLAlchemy's type processing: what a till identify's three reads use);
- SQLAlchemy Core on the session's connection, statement built once (``execute_core``);
- ``session.execute`` of the same prebuilt statement (what the hot paths use);
- ``session.execute`` of a statement built on each call (what most code does);
- the same for an ORM entity (``select(Member)`` by identity, joined), prebuilt and built.

A payment notification needs nine statements and a commit; the bare endpoint it is compared to
needs none, so on a small machine the per-statement figure here bounds the notify ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger_bench import DEFAULT_URL, ensure_database

ROUNDS = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000, help="statements per layer and round")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    ensure_database(url)
    os.environ.update(DATABASE_URL=url, HUIYUAN_ENV="development")

    from flask_migrate import upgrade
    from sqlalchemy import bindparam, select

    from app import create_app
    from app.db import fetch_rows, unit_of_work
    from app.extensions import db
    from app.members.models import Member, MemberIdentity
    from app.members.services import create_member
    from app.points.models import PointsAccount

    app = create_app()
    with app.app_context():
        upgrade()
        with unit_of_work():
            member = create_member(source="bench", phone="13700000099")
        member_id, phone = member.id, member.phone
        raw = db.session.connection().connection.driver_connection
        balance = select(PointsAccount.balance).where(
            PointsAccount.member_id == bindparam("member_id")
        )
        by_phone = (
            select(Member)
            .join(MemberIdentity, MemberIdentity.member_id == Member.id)
            .where(
                MemberIdentity.kind == "phone",
                MemberIdentity.app == "",
                MemberIdentity.external_id == bindparam("phone"),
            )
        )
        params = {"member_id": member_id}

        def built_balance() -> object:
            stmt = select(PointsAccount.balance).where(PointsAccount.member_id == member_id)
            return db.session.execute(stmt).scalar_one()

        def built_member() -> object:
            stmt = (
                select(Member)
                .join(MemberIdentity, MemberIdentity.member_id == Member.id)
                .where(
                    MemberIdentity.kind == "phone",
                    MemberIdentity.app == "",
                    MemberIdentity.external_id == phone,
                )
            )
            return db.session.execute(stmt).scalar_one()

        layers: dict[str, Callable[[], object]] = {
            "raw psycopg": lambda: raw.execute(
                "SELECT balance FROM points_accounts WHERE member_id = %s", (member_id,)
            ).fetchone(),
            "fetch_rows (driver, prebuilt)": lambda: fetch_rows(balance, params)[0],
            "Core, connection, prebuilt": lambda: (
                db.session.connection().execute(balance, params).scalar_one()
            ),
            "session, prebuilt": lambda: db.session.execute(balance, params).scalar_one(),
            "session, built per call": built_balance,
            "ORM entity, prebuilt": lambda: db.session.execute(
                by_phone, {"phone": phone}
            ).scalar_one(),
            "ORM entity, built per call": built_member,
        }
        cpu = dict.fromkeys(layers, 0.0)
        for fn in layers.values():  # warm caches and prepared statements
            for _ in range(50):
                fn()
        for _ in range(ROUNDS):
            for name, fn in layers.items():
                started = time.process_time()
                for _ in range(args.repeat):
                    fn()
                cpu[name] += time.process_time() - started
        db.session.rollback()
    floor = cpu["raw psycopg"]
    for name, used in cpu.items():
        per = used / (ROUNDS * args.repeat) * 1000
        print(f"{name:30s} {per:6.3f} ms CPU per statement  {used / floor:5.1f} x raw")


if __name__ == "__main__":
    main()
