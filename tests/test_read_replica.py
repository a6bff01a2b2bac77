"""REPORTS_DATABASE_URL: reports and segment counts read the replica; unset, the primary."""

from datetime import UTC, date, datetime

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from app import create_app
from app.config import Config
from app.db import reads
from app.extensions import db
from app.intel.models import MemberStats, Segment
from app.intel.segments import count_members, preview
from app.members.models import Member
from app.reports.models import KpiDaily
from app.reports.services import kpis
from tests.conftest import TEST_SECRET

DAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
RULE = {"field": "purchase_count", "op": ">=", "value": 1}


def test_without_a_replica_reports_read_the_primary(app):
    assert reads() is db.session


def test_with_a_replica_kpis_and_segment_counts_read_it_and_not_the_primary(app, tmp_path):
    replica_url = f"sqlite:///{tmp_path / 'replica.db'}"
    replica = create_engine(replica_url)
    db.metadata.create_all(replica)  # a copy of the schema that holds other figures
    with Session(replica) as s:
        s.add(KpiDaily(day=DAY, store_id=0, purchases=7, sales_fen=700))
        s.add(Member(id=1, phone="13800000001", source="pos"))
        s.flush()
        s.add(MemberStats(member_id=1, joined_at=NOW, join_channel="pos", purchase_count=3))
        s.commit()
    config = Config.from_env(
        env={
            "HUIYUAN_ENV": "testing",
            "SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
            "REPORTS_DATABASE_URL": replica_url,
        }
    )
    other = create_app(config)
    with other.app_context():
        assert reads() is not db.session
        assert str(reads().get_bind().url) == replica_url
        day = kpis(DAY, DAY)["days"][0]
        assert (day["purchases"], day["sales_fen"]) == (7, 700)
        assert count_members(RULE) == 1
        [shown] = preview(Segment(name="probe", rule=RULE))
        assert shown["member_id"] == 1 and shown["phone"] != "13800000001"  # masked
    with app.app_context():
        assert kpis(DAY, DAY)["days"][0]["purchases"] == 0  # the primary has none
        assert count_members(RULE) == 0


def test_prepared_statements_can_be_turned_off_for_pgbouncer_in_transaction_mode():
    from app.config import ConfigError, engine_options

    url = "postgresql+psycopg://u@127.0.0.1:6432/db"
    assert "connect_args" not in engine_options(url)  # psycopg's default threshold
    assert engine_options(url, "none")["connect_args"] == {"prepare_threshold": None}
    assert engine_options(url, "10")["connect_args"] == {"prepare_threshold": 10}
    base = {"HUIYUAN_ENV": "testing", "SECRET_KEY": TEST_SECRET}
    config = Config.from_env(
        env={**base, "DATABASE_URL": url, "DATABASE_PREPARE_THRESHOLD": "none"}
    )
    assert config.flask_mapping()["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"] == {
        "prepare_threshold": None
    }
    import pytest

    with pytest.raises(ConfigError, match="DATABASE_PREPARE_THRESHOLD"):
        Config.from_env(env={**base, "DATABASE_PREPARE_THRESHOLD": "sometimes"})
