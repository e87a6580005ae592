"""Fixtures of the integration tests: a real PostgreSQL cluster (tests/pg.py),
and ``db``: a mirror's ``--db`` in each store."""

from pathlib import Path

import pytest

from tests.pg import pg_cluster, pg_url

__all__ = ["db", "pg_cluster", "pg_url"]


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new SQLite file's path, then a new PostgreSQL database's URL."""
    if request.param == "sqlite":
        return str(tmp_path / "m.sqlite")
    url: str = request.getfixturevalue("pg_url")
    return url
