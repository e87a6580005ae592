"""copper_async.sync into a real PostgreSQL server (a throwaway cluster)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from copper_async.sync import (
    OVERLAP,
    SchemaMismatchError,
    StoreBusyError,
    StoreError,
    open_store,
)
from tests.pg import PASSWORD, PASSWORD_USER, Cluster
from tests.sync_support import DAY, TOKEN, live, sync, world


def pg_rows(url: str) -> dict[int, tuple[dict[str, Any], Any]]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT id, record::text, deleted_at FROM opportunities"
        ).fetchall()
    return {row[0]: (orjson.loads(row[1]), row[2]) for row in rows}


@pytest.mark.asyncio
async def test_full_incremental_and_reconcile(pg_url: str) -> None:
    async with world(4_000, cap=2_000) as w:
        first = await sync(w, pg_url)
        assert (first.mode, first.inserted) == ("full", 4_000)
        assert live(pg_rows(pg_url)) == w.truth()
        w.clock.advance(DAY)
        changes = w.server.play_changes(edits=300, creates=20, deletes=10, seed=3)
        w.server.reset_stats()
        second = await sync(w, pg_url)
        assert (second.mode, second.inserted, second.updated) == ("incremental", 20, 300)
        assert second.read_from == first.bookmark - OVERLAP
        assert w.server.stats["requests"] <= math.ceil(320 / 200) + 3
        w.clock.advance(DAY)
        third = await sync(w, pg_url, reconcile=True)
        assert third.deleted == 10
        rows = pg_rows(pg_url)
        assert live(rows) == w.truth()
        assert {i for i, (_r, d) in rows.items() if d is not None} == set(changes.deleted)


@pytest.mark.asyncio
async def test_the_typed_columns(pg_url: str) -> None:
    async with world(200) as w:
        await sync(w, pg_url)
        record = w.dataset.record(3)
    with psycopg.connect(pg_url) as connection:
        types: dict[str, str] = dict(
            connection.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'opportunities'"
            ).fetchall()
        )
        row = connection.execute(
            "SELECT date_created, close_date, tags, monetary_value, record->>'name' "
            "FROM opportunities WHERE id = 3"
        ).fetchone()
    assert types["date_created"] == "timestamp with time zone"
    assert types["close_date"] == "date"
    assert types["tags"] == types["custom_fields"] == "jsonb"
    assert types["id"] == "bigint"
    assert row is not None
    assert row[0].timestamp() == record["date_created"]
    month, day, year = map(int, record["close_date"].split("/"))
    assert (row[1].year, row[1].month, row[1].day) == (year, month, day)
    assert row[2] == record["tags"]
    assert row[4] == record["name"]


@pytest.mark.asyncio
async def test_a_second_run_is_refused_by_the_advisory_lock(pg_url: str, tmp_path: Path) -> None:
    async with world(100) as w:
        holder: Any = open_store(pg_url)
        from copper_async.filters import OpportunityFilter
        from copper_async.sync._bookmark import job_identity

        job, key = job_identity(
            OpportunityFilter(), base_url=w.client.base_url, user_email=w.client.user_email
        )
        await holder.open(job, key)
        trace = tmp_path / "libpq.trace"
        with trace.open("w") as sink:
            holder._connection.pgconn.trace(sink.fileno())
            try:
                with pytest.raises(StoreBusyError, match="another sync"):
                    await sync(w, pg_url)
            finally:
                await holder.close()
        # Unlocked in the session, not left for the server to notice the closed
        # connection: a run right after this one is never refused.
        assert "pg_advisory_unlock_all" in trace.read_text()
        await sync(w, pg_url)


@pytest.mark.asyncio
async def test_the_server_stopped_mid_run(pg_cluster: Cluster, pg_url: str) -> None:
    async with world(6_000, cap=2_000) as w:
        pages = 0

        def stop_the_server(_stats: Any, _written: int) -> None:
            nonlocal pages
            pages += 1
            if pages == 8:
                pg_cluster.stop()

        try:
            with pytest.raises(StoreError, match="PostgreSQL"):
                await sync(w, pg_url, progress=stop_the_server, concurrency=1)
        finally:
            pg_cluster.start()
        rows = pg_rows(pg_url)
        assert 0 < len(rows) < 6_000
        assert len(rows) % 200 == 0  # whole pages only
        with psycopg.connect(pg_url) as connection:
            state = connection.execute("SELECT bookmark FROM copper_async_sync_state").fetchone()
        assert state == (None,)
        resumed = await sync(w, pg_url)
        assert resumed.resumed
        assert live(pg_rows(pg_url)) == w.truth()


@pytest.mark.asyncio
async def test_connection_failures_are_store_errors(pg_cluster: Cluster, pg_url: str) -> None:
    database = pg_url.split("@/")[1].split("?")[0]
    wrong = f"postgresql://{PASSWORD_USER}:nope@/{database}?host={pg_cluster.root}"
    async with world(50) as w:
        with pytest.raises(StoreError, match="password authentication failed") as failure:
            await sync(w, wrong)
        assert "nope" not in str(failure.value)
        with pytest.raises(StoreError, match="PostgreSQL"):
            await sync(w, "postgresql://nobody@/x?host=/nonexistent-socket-dir")
        assert TOKEN not in str(failure.value)


@pytest.mark.asyncio
async def test_libpq_environment_variables_are_honoured(
    pg_cluster: Cluster, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = pg_url.split("@/")[1].split("?")[0]
    monkeypatch.setenv("PGHOST", str(pg_cluster.root))
    monkeypatch.setenv("PGUSER", PASSWORD_USER)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    monkeypatch.setenv("PGDATABASE", database)
    async with world(100) as w:
        result = await sync(w, "postgresql://")
    assert result.inserted == 100
    assert len(pg_rows(pg_url)) == 100


@pytest.mark.asyncio
async def test_tables_of_another_tool_are_refused_untouched(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE opportunities (id bigint PRIMARY KEY, x text)")
        connection.execute("INSERT INTO opportunities VALUES (1, 'mine')")
    async with world(50) as w:
        with pytest.raises(SchemaMismatchError, match="not made by"):
            await sync(w, pg_url)
    with psycopg.connect(pg_url) as connection:
        assert connection.execute("SELECT * FROM opportunities").fetchall() == [(1, "mine")]
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (1,)


@pytest.mark.asyncio
async def test_a_page_repeating_a_stored_id_in_a_first_load_is_counted_exactly(
    pg_url: str,
) -> None:
    """The first load's bulk COPY meets a stored id: the page is rolled back to
    its savepoint and sorted into new, newer and unchanged rows instead."""
    from copper_async.sync import RunProgress

    store = open_store(pg_url)
    try:
        await store.open({"job": 1}, "a" * 64)
        first = [{"id": i, "name": f"r{i}", "date_modified": 1_000} for i in (1, 2)]
        assert (await store.upsert_page(1, first, 5)).inserted == 2
        page = [
            {"id": 1, "name": "r1", "date_modified": 1_000},  # unchanged
            {"id": 2, "name": "newer", "date_modified": 2_000},  # updated
            {"id": 3, "name": "new", "date_modified": 2_000},  # inserted
        ]
        counts = await store.upsert_page(1, page, 6)
        assert (counts.inserted, counts.updated, counts.unchanged) == (1, 1, 1)
        await store.save_progress(RunProgress(run_id=1, mode="full", started=0, read_from=None))
    finally:
        await store.close()
    assert {i: r["name"] for i, (r, _d) in pg_rows(pg_url).items()} == {
        1: "r1",
        2: "newer",
        3: "new",
    }


@pytest.mark.asyncio
async def test_a_nul_in_a_tag_or_custom_field_value_is_stored(pg_url: str) -> None:
    """jsonb cannot hold \\u0000 (PostgreSQL text cannot hold NUL): the typed
    JSON columns drop the NUL, as the text columns do, and ``record`` (json)
    keeps the record exactly as sent. One such record must not stop every run."""
    from copper_async.testing import Dataset

    async with world(20) as w:
        records = [w.dataset.record(i) for i in w.dataset.ids()]
        records[3]["tags"] = ["nul\x00inside"]
        records[4]["custom_fields"] = [{"custom_field_definition_id": 7, "value": "a\x00b"}]
        w.server.dataset = Dataset.from_records(records)
        result = await sync(w, pg_url)
        assert result.inserted == 20
        assert live(pg_rows(pg_url)) == w.truth()
    with psycopg.connect(pg_url) as connection:
        row = connection.execute(
            "SELECT (SELECT tags FROM opportunities WHERE id = %s), "
            "(SELECT custom_fields FROM opportunities WHERE id = %s)",
            (records[3]["id"], records[4]["id"]),
        ).fetchone()
    assert row is not None
    tags, fields = row
    assert tags == ["nulinside"]
    assert fields == [{"custom_field_definition_id": 7, "value": "ab"}]


@pytest.mark.asyncio
async def test_one_job_in_two_schemas_of_a_database_is_two_mirrors(pg_url: str) -> None:
    """A run's advisory lock is the database's, so it names the schema too: a
    sync of the same job into another schema (staging beside production, say)
    is not refused as a concurrent run of this one."""
    from copper_async.filters import OpportunityFilter
    from copper_async.sync._bookmark import job_identity

    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute("CREATE SCHEMA staging")
        connection.execute("CREATE SCHEMA production")
    staging = f"{pg_url}&options=-csearch_path%3Dstaging"
    production = f"{pg_url}&options=-csearch_path%3Dproduction"
    async with world(300) as w:
        job, key = job_identity(
            OpportunityFilter(), base_url=w.client.base_url, user_email=w.client.user_email
        )
        holder: Any = open_store(staging)
        await holder.open(job, key)
        try:
            with pytest.raises(StoreBusyError, match="another sync"):
                await sync(w, staging)
            result = await sync(w, production)
        finally:
            await holder.close()
        assert result.inserted == 300
    with psycopg.connect(pg_url) as connection:
        counts = connection.execute(
            "SELECT (SELECT count(*) FROM production.opportunities), "
            "(SELECT count(*) FROM staging.opportunities)"
        ).fetchone()
    assert counts == (300, 0)
