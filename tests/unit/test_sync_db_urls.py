"""--db values refused as usage errors, and without showing a password."""

from __future__ import annotations

import pytest

from copper_async.exceptions import InvalidOptionError
from copper_async.sync import open_store


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://me:s3cr%zzet@db.example/crm",  # a '%' the user did not encode
        "postgresql://me:s3cr3t-pw@[::1/crm",  # an IPv6 host left open
        "postgresql://me@db.example/crm?password=s3cr%zzet",
    ],
)
def test_a_bad_postgresql_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(InvalidOptionError, match="not a PostgreSQL URL") as refused:
        open_store(url)
    message = str(refused.value)
    assert "s3cr" not in message


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite:////"])
def test_a_sqlite_url_without_a_file_is_a_usage_error(url: str) -> None:
    with pytest.raises(InvalidOptionError, match="sqlite:///relative/path"):
        open_store(url)


@pytest.mark.parametrize("url", [":memory:", "sqlite:///:memory:"])
def test_an_in_memory_sqlite_database_is_refused(url: str) -> None:
    """SQLite's in-memory database would take a whole load and keep none of
    it (and the run lock would be a file named ':memory:.lock')."""
    with pytest.raises(InvalidOptionError, match="':memory:'") as refused:
        open_store(url)
    assert refused.value.option == "db"
