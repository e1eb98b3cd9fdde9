"""The restaurant brings its own table: its tests get a database migrated with the
framework's branch and the restaurant's, on each backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples.restaurant.app import app
from tests.conftest import BACKENDS, Databases


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, databases: Databases) -> str:
    """An empty database with the framework's and the restaurant's tables."""
    return databases.url(str(request.param), tmp_path, app.migration_locations)
