"""The test schema comes from the migrations; it must equal the models, with one head."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app

from app.common.partitions import schema_filter
from app.extensions import db


def test_migrations_have_a_single_head():
    config = current_app.extensions["migrate"].migrate.get_config()
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, heads


def test_migrated_schema_equals_the_models():
    with db.engine.connect() as conn:
        # as ``flask db check``: PostgreSQL's monthly partitions are the migration's own
        opts = {"compare_type": True, "include_object": schema_filter(conn.dialect.name)}
        context = MigrationContext.configure(conn, opts=opts)
        diff = compare_metadata(context, db.metadata)
    assert diff == []
