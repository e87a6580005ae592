"""``--db`` values: ``sqlite:///path``, a plain path, or ``postgresql://...``."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from copper_async.exceptions import InvalidOptionError
from copper_async.sync._store import Store

__all__ = ["DEFAULT_DB", "open_store"]

DEFAULT_DB = "copper.sqlite"


def open_store(url: str = DEFAULT_DB) -> Store:
    """The store a ``--db`` value names (nothing is opened before the run).

    ``postgresql://`` (or ``postgres://``) URLs go to libpq as they are, so
    its environment variables (``PGHOST``, ``PGPASSWORD``, ``PGSERVICE``...)
    fill in what the URL leaves out; ``postgresql://`` alone uses them all.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidOptionError("db", "must be a path or a sqlite:/// or postgresql:// URL")
    scheme = url.split(":", 1)[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        from copper_async.sync._postgres import PostgresStore

        return PostgresStore(url)
    if scheme == "sqlite":
        parts = urlsplit(url)
        path = unquote(parts.path[1:])
        if parts.netloc or path.strip("/") == "" or parts.query or parts.fragment:
            raise InvalidOptionError(
                "db", f"{url!r}: write sqlite:///relative/path or sqlite:////absolute/path"
            )
        from copper_async.sync._sqlite import SQLiteStore

        return SQLiteStore(path)
    if scheme:
        raise InvalidOptionError(
            "db", f"unknown database scheme {scheme!r}: use a path, sqlite:/// or postgresql://"
        )
    from copper_async.sync._sqlite import SQLiteStore

    return SQLiteStore(url)
