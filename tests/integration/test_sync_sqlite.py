"""copper_async.sync into SQLite against the fake server on loopback."""

from __future__ import annotations

import hashlib
import math
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from copper_async.exceptions import InvalidFilterError, InvalidOptionError
from copper_async.filters import OpportunityFilter
from copper_async.sync import (
    OVERLAP,
    SchemaMismatchError,
    SQLiteStore,
    StoreBusyError,
    StoreError,
    open_store,
    run_sync,
)
from copper_async.sync._bookmark import job_identity
from copper_async.sync._postgres import PostgresStore
from copper_async.testing import Dataset
from tests.stopping import Stop, stop_after
from tests.sync_support import DAY, TOKEN, live, sqlite_rows, sync, world


@pytest.mark.asyncio
async def test_full_load_then_only_changes_then_deletions(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    async with world(5_000, cap=2_000) as w:
        first = await sync(w, db)
        assert (first.mode, first.inserted, first.updated, first.deleted) == ("full", 5_000, 0, 0)
        assert first.bookmark == w.clock.now - OVERLAP
        assert live(sqlite_rows(db)) == w.truth()

        w.clock.advance(DAY)
        changes = w.server.play_changes(edits=250, creates=40, deletes=30, seed=2)
        w.server.reset_stats()
        second = await sync(w, db)
        assert second.mode == "incremental"
        assert second.read_from == first.bookmark - OVERLAP
        assert (second.inserted, second.updated, second.unchanged) == (40, 250, 0)
        k = 290
        assert w.server.stats["requests"] == second.requests <= math.ceil(k / 200) + 3
        rows = sqlite_rows(db)
        assert {i: r for i, r in live(rows).items() if i not in changes.deleted} == w.truth()
        assert all(i in rows for i in changes.deleted)  # not seen yet: no change feed

        w.clock.advance(DAY)
        third = await sync(w, db, reconcile=True)
        assert (third.mode, third.deleted, third.unchanged) == ("reconcile", 30, 5_010)
        rows = sqlite_rows(db)
        assert live(rows) == w.truth()
        assert {i for i, (_r, deleted) in rows.items() if deleted} == set(changes.deleted)
        assert len(rows) == 5_040  # never DELETE

        # A deleted id that comes back is live again.
        back = rows[changes.deleted[0]][0]
        w.server.dataset = Dataset.from_records([*w.truth().values(), back])
        w.clock.advance(DAY)
        fourth = await sync(w, db, reconcile=True)
        assert (fourth.updated, fourth.deleted) == (1, 0)
        assert live(sqlite_rows(db)) == w.truth()


@pytest.mark.asyncio
async def test_nothing_changed_costs_one_request(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    async with world(1_000) as w:
        await sync(w, db)
        w.clock.advance(DAY)
        w.server.reset_stats()
        again = await sync(w, db)
        assert (again.inserted, again.updated, again.requests) == (0, 0, 1)


@pytest.mark.asyncio
async def test_the_typed_columns(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    async with world(300) as w:
        await sync(w, db)
        record = w.dataset.record(7)
    with sqlite3.connect(db) as connection:
        connection.row_factory = sqlite3.Row
        row = connection.execute("SELECT * FROM opportunities WHERE id = 7").fetchone()
        version = connection.execute(
            "SELECT value FROM copper_async_meta WHERE key = 'schema_version'"
        ).fetchone()[0]
    assert version == "1"
    assert row["name"] == record["name"]
    month, day, year = map(int, record["close_date"].split("/"))
    assert row["close_date"] == f"{year:04}-{month:02}-{day:02}"
    created = record["date_created"]
    assert row["date_created"].endswith("Z")
    from datetime import datetime

    assert datetime.fromisoformat(row["date_created"]).timestamp() == created
    assert row["custom_fields"] is not None
    assert row["deleted_at"] is None
    assert row["synced_at"].endswith("Z")


@pytest.mark.asyncio
async def test_an_older_record_never_replaces_a_newer_row(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    store = SQLiteStore(db)
    await store.open({"job": 1}, "k" * 64)
    try:
        newer = {"id": 1, "name": "new", "date_modified": 2_000}
        older = {"id": 1, "name": "old", "date_modified": 1_000}
        assert (await store.upsert_page(1, [newer], 5)).inserted == 1
        counts = await store.upsert_page(1, [older], 6)
        assert (counts.updated, counts.unchanged) == (0, 1)
        same_second = {"id": 1, "name": "later edit", "date_modified": 2_000}
        assert (await store.upsert_page(1, [same_second], 7)).updated == 1
        from copper_async.sync import RunProgress

        await store.save_progress(RunProgress(run_id=1, mode="full", started=0, read_from=None))
    finally:
        await store.close()
    assert sqlite_rows(db)[1][0]["name"] == "later edit"


@pytest.mark.asyncio
async def test_a_stopped_full_load_resumes_where_it_stopped(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    async with world(6_000, cap=2_000) as w:
        with pytest.raises(Stop):
            await sync(w, db, progress=stop_after(12))
        assert 0 < len(sqlite_rows(db)) < 6_000
        with sqlite3.connect(db) as connection:
            assert connection.execute(
                "SELECT bookmark FROM copper_async_sync_state"
            ).fetchone() == (None,)
        w.server.reset_stats()
        elapsed: list[float] = []
        resumed = await sync(w, db, progress=lambda stats, _written: elapsed.append(stats.elapsed))
        assert resumed.resumed
        assert resumed.mode == "full"
        assert live(sqlite_rows(db)) == w.truth()
        # Whole pages were kept: far fewer requests than a fresh 30-page load.
        assert w.server.stats["requests"] <= 30 - 10
        assert resumed.inserted == 6_000
        # The resumed run's time runs too: progress lines show a rate, not 0/s.
        assert elapsed[-1] > elapsed[0] > 0


@pytest.mark.asyncio
async def test_a_second_run_is_refused_while_one_holds_the_database(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    async with world(2_000) as w:
        # The first run's hold, taken as a run takes it, and kept while the second tries.
        job, key = job_identity(
            OpportunityFilter(), base_url=w.client.base_url, user_email=w.client.user_email
        )
        holder: Any = open_store(str(db))
        await holder.open(job, key)
        try:
            with pytest.raises(StoreBusyError, match="another sync"):
                await sync(w, db)
        finally:
            await holder.close()
        await sync(w, db)
        assert live(sqlite_rows(db)) == w.truth()
    # The export's lock: its file is removed when the run lets go.
    assert not (tmp_path / "m.sqlite.lock").exists()


def test_the_store_errors_are_in_the_one_error_tree() -> None:
    from copper_async import exceptions, sync

    for name in ("StoreError", "StoreBusyError", "SchemaMismatchError"):
        assert getattr(sync, name) is getattr(exceptions, name)
        assert name in exceptions.__all__
    assert issubclass(exceptions.StoreBusyError, exceptions.StoreError)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.asyncio
async def test_databases_of_another_tool_or_version_are_refused_untouched(tmp_path: Path) -> None:
    foreign, old, garbage = tmp_path / "f.sqlite", tmp_path / "o.sqlite", tmp_path / "g.sqlite"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE opportunities (id INTEGER PRIMARY KEY, x TEXT)")
    garbage.write_bytes(b"not a database, just text" * 100)
    async with world(200) as w:
        await sync(w, old)
        with sqlite3.connect(old) as connection:
            connection.execute(
                "UPDATE copper_async_meta SET value = '99' WHERE key = 'schema_version'"
            )
        for path, error, words in (
            (foreign, SchemaMismatchError, "not made by"),
            (old, SchemaMismatchError, "schema version '99'"),
            (garbage, StoreError, "not a database"),
        ):
            before = digest(path)
            with pytest.raises(error, match=words):
                await sync(w, path)
            assert digest(path) == before


@pytest.mark.asyncio
async def test_a_database_of_another_job_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    from copper_async import OpportunityFilter

    async with world(200) as w:
        await sync(w, db)
        with pytest.raises(StoreError, match=r"another job.*filter"):
            await sync(w, db, filter=OpportunityFilter(statuses=("Open",)))


def make_read_only(path: Path, read_only: bool) -> None:
    """chmod for a user; root writes through modes, so the immutable flag for root."""
    if os.geteuid() != 0:
        path.chmod(0o444 if read_only else 0o644)
        return
    subprocess.run(["chattr", "+i" if read_only else "-i", str(path)], check=True)


@pytest.mark.asyncio
async def test_a_read_only_database_is_a_store_error_and_stays_whole(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    async with world(300) as w:
        await sync(w, db)
        before = sqlite_rows(db)
        w.clock.advance(DAY)
        w.server.play_changes(edits=5)
        make_read_only(db, True)
        try:
            with pytest.raises(StoreError, match=r"readonly|read-only"):
                await sync(w, db)
        finally:
            make_read_only(db, False)
        assert sqlite_rows(db) == before


def test_db_urls() -> None:
    assert isinstance(open_store("x.sqlite"), SQLiteStore)
    store = open_store("sqlite:///rel/x.db")
    assert isinstance(store, SQLiteStore)
    assert store.path == Path("rel/x.db")
    store = open_store("sqlite:////abs/x.db")
    assert isinstance(store, SQLiteStore)
    assert store.path == Path("/abs/x.db")
    pg = open_store("postgresql://u:secret@h:5/d")
    assert isinstance(pg, PostgresStore)
    assert "secret" not in pg.name
    for bad in ("mysql://h/d", "sqlite://host/x", "", "postgresql://h/d?bogus=1"):
        with pytest.raises(InvalidOptionError, match="db"):
            open_store(bad)


@pytest.mark.asyncio
async def test_the_token_is_never_stored(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    async with world(300) as w:
        await sync(w, db)
    files = list(tmp_path.iterdir())  # noqa: ASYNC240 - the run is over
    assert "m.sqlite" in [path.name for path in files]  # its lock file is gone with the run
    assert all(TOKEN.encode() not in path.read_bytes() for path in files)


@pytest.mark.asyncio
async def test_changes_past_the_cap_spread_over_a_day_or_in_one_second(tmp_path: Path) -> None:
    """A day of edits past the cap is read exact at the engine's cost; a
    same-second burst past the cap is still read whole."""
    db = tmp_path / "m.sqlite"
    async with world(9_000, cap=2_000) as w:
        await sync(w, db)
        w.clock.advance(DAY)
        w.server.play_changes(edits=5_000, seed=4, over=DAY)
        w.server.reset_stats()
        spread = await sync(w, db)
        assert (spread.mode, spread.updated) == ("incremental", 5_000)
        leaves = spread.stats["windows_done"]
        assert spread.requests <= 1.01 * math.ceil(5_000 / 200) + 3 * leaves
        assert live(sqlite_rows(db)) == w.truth()

        w.clock.advance(DAY)
        w.server.play_changes(edits=2_500, seed=5)  # one second, past the cap
        burst = await sync(w, db)
        assert burst.updated == 2_500
        assert live(sqlite_rows(db)) == w.truth()


@pytest.mark.asyncio
async def test_search_options_are_the_searchs_own_and_checked_before_the_database(
    tmp_path: Path,
) -> None:
    db = tmp_path / "m.sqlite"
    async with world(500) as w:
        for bad in ({"page_size": 0}, {"cap": 10, "page_size": 20}, {"end_at": 5}):
            with pytest.raises(InvalidOptionError):
                await sync(w, db, **bad)
        assert not db.exists()
        w.server.reset_stats()
        result = await sync(w, db, page_size=50, split_field="date_modified", on_cap="warn")
        # 500 records by 50, and a look past the last one: a total of whole pages
        # may be an API capping lower than documented.
        assert result.requests == w.server.stats["requests"] == 11
        assert live(sqlite_rows(db)) == w.truth()


@pytest.mark.asyncio
async def test_arguments_the_run_cannot_use_are_refused_before_the_database(
    tmp_path: Path,
) -> None:
    db = tmp_path / "m.sqlite"
    async with world(50) as w:
        with pytest.raises(InvalidFilterError) as sorted_:
            await run_sync(w.client, open_store(str(db)), OpportunityFilter(sort_by="name"))
        assert sorted_.value.field == "sort_by"
        wrong: list[tuple[str, Any, Any, Any]] = [
            ("filter", w.client, open_store(str(db)), {"statuses": ["Open"]}),
            ("store", w.client, str(db), None),
            ("client", None, open_store(str(db)), None),
        ]
        for name, client, store, filter_ in wrong:
            with pytest.raises(InvalidOptionError) as raised:
                await run_sync(client, store, filter_)
            assert raised.value.option == name
        assert not db.exists()
        assert w.server.stats["requests"] == 0


@pytest.mark.asyncio
async def test_a_database_another_program_holds_locked_is_busy_and_stays_whole(
    tmp_path: Path,
) -> None:
    """A write transaction another program holds open: exit 9's error (as for
    another sync), before any request; nothing changed, and the next run completes."""
    db = tmp_path / "m.sqlite"
    async with world(500) as w:
        await sync(w, db)
        before = sqlite_rows(db)
        w.clock.advance(DAY)
        w.server.play_changes(edits=20, seed=2)
        w.server.reset_stats()
        other = sqlite3.connect(db, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreBusyError, match="locked by another program"):
                await sync(w, db)
            assert w.server.stats["requests"] == 0
        finally:
            other.close()
        assert sqlite_rows(db) == before
        result = await sync(w, db)
        assert result.updated == 20
        assert live(sqlite_rows(db)) == w.truth()
