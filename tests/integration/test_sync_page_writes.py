"""How a page is written, the same in SQLite and PostgreSQL: no SAVEPOINT for a
page that opens its own transaction, a conflict in the middle of a page still
sorts every row, and a page's commit, which finishes after the call returns,
reports its failure at the store's next call or at close.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from copper_async.exceptions import StoreError
from copper_async.sync import RunProgress, open_store

pytestmark = pytest.mark.asyncio


def query(db: str, statement: str) -> list[tuple[Any, ...]]:
    if db.startswith("postgresql://"):
        with psycopg.connect(db) as connection:
            return connection.execute(statement).fetchall()
    with sqlite3.connect(db) as connection:
        return connection.execute(statement).fetchall()


def names(db: str) -> dict[int, str]:
    rows = query(db, "SELECT id, name FROM opportunities WHERE deleted_at IS NULL")
    return dict(rows)


def progress(db: str) -> tuple[int, int, int]:
    ((run,),) = query(db, "SELECT run FROM copper_async_sync_state")
    saved = orjson.loads(run) if isinstance(run, str) else run
    return saved["inserted"], saved["updated"], saved["unchanged"]


@contextlib.asynccontextmanager
async def statements_sent(store: Any, folder: Path) -> AsyncIterator[list[str]]:
    """What the store sends to its database meanwhile (filled in on exit)."""
    sent: list[str] = []
    if store.__class__.__name__ == "PostgresStore":
        trace = folder / "libpq.trace"
        with trace.open("w") as sink:
            store._connection.pgconn.trace(sink.fileno())
            yield sent
            store._connection.pgconn.untrace()
        sent.extend(trace.read_text().splitlines())
    else:
        # sqlite3 connections belong to their thread: set the tracer in the store's.
        connection = store._connection._connection
        await store._call(connection.set_trace_callback, sent.append)
        yield sent
        await store._call(connection.set_trace_callback, None)


def page(*rows: tuple[int, str, int]) -> list[dict[str, Any]]:
    return [{"id": i, "name": name, "date_modified": modified} for i, name, modified in rows]


async def test_a_page_after_a_commit_is_written_without_a_savepoint(
    db: str, tmp_path: Path
) -> None:
    """A page that opens its transaction needs no SAVEPOINT (a wait for the
    server each, in PostgreSQL): a conflict rolls back the transaction, which
    held only that page; the committed pages and progress stay."""
    run = RunProgress(run_id=1, mode="full", started=0, read_from=None)
    store: Any = open_store(db)
    try:
        await store.open({"job": 1}, "a" * 64)
        assert (
            await store.upsert_page(1, page((1, "r1", 1_000), (2, "r2", 1_000)), 5, run)
        ).inserted == 2
        run.inserted = 2
        async with statements_sent(store, tmp_path) as sent:
            assert (await store.upsert_page(1, page((3, "r3", 1_000)), 6, run)).inserted == 1
        run.inserted = 3
        mixed = page((1, "r1", 1_000), (2, "newer", 2_000), (4, "new", 2_000))
        counts = await store.upsert_page(1, mixed, 7, run)
        assert (counts.inserted, counts.updated, counts.unchanged) == (1, 1, 1)
    finally:
        await store.close()
    assert any("INSERT" in line or "COPY" in line for line in sent)
    assert not [line for line in sent if "SAVEPOINT" in line]
    assert names(db) == {1: "r1", 2: "newer", 3: "r3", 4: "new"}
    assert progress(db) == (4, 1, 1)


@pytest.mark.parametrize("chunk", [None, 50], ids=["rows made first", "rows made by chunk"])
@pytest.mark.parametrize("first_committed", [True, False])
async def test_a_conflict_in_the_middle_of_a_page_is_counted_exactly(
    db: str, first_committed: bool, chunk: int | None
) -> None:
    """A stored id in the middle of a page (in its second chunk of three, when
    made by chunk) undoes the rows the bulk insert wrote before it, and every
    row is then sorted."""
    run = RunProgress(run_id=1, mode="full", started=0, read_from=None)
    store: Any = open_store(db)
    store.chunk = chunk
    try:
        await store.open({"job": 1}, "a" * 64)
        await store.upsert_page(1, page((60, "old", 1_000)), 5, run if first_committed else None)
        rows = page(*((i, f"r{i}", 2_000) for i in range(1, 121)))
        counts = await store.upsert_page(1, rows, 6, run)
        assert (counts.inserted, counts.updated, counts.unchanged) == (119, 1, 0)
    finally:
        await store.close()
    stored = names(db)
    assert sorted(stored) == list(range(1, 121))
    assert stored[60] == "r60"


REFUSED = r"refused at commit|FOREIGN KEY"  # PostgreSQL's trigger, SQLite's own


async def refuse_at_commit(store: Any, db: str, record_id: int) -> None:
    """Make the database refuse, at COMMIT and not before, a transaction that
    inserted ``record_id``: a deferred constraint, checked only then."""
    if db.startswith("postgresql://"):
        with psycopg.connect(db, autocommit=True) as server:
            server.execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$"
            )
            server.execute(
                "CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON opportunities "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                f"WHEN (NEW.id = {record_id}) EXECUTE FUNCTION refuse()"
            )
        return
    with sqlite3.connect(db) as other:
        other.executescript(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
            "CREATE TABLE child (parent_id INTEGER "
            "REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);"
            f"CREATE TRIGGER refuse AFTER INSERT ON opportunities WHEN NEW.id = {record_id} "
            "BEGIN INSERT INTO child VALUES (1); END;"
        )
    # Foreign keys are checked only where enabled: on the store's connection.
    store_connection = store._connection._connection
    await store._call(store_connection.execute, "PRAGMA foreign_keys = ON")


async def test_a_failed_commit_is_reported_by_the_next_call(db: str) -> None:
    """upsert_page returns once the page's statements ran; its commit follows.
    When that commit fails, the store's next call raises, nothing of the page
    or its progress is stored, and close does not raise it twice."""
    run = RunProgress(run_id=1, mode="full", started=0, read_from=None)
    store: Any = open_store(db)
    try:
        await store.open({"job": 1}, "a" * 64)
        await store.upsert_page(1, page((1, "r1", 1_000)), 5, run)
        run.inserted = 1
        await refuse_at_commit(store, db, 13)
        counts = await store.upsert_page(1, page((12, "r12", 1_000), (13, "r13", 1_000)), 6, run)
        assert counts.inserted == 2  # the statements ran; the commit had not
        with pytest.raises(StoreError, match=REFUSED):
            await store.save_progress(run)
        with pytest.raises(StoreError, match=REFUSED):
            await store.upsert_page(1, page((14, "r14", 1_000)), 7, run)
    finally:
        await store.close()
    assert names(db) == {1: "r1"}
    assert progress(db) == (1, 0, 0)


async def test_close_reports_a_failed_commit_nobody_was_told_of(db: str) -> None:
    run = RunProgress(run_id=1, mode="full", started=0, read_from=None)
    store: Any = open_store(db)
    await store.open({"job": 1}, "a" * 64)
    await refuse_at_commit(store, db, 13)
    await store.upsert_page(1, page((13, "r13", 1_000)), 5, run)
    with pytest.raises(StoreError, match=REFUSED):
        await store.close()
    assert names(db) == {}


async def test_a_deleted_id_that_comes_back_older_is_live_and_keeps_its_newer_row(
    db: str,
) -> None:
    """Only a reconcile marks deletions, from the ids it saw: an id seen again
    exists, even when its copy is older than the row kept (which stays)."""
    runs = [RunProgress(run_id=i, mode="full", started=0, read_from=None) for i in (1, 2, 3)]
    store: Any = open_store(db)
    try:
        await store.open({"job": 1}, "a" * 64)
        await store.upsert_page(1, page((1, "new", 2_000), (2, "two", 2_000)), 5, runs[0])
        await store.upsert_page(2, page((2, "two", 2_000)), 6, runs[1])
        assert await store.mark_deletions(2, 7) == 1
        await store.finish_run(runs[1], 7, {})
        assert names(db) == {2: "two"}
        counts = await store.upsert_page(3, page((1, "old", 1_000)), 8, runs[2])
        assert (counts.inserted, counts.updated, counts.unchanged) == (0, 0, 1)
        await store.finish_run(runs[2], 8, {})
    finally:
        await store.close()
    assert names(db) == {1: "new", 2: "two"}
