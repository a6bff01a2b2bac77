"""``make bench-scale``'s bulk loader writes what the engine writes, and the app accepts it.

The loader (``bench/scale_bench.py``) skips the key triggers and the foreign-key checks in its
own sessions and writes the keys rows itself; these tests load a small history into a database
of their own and prove that the result passes ``flask audit``'s checks, that the keys tables
hold every key (a duplicate through the app is answered as a replay, a plain duplicate insert
is refused), that the indexes built after the load are the migration's, and that a run that
stopped part way is finished by the next one, which a further run finds with nothing to do.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
from flask import Flask
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from tests.conftest import requires_postgres

ROOT = Path(__file__).resolve().parent.parent
MEMBERS, PURCHASES, CHUNK = 300, 2_500, 1_000

pytestmark = requires_postgres


@pytest.fixture(scope="module")
def loaded() -> Iterator[dict]:
    """A database of its own (``<test db>_scale``), migrated, then loaded by the bench loader."""
    sys.path.insert(0, str(ROOT / "bench"))
    import members_load
    import scale_bench

    url = urlparse(os.environ["TEST_DATABASE_URL"])
    name = url.path.lstrip("/") + "_scale"
    server = f"postgresql://{url.username}@{url.hostname}:{url.port or 5432}/postgres"
    with psycopg.connect(server, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    sqlalchemy_url = f"postgresql+psycopg://{url.username}@{url.hostname}:{url.port or 5432}/{name}"
    dsn = sqlalchemy_url.replace("+psycopg", "")
    _empty(dsn)
    from app import create_app
    from tests.conftest import dispose_app, make_config

    app = create_app(make_config(DATABASE_URL=sqlalchemy_url))
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
    with psycopg.connect(dsn, autocommit=True) as conn:
        indexes_before = dict(
            conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(%s)",
                (list(scale_bench.DEFERRED_INDEXES),),
            ).fetchall()
        )
    members_load.ensure_members(dsn, MEMBERS, chunk=200, bulk=True)
    scale_bench.make_past_partitions(server, name)
    # a run that stopped after one writer's first chunk: the next run goes on from there
    with psycopg.connect(dsn, autocommit=True) as conn:
        plan = scale_bench._setup(conn, MEMBERS, PURCHASES)
        scale_bench._defer_indexes(conn)
    scale_bench._write_chunks(dsn, "purchases", {**plan, "purchases": CHUNK}, CHUNK, set())
    with psycopg.connect(dsn) as conn:
        assert scale_bench._purchases_loaded(conn) == 0  # the other writer has not run
    first = scale_bench.load_purchases(dsn, MEMBERS, PURCHASES, CHUNK)
    again = scale_bench.load_purchases(dsn, MEMBERS, PURCHASES, CHUNK)
    stats_first = scale_bench.load_stats(dsn, sqlalchemy_url)
    stats_again = scale_bench.load_stats(dsn, sqlalchemy_url)
    yield {
        "app": app,
        "dsn": dsn,
        "first_s": first,
        "again_s": again,
        "stats_s": (stats_first, stats_again),
        "indexes_before": indexes_before,
        "scale_bench": scale_bench,
    }
    dispose_app(app)
    _empty(dsn)


def _empty(dsn: str) -> None:
    """Drop everything in the database, not the database: ``DROP DATABASE`` makes the server
    checkpoint at once, flushing every dirty page of every database (4-30 s in a suite)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def test_loaded_history_passes_the_audit(loaded: dict) -> None:
    from app.audit.services import run_audit
    from app.points.lots import lot_differences

    app: Flask = loaded["app"]
    with app.app_context():
        results = run_audit()
        assert {name: len(found) for name, found in results.items()} == dict.fromkeys(results, 0)
        assert lot_differences() == []


def test_every_purchase_has_its_entry_lot_and_keys(loaded: dict) -> None:
    with psycopg.connect(loaded["dsn"]) as conn:
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in scale_bench_tables(loaded)
        }
        assert counts == dict.fromkeys(counts, PURCHASES)
        # the keys rows name their rows: same id, same partition timestamp, same key
        assert (
            conn.execute(
                "SELECT count(*) FROM purchases p JOIN purchases_keys k "
                "USING (source, external_id, "
                "id, created_at)"
            ).fetchone()[0]
            == PURCHASES
        )
        assert (
            conn.execute(
                "SELECT count(*) FROM points_entries e JOIN points_entries_keys k "
                "USING (idempotency_key, id, created_at)"
            ).fetchone()[0]
            == PURCHASES
        )
        # the engine's shape: one earn entry per purchase, keyed and referenced like credit_points
        bad = conn.execute(
            "SELECT count(*) FROM purchases p JOIN points_entries e "
            "ON e.idempotency_key = 'purchase:' || p.id || ':earn' "
            "JOIN points_lots l ON l.entry_id = e.id "
            "WHERE e.member_id IS DISTINCT FROM p.member_id OR e.points <> p.points_earned "
            "OR e.ref_id <> p.source || ':' || p.external_id OR e.kind <> 'earn' "
            "OR l.points <> e.points OR l.remaining <> l.points OR l.earned_at <> p.occurred_at "
            "OR l.member_id <> p.member_id OR p.points_earned <> p.paid_fen / 100"
        ).fetchone()[0]
        assert bad == 0
        # spread over 13 months, in their monthly partitions, none in the default one
        months = conn.execute(
            "SELECT count(DISTINCT date_trunc('month', created_at)) FROM purchases"
        ).fetchone()[0]
        assert months >= 13
        assert conn.execute("SELECT count(*) FROM ONLY purchases_default").fetchone()[0] == 0


def scale_bench_tables(loaded: dict) -> tuple[str, ...]:
    return loaded["scale_bench"].LOADED


def test_a_duplicate_through_the_app_is_refused(loaded: dict) -> None:
    from app.extensions import db
    from app.points.models import PointsEntry, Purchase
    from app.points.purchases import record_purchase
    from app.points.services import post_entry

    app: Flask = loaded["app"]
    with app.app_context():
        sample = db.session.execute(
            select(Purchase).order_by(Purchase.id.desc()).limit(1)
        ).scalar_one()
        before = db.session.execute(select(func.count()).select_from(Purchase)).scalar_one()
        purchase, created = record_purchase(
            source=sample.source,
            external_id=sample.external_id,
            member_id=sample.member_id,
            store_id=sample.store_id,
            paid_fen=sample.paid_fen,
            occurred_at=datetime.now(UTC),
        )
        assert (purchase.id, created) == (sample.id, False)
        result = post_entry(
            sample.member_id,
            sample.points_earned,
            kind="earn",
            idempotency_key=f"purchase:{sample.id}:earn",
        )
        assert result.created is False
        db.session.commit()
        assert db.session.execute(select(func.count()).select_from(Purchase)).scalar_one() == before
        # a plain insert of a loaded key, in another month, is refused by the keys table
        with pytest.raises(IntegrityError, match="uq_points_entries_idempotency_key"):
            db.session.execute(
                text(
                    "INSERT INTO points_entries (member_id, points, balance_after, kind, "
                    "idempotency_key, created_at) VALUES (:m, 1, 1, 'earn', :k, now())"
                ),
                {"m": sample.member_id, "k": f"purchase:{sample.id - PURCHASES + 1}:earn"},
            )
        db.session.rollback()
        assert (
            db.session.execute(
                select(func.count()).where(PointsEntry.idempotency_key.like("purchase:%"))
            ).scalar_one()
            == PURCHASES
        )


def test_indexes_are_rebuilt_and_a_second_run_has_nothing_to_do(loaded: dict) -> None:
    assert loaded["first_s"] > 0
    assert loaded["again_s"] == 0.0
    with psycopg.connect(loaded["dsn"]) as conn:
        after = dict(
            conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(%s)",
                (list(loaded["indexes_before"]),),
            ).fetchall()
        )
        assert after == loaded["indexes_before"]
        assert len(after) == len(loaded["scale_bench"].DEFERRED_INDEXES)
        # the sequences go on after the loaded ids
        top = conn.execute("SELECT max(id) FROM purchases").fetchone()[0]
        assert conn.execute("SELECT last_value FROM purchases_id_seq").fetchone()[0] >= top


def test_loaded_stats_are_what_the_purchase_hooks_keep(loaded: dict) -> None:
    """The loader's monthly rows and stats totals equal ``intel.rebuild_stats``'s, which
    recomputes them from the purchases as the hooks fold them in; a second load has nothing
    to do."""
    from app.intel.jobs import rebuild_stats

    first, again = loaded["stats_s"]
    assert first > 0 and again == 0.0
    months = "SELECT member_id, store_id, month, visits, payer_fen FROM member_store_months"
    totals = (
        "SELECT member_id, purchase_count, payer_fen_total, first_purchase_at, "
        "last_purchase_at, last_store_id FROM member_stats"
    )

    def snapshot() -> tuple[set, set]:
        with psycopg.connect(loaded["dsn"]) as conn:
            return set(conn.execute(months).fetchall()), set(conn.execute(totals).fetchall())

    loaded_months, loaded_totals = snapshot()
    with psycopg.connect(loaded["dsn"]) as conn:
        stages = dict(
            conn.execute(
                "SELECT lifecycle, count(*) FROM member_stats GROUP BY lifecycle"
            ).fetchall()
        )
    # last night's stages, by the engine's rule: recent buyers active, a year's silence lost
    assert stages.get("active", 0) > 0 and stages.get("lost", 0) > 0
    assert len(loaded_totals) == MEMBERS
    assert sum(row[3] for row in loaded_months) == PURCHASES
    # most members keep to one store: fewer monthly rows than purchases
    assert len(loaded_months) < PURCHASES
    with loaded["app"].app_context():
        assert rebuild_stats(chunk=100)["members"] == MEMBERS
    assert snapshot() == (loaded_months, loaded_totals)
