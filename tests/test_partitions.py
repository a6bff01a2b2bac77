"""Monthly partitions of the history: keys still refuse duplicates whatever month they land in,
partitions are made ahead (rows parked in the default move in), the journal and outbox are
pruned after their retention, and old months detach for archiving with their keys kept."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from app.common.clock import frozen
from app.common.partitions import ensure_month, is_partitioned
from app.db import transaction
from app.engine.journal import journal
from app.engine.models import MoneyEvent
from app.extensions import db
from app.ops.jobs import archive_before, make_partitions, prune_history
from app.payments.services import PaymentEvent
from tests.conftest import requires_postgres

NOV = datetime(2026, 11, 20, 10, tzinfo=UTC)


def _member() -> int:
    return db.session.execute(
        text(
            "INSERT INTO members (source, status, marketing_opt_out, created_at) "
            "VALUES ('test', 'active', false, now()) RETURNING id"
        )
    ).scalar_one()


def _entry(member_id: int, key: str, at: datetime) -> None:
    db.session.execute(
        text(
            "INSERT INTO points_entries (member_id, points, balance_after, kind, "
            "idempotency_key, created_at) VALUES (:m, 10, 10, 'earn', :k, :at)"
        ),
        {"m": member_id, "k": key, "at": at},
    )


@requires_postgres
def test_the_history_tables_are_partitioned_on_postgresql(app: Flask) -> None:
    with db.engine.connect() as conn:
        for table in ("points_entries", "purchases", "pos_sales", "pos_sale_lines"):
            assert is_partitioned(conn, table)
        for table in ("money_events", "outbox_messages", "clerk_access_log"):
            assert is_partitioned(conn, table)
        assert not is_partitioned(conn, "points_lots")


@requires_postgres
def test_a_ledger_key_is_refused_by_the_database_in_any_other_month(app: Flask) -> None:
    member_id = _member()
    _entry(member_id, "earn:dup", NOV)
    db.session.commit()
    with pytest.raises(IntegrityError) as caught:
        _entry(member_id, "earn:dup", NOV - timedelta(days=400))  # another partition
        db.session.flush()
    db.session.rollback()
    assert caught.value.orig.diag.constraint_name == "uq_points_entries_idempotency_key"
    count = db.session.scalar(text("SELECT count(*) FROM points_entries"))
    assert count == 1


@requires_postgres
def test_a_ledger_entry_is_found_by_its_key_in_whatever_month_it_was_written(app: Flask) -> None:
    from app.points.models import PointsEntry
    from app.points.services import entry_by_key

    member_id = _member()
    _entry(member_id, "earn:old", NOV - timedelta(days=400))
    _entry(member_id, "earn:new", NOV)
    db.session.commit()
    found = {
        key: db.session.execute(entry_by_key(PointsEntry.points, key)).scalar_one_or_none()
        for key in ("earn:old", "earn:new", "earn:none")
    }
    assert found == {"earn:old": 10, "earn:new": 10, "earn:none": None}


@requires_postgres
def test_the_partitions_carry_no_index_on_the_key_their_keys_table_holds(app: Flask) -> None:
    from app.common.partitions import PARTITIONED

    keyed = sorted(name for name, spec in PARTITIONED.items() if spec.keys)
    indexes = db.session.execute(
        text(
            "SELECT c.relname, string_agg(a.attname, ',' ORDER BY k.n) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indrelid "
            "CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
            "WHERE c.relname = ANY(:tables) GROUP BY c.relname, i.indexrelid"
        ),
        {"tables": keyed},
    ).all()
    for table, columns in indexes:
        key = ",".join(PARTITIONED[table].keys[0].columns)
        assert not columns.startswith(key), (table, columns)  # probed in <table>_keys instead
    assert {table for table, _ in indexes} == set(keyed)  # each has its primary key at least


def test_a_payment_journalled_again_a_month_later_is_stored_once(app: Flask) -> None:
    event = PaymentEvent("wechat", "TXMONTHS", 1500, NOV)
    with frozen(NOV):
        first = transaction(lambda: journal([event]))
    with frozen(NOV + timedelta(days=45)):  # the next month's partition on PostgreSQL
        again = transaction(lambda: journal([event]))
    assert len(first) == 1 and again == []
    assert db.session.scalar(select(func.count(MoneyEvent.id))) == 1


@requires_postgres
def test_partitions_are_made_ahead_and_rows_parked_in_the_default_move_in(app: Flask) -> None:
    parked = datetime(2031, 5, 3, tzinfo=UTC)
    db.session.execute(
        text(
            "INSERT INTO money_events (event_key, kind, source, purchase_key, payload, state, "
            "received_at) VALUES ('k:parked', 'payment', 'wechat', 'p', '{}', 'pending', :at)"
        ),
        {"at": parked},
    )
    db.session.commit()
    where = db.session.scalar(
        text("SELECT tableoid::regclass::text FROM money_events WHERE event_key = 'k:parked'")
    )
    assert where == "money_events_default"
    db.session.rollback()  # making a partition waits for the transactions reading the table
    try:
        created = make_partitions(datetime(2031, 4, 10, tzinfo=UTC), months_ahead=1)
        assert {"money_events_p203104", "money_events_p203105"} <= set(created)
        assert "points_entries_p203105" in created
        assert make_partitions(datetime(2031, 4, 10, tzinfo=UTC), months_ahead=1) == []
        db.session.rollback()
        where = db.session.scalar(
            text("SELECT tableoid::regclass::text FROM money_events WHERE event_key = 'k:parked'")
        )
        assert where == "money_events_p203105"
        # the moved row's key still refuses its duplicate
        again = transaction(
            lambda: db.session.execute(
                text(
                    "INSERT INTO money_events (event_key, kind, source, purchase_key, payload, "
                    "state, received_at) VALUES ('k:parked', 'payment', 'wechat', 'p', '{}', "
                    "'pending', now()) ON CONFLICT DO NOTHING RETURNING id"
                )
            ).all()
        )
        assert again == []
    finally:
        db.session.rollback()
        with db.engine.begin() as conn:
            for name in created if "created" in locals() else []:
                conn.execute(text(f"DROP TABLE IF EXISTS {name}"))


def test_retention_prunes_old_final_journal_events_and_keeps_pending_ones(app: Flask) -> None:
    old = NOV - timedelta(days=120)
    with frozen(old):
        transaction(
            lambda: journal(
                [
                    PaymentEvent("wechat", "TXOLD", 100, old),
                    PaymentEvent("wechat", "TXWAIT", 100, old),
                ]
            )
        )
    with frozen(NOV):
        transaction(lambda: journal([PaymentEvent("wechat", "TXNEW", 100, NOV)]))
    db.session.execute(
        update(MoneyEvent)
        .where(MoneyEvent.event_key != "wechat:pay:TXWAIT")
        .values(state="applied", applied_at=NOV)
    )
    db.session.commit()
    app.config["JOURNAL_RETENTION_DAYS"] = 90
    pruned = prune_history(NOV)
    assert pruned["money_events"] == 1
    left = set(db.session.scalars(select(MoneyEvent.event_key)))
    assert left == {"wechat:pay:TXWAIT", "wechat:pay:TXNEW"}  # pending work is never pruned
    # its key went with it: the journal holds what is recent (the ledger keeps its own keys)
    with frozen(NOV):
        assert len(transaction(lambda: journal([PaymentEvent("wechat", "TXOLD", 100, old)]))) == 1


@requires_postgres
def test_archiving_detaches_old_months_and_their_keys_still_refuse_duplicates(app: Flask) -> None:
    with db.engine.begin() as conn:
        ensure_month(conn, "points_entries", date(2020, 1, 1))
    member_id = _member()
    _entry(member_id, "earn:2020", datetime(2020, 1, 15, tzinfo=UTC))
    db.session.commit()
    try:
        detached = archive_before(date(2020, 2, 1), ["points_entries"], schema="archive_test")
        assert detached == ["archive_test.points_entries_p202001"]
        assert db.session.scalar(text("SELECT count(*) FROM points_entries")) == 0
        assert db.session.scalar(text("SELECT count(*) FROM archive_test.points_entries_p202001"))
        with pytest.raises(IntegrityError):
            _entry(member_id, "earn:2020", NOV)
            db.session.flush()
    finally:
        db.session.rollback()
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS archive_test CASCADE"))


def test_the_partitions_cli_answers_on_any_database(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["partitions", "ensure", "--months", "1"])
    assert result.exit_code == 0, result.output
    assert "partition(s) created" in result.output
    result = runner.invoke(args=["partitions", "prune"])
    assert result.exit_code == 0 and "money_events:" in result.output
