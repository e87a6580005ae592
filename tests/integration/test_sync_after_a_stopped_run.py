"""Sync runs that follow a stopped run of another kind, on loopback into SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.stopping import Stop, stop_after
from tests.sync_support import DAY, live, sqlite_rows, sync, world


def seen_by(db: Path, run_id: int) -> set[int]:
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT id FROM opportunities WHERE seen_run = ?", (run_id,))
        return {record_id for (record_id,) in rows}


@pytest.mark.asyncio
async def test_a_reconcile_after_a_dropped_incremental_run_sees_its_deletions(
    tmp_path: Path,
) -> None:
    db = tmp_path / "m.sqlite"
    async with world(1_000) as w:
        await sync(w, db)
        w.clock.advance(DAY)
        w.server.play_changes(edits=400, seed=3)
        with pytest.raises(Stop):  # the incremental run commits a page, then stops
            await sync(w, db, concurrency=1, progress=stop_after(1))
        touched = seen_by(db, 2)
        assert touched
        gone = min(touched)
        w.server.dataset.delete(gone)  # deleted on the server after that run read it
        w.clock.advance(DAY)
        result = await sync(w, db, reconcile=True)
        rows = sqlite_rows(db)
        assert rows[gone][1] is not None, "a record deleted on the server is not marked deleted"
        assert result.deleted == 1
        assert live(rows) == w.truth()


@pytest.mark.asyncio
async def test_a_run_stopped_under_an_older_release_is_read_again_not_refused(
    tmp_path: Path,
) -> None:
    """The unfinished run's planner state is in the engine's snapshot format,
    versioned apart from the schema: one written by an older release (or
    unreadable) cannot be continued, and the run reads again from the start
    rather than failing at every run (a plain run and --full alike)."""
    import orjson

    db = tmp_path / "m.sqlite"
    async with world(5_000, cap=2_000) as w:
        with pytest.raises(Stop):
            await sync(w, db, concurrency=1, progress=stop_after(4))
        with sqlite3.connect(db) as connection:
            (saved,) = connection.execute("SELECT run FROM copper_async_sync_state").fetchone()
            run = orjson.loads(saved)
            run["planner"]["version"] -= 1  # as the release before wrote it
            connection.execute(
                "UPDATE copper_async_sync_state SET run = ?", (orjson.dumps(run).decode(),)
            )
        result = await sync(w, db)
        assert (result.mode, result.resumed) == ("full", True)
        assert live(sqlite_rows(db)) == w.truth()
        with sqlite3.connect(db) as connection:
            state = connection.execute("SELECT bookmark, run FROM copper_async_sync_state")
            assert state.fetchone() == (result.bookmark, None)
