"""The PostgreSQL store, through psycopg 3 (libpq): the ``postgres`` extra.

libpq reads the URL and fills what it leaves out from its environment
variables (``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGPASSWORD``, ``PGDATABASE``,
``PGSERVICE``, ``PGSSLMODE``...) and ``~/.pgpass``. Timestamps are
``timestamptz``, ``close_date`` a ``date``, ``tags`` / ``custom_fields`` /
``leads_converted_from`` ``jsonb``, and ``record`` ``json`` (the text as
Copper sent it). New rows arrive by ``COPY``, made and sent 50 at a time.
A run holds a session advisory lock keyed by its job and schema for its whole length;
the server drops it if the connection dies.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import unquote

from copper_async._custom_fields import CustomFieldNames
from copper_async._redact import REDACTED
from copper_async.exceptions import InvalidOptionError, StoreBusyError, StoreError
from copper_async.sync._named import postgres_view
from copper_async.sync._schema import TABLE
from copper_async.sync._store import ALL_COLUMNS
from copper_async.sync._threaded import ThreadedStore

__all__ = ["PostgresStore"]

_UTC = dt.UTC


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreError("PostgreSQL needs psycopg: pip install 'copper-async[postgres]'") from None
    return psycopg


def _without_passwords(message: str, url: str) -> str:
    """libpq's complaint about ``url``, which may quote the URL or its bad
    part, with every password the URL holds (in its user info or a
    ``password=`` parameter) replaced by ``***``."""
    secrets = re.findall(r"[?&]password=([^&#]*)", url)
    authority = url.split("://", 1)[-1].split("?", 1)[0]
    if "@" in authority:  # the last @ ends the user info, even an unencoded one
        userinfo = authority.rsplit("@", 1)[0]
        if ":" in userinfo:
            secrets.append(userinfo.split(":", 1)[1])
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        message = message.replace(secret, REDACTED).replace(unquote(secret), REDACTED)
    return message


class PostgresStore(ThreadedStore):
    """The mirror in a PostgreSQL database (its tables created when missing)."""

    placeholder = "%s"
    chunk = 50  # rows made while the server stores those COPY sent
    types: ClassVar[Mapping[str, str]] = {
        "integer": "bigint",
        "real": "double precision",
        "boolean": "boolean",
        "text": "text",
        "timestamp": "timestamptz",
        "date": "date",
        "json": "jsonb",
        "record": "json",  # the text as Copper sent it
    }

    def __init__(self, url: str) -> None:
        super().__init__()
        psycopg = _psycopg()
        try:
            parts = psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.Error as error:
            message = _without_passwords(str(error).strip(), url)
            raise InvalidOptionError("db", f"not a PostgreSQL URL: {message}") from None
        self.url = url
        shown = " ".join(
            f"{k}={parts[k]}" for k in ("host", "port", "dbname", "user") if k in parts
        )
        self.name = f"PostgreSQL database ({shown or 'from the PG* environment'})"
        self._psycopg = psycopg
        self._schema: str | None = None  # where the tables are: current_schema()

    def _connect(self) -> Any:
        return self._psycopg.connect(self.url, autocommit=False)

    def _lock(self, key: str) -> None:
        (self._schema,) = self._execute("SELECT current_schema()").fetchone()
        lock_key = self._lock_key(key)
        (taken,) = self._execute("SELECT pg_try_advisory_lock(%s)", (lock_key,)).fetchone()
        self._connection.commit()
        if not taken:
            raise StoreBusyError(
                f"another sync of this job is running on {self.name}, schema {self._schema!r}"
            )

    def _lock_key(self, job_key: str) -> int:
        """The advisory lock of a job's mirror: 64 bits of a digest of the job
        and the schema (advisory locks are the whole database's, and each
        schema holds a mirror of its own)."""
        named = f"{self._schema or ''}\0{job_key}".encode()
        return int.from_bytes(hashlib.sha256(named).digest()[:8], "big", signed=True)

    def _running(self, key: str) -> bool:
        lock_key = self._lock_key(key)
        (taken,) = self._execute("SELECT pg_try_advisory_lock(%s)", (lock_key,)).fetchone()
        if taken:
            self._execute("SELECT pg_advisory_unlock(%s)", (lock_key,))
        return not taken

    def _unlock_in_session(self) -> None:
        # At once: a run that starts right after this one ends is not refused.
        self._execute("SELECT pg_advisory_unlock_all()")
        self._connection.commit()

    def _unlock(self) -> None:
        """Released in the session; a connection that died takes its lock with it."""

    def _tables(self) -> set[str]:
        rows = self._execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
        return {name for (name,) in rows}

    def _existing(self, ids: list[int]) -> dict[int, tuple[int | None, bool, str]]:
        rows = self._execute(
            "SELECT id, extract(epoch FROM date_modified)::bigint, deleted_at IS NOT NULL, "
            f"record::text FROM {TABLE} WHERE id = ANY(%s)",
            (ids,),
        ).fetchall()
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def _insert(self, rows: Iterable[tuple[Any, ...]]) -> None:
        cursor = self._connection.cursor()
        with cursor.copy(f"COPY {TABLE} ({', '.join(ALL_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _mark_seen(self, ids: list[int], run_id: int) -> None:
        self._execute(
            f"UPDATE {TABLE} SET seen_run = %s, deleted_at = NULL WHERE id = ANY(%s)",
            (run_id, ids),
        )

    def _delivered(self, run_id: int) -> Iterator[dict[str, Any]]:
        with self._connection.cursor(name="copper_async_delivered") as cursor:
            cursor.execute(
                "SELECT record->'id', record->'date_created', record->'date_modified' "
                f"FROM {TABLE} WHERE seen_run = %s",
                (run_id,),
            )
            for record_id, created, modified in cursor:
                yield {"id": record_id, "date_created": created, "date_modified": modified}

    def _named_view(self, names: CustomFieldNames) -> str:
        return postgres_view(names)

    def _is_conflict(self, error: Exception) -> bool:
        return isinstance(error, self._psycopg.errors.UniqueViolation)

    def _in_transaction(self) -> bool:
        status = self._connection.info.transaction_status
        return bool(status != self._psycopg.pq.TransactionStatus.IDLE)

    def _timestamp(self, value: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(value, _UTC)

    def _translate(self, error: Exception) -> Exception | None:
        if isinstance(error, self._psycopg.Error):
            message = str(error).strip() or type(error).__name__
            return StoreError(f"{self.name}: {message}")
        return None
