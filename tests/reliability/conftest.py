"""Fixtures of the reliability tests that need the safari app's tables.

A module whose tests use safari tables overrides ``database_url`` with
:func:`safari_database_url`; the others keep the framework's database.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.safari import app as safari
from tests.conftest import BACKENDS, Databases


@pytest.fixture(params=BACKENDS)
def safari_database_url(
    request: pytest.FixtureRequest, tmp_path: Path, databases: Databases
) -> str:
    """An empty database with the framework's and the safari app's tables, each backend."""
    return databases.url(str(request.param), tmp_path, safari.migration_locations)


@pytest.fixture
def safari_postgres_url(databases: Databases) -> str:
    """This run's PostgreSQL database migrated with the framework's and safari's branches."""
    return databases.postgresql(safari.migration_locations)
