"""The logic every store shares, over a blocking DB-API connection.

:class:`ThreadedStore` runs the connection in one thread of its own, so that
no database work runs on the event loop (a page's rows are made on the
caller's thread, while the store's may still be committing the last page).
The schema checks, the row building and the page upsert (which rows are new,
newer or unchanged) live here once; the SQLite and PostgreSQL stores are its
dialects. What commits together is described in :mod:`copper_async.sync._store`.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import attrs
import orjson

from copper_async._custom_fields import CustomFieldNames
from copper_async.exceptions import SchemaMismatchError, StoreError
from copper_async.sync._bookmark import replaces
from copper_async.sync._named import NAMED_VIEW
from copper_async.sync._rows import RowPlan, utc_texts
from copper_async.sync._schema import (
    COLUMNS,
    META_TABLE,
    SCHEMA_VERSION,
    STATE_TABLE,
    TABLE,
    TOOL,
    seconds,
)
from copper_async.sync._store import ALL_COLUMNS, JobState, PageCounts, RunProgress

__all__ = ["ThreadedStore"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

_RECORD = len(COLUMNS)  # the index of ``record`` in a row


def _loads(value: Any) -> Any:
    if value is None or isinstance(value, dict | list):
        return value
    return orjson.loads(value)


class ThreadedStore:
    """A DB-API connection driven from one worker thread.

    Dialects provide the connection, the lock, their SQL types and a few
    statements; the schema checks, the row building and the page upsert
    (which rows are new, newer or unchanged) live here once.
    """

    name = "database"
    placeholder = "?"
    #: Refuse a database that holds tables of something else (an SQLite file
    #: is one application's; a PostgreSQL database may hold other tables).
    refuse_foreign_tables = False
    #: SQL types of the column kinds, and of ``record`` (the JSON text as sent).
    types: ClassVar[Mapping[str, str]] = {}
    #: Where a page's rows are made. None: the whole page on the caller's thread,
    #: while the store's thread may still be committing the page before (SQLite:
    #: that commit waits for the disk without holding the GIL). A number: that
    #: many records at a time in the store's thread, while the server stores the
    #: chunk sent before (PostgreSQL's COPY).
    chunk: int | None = None

    def __init__(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="copper-sync-db"
        )
        self._connection: Any = None
        self._key: str | None = None
        self._rows = self._row_plan()
        # The run whose first page checked for rows of other runs, and whether
        # there were none: then a page is bulk-inserted without a lookup.
        self._checked_run: int | None = None
        self._fresh = False
        # A page's commit runs after upsert_page returns (see there).
        self._commit_due = False
        self._failed_commit: Exception | None = None
        self._failure_reported = False

    # -- dialect hooks ----------------------------------------------------------------

    def _connect(self) -> Any:
        raise NotImplementedError

    def _lock(self, key: str) -> None:
        """Take the run lock, or raise StoreBusyError at once."""
        raise NotImplementedError

    def _unlock(self) -> None:
        raise NotImplementedError

    def _unlock_in_session(self) -> None:
        """Release a lock the connection holds, before it closes (the server
        would drop it only once it noticed the connection gone)."""

    def _tables(self) -> set[str]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Settings for a database found to be the mirror's (or empty)."""

    def _create_schema(self) -> None:
        """The three tables, in the dialect's :attr:`types`."""
        t = self.types
        typed = ", ".join(
            f"{c.name} {t[c.kind]}" + (" PRIMARY KEY" if c.name == "id" else "") for c in COLUMNS
        )
        for statement in (
            f"CREATE TABLE {META_TABLE} (key {t['text']} PRIMARY KEY, value {t['text']} NOT NULL)",
            f"CREATE TABLE {TABLE} ({typed}, record {t['record']} NOT NULL, "
            f"synced_at {t['timestamp']} NOT NULL, deleted_at {t['timestamp']}, "
            f"seen_run {t['integer']} NOT NULL)",
            f"CREATE TABLE {STATE_TABLE} (job_key {t['text']} PRIMARY KEY, "
            f"job {t['json']} NOT NULL, bookmark {t['integer']}, "
            f"runs {t['integer']} NOT NULL, run {t['json']}, last_run {t['json']}, "
            f"updated_at {t['timestamp']} NOT NULL)",
        ):
            self._execute(statement)
        self._connection.cursor().executemany(
            self._sql(f"INSERT INTO {META_TABLE} (key, value) VALUES (?, ?)"),
            [("tool", TOOL), ("schema_version", str(SCHEMA_VERSION))],
        )

    def _existing(self, ids: list[int]) -> dict[int, tuple[int | None, bool, str]]:
        """id -> (date_modified seconds, deleted, record JSON) of the stored rows."""
        raise NotImplementedError

    def _insert(self, rows: Iterable[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def _mark_seen(self, ids: list[int], run_id: int) -> None:
        """Mark rows kept as they are seen by ``run_id``, and so not deleted."""
        raise NotImplementedError

    def _delivered(self, run_id: int) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def _timestamp(self, value: int) -> Any:
        raise NotImplementedError

    def _translate(self, error: Exception) -> Exception | None:
        """The StoreError for a driver error; None to let it through."""
        raise NotImplementedError

    def _is_conflict(self, error: Exception) -> bool:
        """Whether ``error`` is a duplicate primary key."""
        raise NotImplementedError

    def _in_transaction(self) -> bool:
        """Whether a transaction is open (known without asking the server)."""
        raise NotImplementedError

    def _row_plan(self) -> RowPlan:
        # ISO 8601 UTC text: what SQLite stores, and PostgreSQL's timestamptz reads.
        return RowPlan(timestamps=utc_texts, date=lambda date: date)

    def _named_view(self, names: CustomFieldNames) -> str:
        """The dialect's ``CREATE VIEW`` of :mod:`copper_async.sync._named`."""
        raise NotImplementedError

    # -- running in the thread --------------------------------------------------------

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function`` in the store's thread."""
        return await self._wait(self._submit(function, *args))

    def _submit(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, self._translated, function, *args)

    @staticmethod
    async def _wait(future: asyncio.Future[T]) -> T:
        """A cancellation waits for the thread's work to end, so a transaction
        is never left half-sent."""
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait([future])
            raise

    def _translated(self, function: Callable[..., T], *args: Any) -> T:
        if self._failed_commit is not None and function != self._close:
            # The transaction's fate is the driver's to tell: only closing is safe.
            self._failure_reported = True
            raise self._failed_commit
        try:
            return function(*args)
        except StoreError:
            raise
        except Exception as error:
            translated = self._translate(error)
            if translated is None:
                raise
            raise translated from error

    # -- the protocol -----------------------------------------------------------------

    async def open(self, job: Mapping[str, Any], key: str) -> JobState:
        return await self._call(self._open, job, key)

    async def begin_run(self, run: RunProgress) -> None:
        await self._call(self._save_run, run, True)

    async def restore(self, run_id: int, build: Callable[[Iterator[dict[str, Any]]], T]) -> T:
        return await self._call(lambda: build(self._delivered(run_id)))

    async def upsert_page(
        self,
        run_id: int,
        records: Sequence[Mapping[str, Any]],
        synced_at: int,
        commit: RunProgress | None = None,
    ) -> PageCounts:
        """Write a page; with ``commit``, also add its counts to that run's
        progress and commit both.

        The page's commit is queued right behind its statements and not waited
        for; the store's next call waits for it, and fails if it failed (so
        does :meth:`close`). The rows are made where :attr:`chunk` says.
        """
        synced = self._timestamp(synced_at)
        rows = None if self.chunk else self._page_rows(records, synced, run_id)
        written = self._submit(self._write_page, run_id, records, synced, rows, commit)
        if commit is not None:
            self._executor.submit(self._commit_page)
        return await self._wait(written)

    async def save_progress(self, run: RunProgress) -> None:
        await self._call(self._save_run, run, True)

    async def mark_deletions(self, run_id: int, deleted_at: int) -> int:
        return await self._call(self._mark_deletions, run_id, deleted_at)

    async def finish_run(self, run: RunProgress, bookmark: int, summary: Mapping[str, Any]) -> None:
        await self._call(self._finish, run, bookmark, summary)

    async def name_custom_fields(self, names: CustomFieldNames) -> None:
        """Recreate the named view from ``names`` (the current definitions)."""
        await self._call(self._rename, names)

    async def close(self) -> None:
        try:
            await self._call(self._close)
        finally:
            self._executor.shutdown(wait=True)
        if self._failed_commit is not None and not self._failure_reported:
            raise self._failed_commit  # a page the caller believes written is not

    # -- in the thread ----------------------------------------------------------------

    def _sql(self, statement: str) -> str:
        return statement.replace("?", self.placeholder)

    def _execute(self, statement: str, parameters: Sequence[Any] = ()) -> Any:
        cursor = self._connection.cursor()
        cursor.execute(self._sql(statement), parameters)
        return cursor

    def _open(self, job: Mapping[str, Any], key: str) -> JobState:
        self._connection = self._connect()
        self._lock(key)
        self._key = key
        self._check_schema()
        row = self._execute(
            f"SELECT job_key, job, bookmark, runs, run, last_run FROM {STATE_TABLE}"
        ).fetchall()
        others = [r for r in row if r[0] != key]
        if others and self._abandoned(others):
            # A first run refused for a mistyped email, URL or filter stored nothing:
            # it must not bind the database, or the corrected command is refused.
            self._execute(f"DELETE FROM {STATE_TABLE} WHERE job_key <> ?", (key,))
            others = []
        if others:
            differs = sorted(k for k in job if _loads(others[0][1]).get(k) != job[k])
            raise StoreError(
                f"{self.name} mirrors another job (it differs in: {', '.join(differs)}): "
                "use another database for this filter, server or account"
            )
        mine = [r for r in row if r[0] == key]
        if not mine:
            self._execute(
                f"INSERT INTO {STATE_TABLE} (job_key, job, bookmark, runs, updated_at) "
                "VALUES (?, ?, NULL, 0, ?)",
                (key, orjson.dumps(job).decode(), self._now_text()),
            )
            self._connection.commit()
            return JobState(bookmark=None, runs=0, unfinished=None, last_run=None)
        _key, _job, bookmark, runs, run, last_run = mine[0]
        unfinished = RunProgress(**_loads(run)) if run is not None else None
        return JobState(bookmark, int(runs), unfinished, _loads(last_run))

    def _abandoned(self, others: Sequence[Sequence[Any]]) -> bool:
        """Whether the other jobs never finished a run, stored no row and are not running."""
        if any(bookmark is not None or int(runs) for _k, _j, bookmark, runs, *_ in others):
            return False
        if self._execute(f"SELECT 1 FROM {TABLE} LIMIT 1").fetchone() is not None:
            return False
        return not any(self._running(other_key) for other_key, *_ in others)

    def _running(self, key: str) -> bool:
        """Whether a run of job ``key`` holds its lock (the SQLite lock covers every job)."""
        return False

    def _check_schema(self) -> None:
        tables = self._tables()
        if META_TABLE in tables:
            meta = dict(self._execute(f"SELECT key, value FROM {META_TABLE}").fetchall())
            if meta.get("tool") != TOOL or meta.get("schema_version") != str(SCHEMA_VERSION):
                raise SchemaMismatchError(
                    f"{self.name} was made by {meta.get('tool')!r} with schema version "
                    f"{meta.get('schema_version')!r}; this is {TOOL!r} schema version "
                    f"{SCHEMA_VERSION}: refusing to use or change it"
                )
            if not {TABLE, STATE_TABLE} <= tables:
                raise SchemaMismatchError(f"{self.name} lacks the mirror's tables: not changing it")
            self._prepare()
            return
        ours = {TABLE, STATE_TABLE} & tables
        if ours or (tables and self.refuse_foreign_tables):
            raise SchemaMismatchError(
                f"{self.name} holds tables not made by {TOOL} "
                f"({', '.join(sorted(ours or tables))}): refusing to use or change it"
            )
        self._prepare()
        self._create_schema()
        self._connection.commit()

    def _now_text(self) -> Any:
        import time

        return self._timestamp(int(time.time()))

    def _save_run(self, run: RunProgress, commit: bool) -> None:
        self._execute(
            f"UPDATE {STATE_TABLE} SET run = ?, updated_at = ? WHERE job_key = ?",
            (run.as_json(), self._now_text(), self._key),
        )
        if commit:
            self._connection.commit()

    def _page_rows(
        self, records: Sequence[Mapping[str, Any]], synced: Any, run_id: int
    ) -> list[tuple[Any, ...]]:
        texts = [orjson.dumps(record).decode() for record in records]
        return self._rows.rows(records, texts, synced, run_id)

    def _write_page(
        self,
        run_id: int,
        records: Sequence[Mapping[str, Any]],
        synced: Any,
        rows: list[tuple[Any, ...]] | None,
        commit: RunProgress | None,
    ) -> PageCounts:
        counts = self._upsert(run_id, records, synced, rows)
        if commit is not None:
            progress = attrs.evolve(
                commit,
                inserted=commit.inserted + counts.inserted,
                updated=commit.updated + counts.updated,
                unchanged=commit.unchanged + counts.unchanged,
            )
            self._save_run(progress, False)
            self._commit_due = True
        return counts

    def _commit_page(self) -> None:
        """Commit the page :meth:`_write_page` just wrote, if it wrote it whole;
        a failure is kept for the store's next call."""
        if not self._commit_due:
            return
        self._commit_due = False
        try:
            self._translated(self._connection.commit)
        except Exception as error:
            self._failed_commit = error

    def _upsert(
        self,
        run_id: int,
        records: Sequence[Mapping[str, Any]],
        synced: Any,
        made: list[tuple[Any, ...]] | None,
    ) -> PageCounts:
        """Insert, update or only mark seen each record's row (``made``, or
        made here a :attr:`chunk` at a time)."""
        rows: list[tuple[Any, ...]] = []
        if made is None:
            chunks = self._row_chunks(records, synced, run_id, rows)
        else:
            rows, chunks = made, iter([made])
        if self._only_this_run(run_id) and self._insert_new(itertools.chain.from_iterable(chunks)):
            return PageCounts(len(rows), 0, 0)
        collections.deque(chunks, maxlen=0)  # the rows the bulk insert did not reach
        stored = self._existing([record["id"] for record in records])
        inserts, updates, seen = [], [], []
        for record, row in zip(records, rows, strict=True):
            text = row[_RECORD]
            previous = stored.get(record["id"])
            if previous is None:
                inserts.append(row)
                continue
            modified, deleted, old_text = previous
            if not replaces(modified, seconds(record.get("date_modified"))) or (
                not deleted and text == old_text
            ):
                seen.append(record["id"])
            else:
                updates.append(row)
        if inserts:
            self._insert(inserts)
        if updates:
            self._update(updates)
        if seen:
            self._mark_seen(seen, run_id)
        return PageCounts(len(inserts), len(updates), len(seen))

    def _row_chunks(
        self,
        records: Sequence[Mapping[str, Any]],
        synced: Any,
        run_id: int,
        made: list[tuple[Any, ...]],
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The page's rows, :attr:`chunk` records at a time, each chunk also
        added to ``made``: a server can store a chunk while the next is made."""
        size = self.chunk or len(records) or 1
        for start in range(0, len(records), size):
            chunk = self._page_rows(records[start : start + size], synced, run_id)
            made.extend(chunk)
            yield chunk

    def _only_this_run(self, run_id: int) -> bool:
        """Whether the table holds no row of another run (checked once a run):
        a first load into an empty table, or its continuation."""
        if self._checked_run != run_id:
            (other,) = self._execute(
                f"SELECT EXISTS (SELECT 1 FROM {TABLE} WHERE seen_run <> ?)", (run_id,)
            ).fetchone()
            self._checked_run, self._fresh = run_id, not other
        return self._fresh

    def _insert_new(self, rows: Iterable[tuple[Any, ...]]) -> bool:
        """Insert rows presumed new in one bulk statement; False (and nothing
        written) if one is stored already: the caller then looks them up."""
        if not self._in_transaction():
            # The last page committed: the transaction this insert opens holds
            # only it, so a rollback undoes just the page, and the SAVEPOINT and
            # RELEASE (a wait for a server each) are not needed.
            try:
                self._insert(rows)
            except Exception as error:
                if not self._is_conflict(error):
                    raise
                self._connection.rollback()
                return False
            return True
        self._execute("SAVEPOINT copper_async_page")
        try:
            self._insert(rows)
        except Exception as error:
            if not self._is_conflict(error):
                raise
            self._execute("ROLLBACK TO SAVEPOINT copper_async_page")
            self._execute("RELEASE SAVEPOINT copper_async_page")
            return False
        self._execute("RELEASE SAVEPOINT copper_async_page")
        return True

    def _update(self, rows: list[tuple[Any, ...]]) -> None:
        names = ", ".join(ALL_COLUMNS)
        marks = ", ".join("?" * len(ALL_COLUMNS))
        assignments = ", ".join(f"{c} = excluded.{c}" for c in ALL_COLUMNS[1:])
        cursor = self._connection.cursor()
        cursor.executemany(
            self._sql(
                f"INSERT INTO {TABLE} ({names}) VALUES ({marks}) "
                f"ON CONFLICT (id) DO UPDATE SET {assignments}"
            ),
            rows,
        )

    def _mark_deletions(self, run_id: int, deleted_at: int) -> int:
        cursor = self._execute(
            f"UPDATE {TABLE} SET deleted_at = ? WHERE seen_run <> ? AND deleted_at IS NULL",
            (self._timestamp(deleted_at), run_id),
        )
        return int(cursor.rowcount)

    def _finish(self, run: RunProgress, bookmark: int, summary: Mapping[str, Any]) -> None:
        self._execute(
            f"UPDATE {STATE_TABLE} SET bookmark = ?, runs = ?, run = NULL, last_run = ?, "
            "updated_at = ? WHERE job_key = ?",
            (bookmark, run.run_id, orjson.dumps(summary).decode(), self._now_text(), self._key),
        )
        self._connection.commit()

    def _rename(self, names: CustomFieldNames) -> None:
        self._execute(f"DROP VIEW IF EXISTS {NAMED_VIEW}")
        self._execute(self._named_view(names))
        self._connection.commit()

    def _close(self) -> None:
        connection = self._connection
        try:
            if connection is not None:
                try:
                    connection.rollback()  # pages written since the last commit point
                    self._unlock_in_session()
                except Exception as error:  # a lost connection: nothing left to undo
                    logger.debug("rollback on close failed: %s", error)
                finally:
                    self._connection = None
                    connection.close()
        finally:
            self._unlock()
