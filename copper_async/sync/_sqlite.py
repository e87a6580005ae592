"""The SQLite store: the standard library's sqlite3, WAL, one file.

Timestamps are ISO-8601 UTC text (``2026-01-31T09:30:00Z``), ``close_date``
an ISO date, JSON columns text. A run holds an exclusive ``flock`` on
``<database>.lock`` beside the file (symlinks resolved) for its whole length
(the export's lock, :mod:`copper_async._lock`): independent of SQLite's own
(fcntl) locks, released by the kernel if the process dies. A database with
several hard links is refused: SQLite itself cannot share one file between
names.

Committed pages are copied from the write-ahead log into the database file
(a checkpoint) by a second connection in a thread of its own, so a load's
commits do not wait for it: SQLite's automatic checkpoint runs inside the
commit that fills the log, and took about 40% of a bulk load's time here.
The writer keeps an automatic checkpoint at a higher mark, as a backstop.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from copper_async._custom_fields import CustomFieldNames
from copper_async._lock import exclusive_lock
from copper_async.exceptions import InvalidOptionError, StoreBusyError, StoreError
from copper_async.sync._named import sqlite_view
from copper_async.sync._rows import RowPlan, utc_texts
from copper_async.sync._schema import TABLE
from copper_async.sync._store import ALL_COLUMNS
from copper_async.sync._threaded import ThreadedStore

__all__ = ["SQLiteStore"]

_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

#: The writer's own automatic checkpoint, in database pages: ten times SQLite's
#: default, reached only if the background checkpoint falls behind.
WRITER_AUTOCHECKPOINT = 10_000

logger = logging.getLogger(__name__)


class SQLiteStore(ThreadedStore):
    """The mirror in one SQLite file (created when missing)."""

    refuse_foreign_tables = True
    types: ClassVar[Mapping[str, str]] = {
        "integer": "INTEGER",
        "real": "REAL",
        "boolean": "INTEGER",
        "text": "TEXT",
        "timestamp": "TEXT",
        "date": "TEXT",
        "json": "TEXT",
        "record": "TEXT",
    }

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if os.fspath(path) == ":memory:":
            raise InvalidOptionError(
                "db", "':memory:' keeps nothing once the run ends: give a file's path"
            )
        super().__init__()
        self.path = Path(path)
        self.name = f"SQLite database {str(self.path)!r}"
        self._held: contextlib.ExitStack | None = None
        self._checkpoints: _Checkpointer | None = None

    def _connect(self) -> _Connection:
        if self.path.is_dir():
            raise StoreError(f"{self.name} is a directory")
        if not self.path.parent.is_dir():
            raise StoreError(f"{self.name}: folder {str(self.path.parent)!r} does not exist")
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        return _Connection(connection, self._committed)

    def _prepare(self) -> None:
        """Once the file is known to be ours (or empty): WAL, the sync level, and
        the checkpoints in the background. WAL with NORMAL: a power loss may
        drop the last commits, never half of one."""
        self._connection.rollback()  # journal_mode cannot change inside a transaction
        self._connection.pragma("PRAGMA journal_mode=WAL")
        self._connection.pragma("PRAGMA synchronous=NORMAL")
        self._connection.pragma(f"PRAGMA wal_autocheckpoint={WRITER_AUTOCHECKPOINT}")
        self._checkpoints = _Checkpointer(self.path)

    def _committed(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.committed()

    def _close(self) -> None:
        checkpoints, self._checkpoints = self._checkpoints, None
        try:
            if checkpoints is not None:
                checkpoints.close()  # first: the writer's close then copies the rest
        finally:
            super()._close()

    def _lock(self, key: str) -> None:
        held = contextlib.ExitStack()
        # Not the database itself: closing a second descriptor of it would drop
        # SQLite's own POSIX locks (those of any connection in this process).
        held.enter_context(
            exclusive_lock(
                self.path,
                self.name,
                holder="sync",
                busy=StoreBusyError,
                unusable=StoreError,
                lock_file_itself=False,
            )
        )
        with contextlib.suppress(OSError):
            links = os.stat(self.path).st_nlink
            if links > 1:
                held.close()
                raise StoreError(
                    f"{self.name} has {links} hard links: SQLite keeps its journal beside "
                    "the name it opens, so runs through two names could both write the file "
                    "and each miss the other's journal; give it one name"
                )
        self._held = held

    def _unlock(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.close()  # removes the lock file and releases the flock

    def _tables(self) -> set[str]:
        rows = self._execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {name for (name,) in rows if not name.startswith("sqlite_")}

    def _existing(self, ids: list[int]) -> dict[int, tuple[int | None, bool, str]]:
        marks = ", ".join("?" * len(ids))
        rows = self._execute(
            "SELECT id, CAST(strftime('%s', date_modified) AS INTEGER), deleted_at IS NOT NULL, "
            f"record FROM {TABLE} WHERE id IN ({marks})",
            ids,
        ).fetchall()
        return {row[0]: (row[1], bool(row[2]), row[3]) for row in rows}

    def _insert(self, rows: Iterable[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" * len(ALL_COLUMNS))
        self._connection.executemany(
            f"INSERT INTO {TABLE} ({', '.join(ALL_COLUMNS)}) VALUES ({marks})", rows
        )

    def _row_plan(self) -> RowPlan:
        return RowPlan(timestamps=utc_texts, date=lambda date: date.isoformat())

    def _named_view(self, names: CustomFieldNames) -> str:
        return sqlite_view(names)

    def _is_conflict(self, error: Exception) -> bool:
        return isinstance(error, sqlite3.IntegrityError)

    def _in_transaction(self) -> bool:
        return bool(self._connection.in_transaction)

    def _mark_seen(self, ids: list[int], run_id: int) -> None:
        self._connection.executemany(
            f"UPDATE {TABLE} SET seen_run = ?, deleted_at = NULL WHERE id = ?",
            [(run_id, i) for i in ids],
        )

    def _delivered(self, run_id: int) -> Iterator[dict[str, Any]]:
        cursor = self._execute(
            "SELECT json_extract(record, '$.id'), json_extract(record, '$.date_created'), "
            f"json_extract(record, '$.date_modified') FROM {TABLE} WHERE seen_run = ?",
            (run_id,),
        )
        for record_id, created, modified in cursor:
            yield {"id": record_id, "date_created": created, "date_modified": modified}

    def _timestamp(self, value: int) -> str:
        return time.strftime(_TIMESTAMP_FORMAT, time.gmtime(value))

    def _translate(self, error: Exception) -> Exception | None:
        if isinstance(error, sqlite3.Error):
            message = str(error)
            if isinstance(error, sqlite3.OperationalError) and "locked" in message:
                return StoreBusyError(f"{self.name} is locked by another program: {message}")
            return StoreError(f"{self.name}: {message}")
        if isinstance(error, OSError):
            return StoreError(f"{self.name}: {error.strerror or error}")
        return None


class _Checkpointer:
    """Runs a passive checkpoint in its own thread and connection after each
    commit: at most one runs and one waits to start, which also copies the
    commits made before it starts. (Small checkpoints as the commits come kept
    a bulk load faster than one every few megabytes.) A passive checkpoint
    never blocks the writer; one that fails or stops short leaves the pages in
    the log, for the next checkpoint or the writer's close."""

    def __init__(self, path: Path) -> None:
        # The writer's own name, symlinks kept: SQLite finds the log by it.
        self._path = path.absolute()
        # The checkpoint submitted last: waiting, running or done.
        self._last: concurrent.futures.Future[None] | None = None
        self._connection: sqlite3.Connection | None = None
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="copper-sync-checkpoint"
        )

    def committed(self) -> None:
        last = self._last
        # One still waiting to start starts after this commit: it copies it too.
        if last is None or last.running() or last.done():
            self._last = self._thread.submit(self._checkpoint)

    def wait(self) -> None:
        """Until a checkpoint begun after the last commit ended."""
        if self._last is not None:
            concurrent.futures.wait([self._last])

    def _checkpoint(self) -> None:
        try:
            if self._connection is None:
                # mode=rw: never create a file that went away meanwhile.
                uri = f"{self._path.as_uri()}?mode=rw"
                self._connection = sqlite3.connect(uri, uri=True, isolation_level=None)
            self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as error:
            logger.debug("background checkpoint of %s failed: %s", self._path, error)

    def close(self) -> None:
        self._thread.submit(self._disconnect)
        self._thread.shutdown(wait=True)

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


class _Connection:
    """sqlite3 in autocommit mode, with explicit transactions: the first
    statement after a commit begins one, so rows and progress commit together.
    ``committed`` is called after each commit."""

    def __init__(self, connection: sqlite3.Connection, committed: Callable[[], None]) -> None:
        self._connection = connection
        self._committed = committed

    def _begin(self) -> None:
        if not self._connection.in_transaction:
            self._connection.execute("BEGIN")

    @property
    def in_transaction(self) -> bool:
        return self._connection.in_transaction

    def pragma(self, statement: str) -> None:
        self._connection.execute(statement)

    def cursor(self) -> sqlite3.Cursor:
        self._begin()
        return self._connection.cursor()

    def executemany(self, statement: str, rows: Any) -> sqlite3.Cursor:
        self._begin()
        return self._connection.executemany(statement, rows)

    def commit(self) -> None:
        if self._connection.in_transaction:
            self._connection.execute("COMMIT")
            self._committed()

    def rollback(self) -> None:
        if self._connection.in_transaction:
            self._connection.execute("ROLLBACK")

    def close(self) -> None:
        self._connection.close()
