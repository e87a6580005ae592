"""Fixtures of the integration tests: a real PostgreSQL cluster (tests/pg.py)."""

from tests.pg import pg_cluster, pg_url

__all__ = ["pg_cluster", "pg_url"]
