"""A database built by the migrations has exactly the schema of the models (CONVENTIONS 12)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from radai import schema
from radai.db import Base, Database


def test_migrated_schema_equals_models(db_url: str) -> None:
    schema.load_all()
    db = Database(db_url)
    try:
        db.migrate()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                    Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        tables = set(inspect(db.engine).get_table_names())
        assert {"patients", "studies", "series", "instances"} <= tables
    finally:
        db.dispose()


def test_migrations_downgrade_to_nothing_and_back(db_url: str) -> None:
    from alembic import command

    from radai.db import alembic_config

    db = Database(db_url)
    try:
        db.migrate()
        command.downgrade(alembic_config(db.engine), "base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        db.migrate()
        assert "instances" in inspect(db.engine).get_table_names()
    finally:
        db.dispose()
