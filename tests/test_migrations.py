"""The same Alembic migrations build the schema on SQLite and PostgreSQL, matching the models."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import core.models  # noqa: F401
from core.db import engine_for, migrate

TABLES = {"org", "user", "meeting", "participant", "mediaasset", "transcript", "segment",
          "connection", "synccursor", "webhookevent", "oauthstate",
          "rubric", "callscore", "criterionscore", "fieldextraction", "skillsnapshot", "deal",
          "meetingdeal", "alembic_version"}


def test_migrations_create_every_table(database):
    assert TABLES <= set(inspect(engine_for(database)).get_table_names())


def test_migrations_match_the_models(database):
    """Autogenerate finds nothing to add: a model change without a migration fails here."""
    with engine_for(database).connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == []


def test_migrating_twice_is_harmless(database):
    migrate(database)
    assert "meeting" in inspect(engine_for(database)).get_table_names()
