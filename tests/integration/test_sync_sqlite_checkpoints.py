"""The SQLite store copies committed pages from its write-ahead log into the
database file in a thread of its own, so that a load's commits do not wait for
it; the writer's own automatic checkpoint stays, higher, as a backstop."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import threading
from pathlib import Path

import orjson
import pytest

from copper_async.sync import RunProgress, SQLiteStore
from copper_async.sync._sqlite import WRITER_AUTOCHECKPOINT, _Checkpointer
from copper_async.testing import Dataset

pytestmark = pytest.mark.asyncio


def rows_in_the_file_alone(db: Path, folder: Path) -> int:
    """The rows the database file holds without its log: a copy of the file
    alone, opened beside no ``-wal``."""
    (folder / "copy").mkdir(exist_ok=True)
    copy = folder / "copy" / "file-alone.sqlite"
    shutil.copyfile(db, copy)
    with contextlib.closing(sqlite3.connect(copy)) as connection:
        ((count,),) = connection.execute("SELECT count(*) FROM opportunities").fetchall()
    return int(count)


def checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("copper-sync-checkpoint")]


@pytest.mark.parametrize("name", ["m.sqlite", "link.sqlite"])
async def test_a_committed_page_reaches_the_file_before_the_store_closes(
    tmp_path: Path, name: str
) -> None:
    """Opened by its own name or through a symlink (the log is found by name)."""
    db = tmp_path / "m.sqlite"
    if name != db.name:
        (tmp_path / name).symlink_to(db)
    dataset = Dataset.generate(300, seed=3)
    records = orjson.loads(dataset.encode_page(dataset.ids()))
    store = SQLiteStore(tmp_path / name)
    await store.open({"test": True}, "c" * 64)
    try:
        run = RunProgress(run_id=1, mode="full", started=0, read_from=None)
        await store.begin_run(run)
        await store.upsert_page(1, records[:200], 1_800_000_000, run)
        await store.save_progress(run)  # the store's next call: the page's commit is done
        assert store._checkpoints is not None
        store._checkpoints.wait()
        # Far below the 1,000 pages of SQLite's own automatic checkpoint: only
        # the background one can have copied them.
        assert rows_in_the_file_alone(db, tmp_path) == 200
        (mark,) = await store._call(
            lambda: store._connection._connection.execute("PRAGMA wal_autocheckpoint").fetchone()
        )
        assert mark == WRITER_AUTOCHECKPOINT > 1_000
        assert checkpoint_threads()
    finally:
        await store.close()
    assert not checkpoint_threads()
    assert rows_in_the_file_alone(db, tmp_path) == 200
    assert not [name for name in os.listdir(tmp_path) if name.endswith("-wal")]  # copied at close


async def test_a_failed_checkpoint_is_left_for_the_next_and_creates_nothing(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "gone.sqlite"
    checkpoints = _Checkpointer(missing)
    checkpoints.committed()
    checkpoints.wait()  # raised nothing: the log keeps the pages
    checkpoints.committed()
    checkpoints.close()
    assert not missing.exists()
    assert not checkpoint_threads()


async def test_a_store_that_never_opened_its_file_starts_no_checkpoint_thread(
    tmp_path: Path,
) -> None:
    (tmp_path / "m.sqlite").mkdir()
    store = SQLiteStore(tmp_path / "m.sqlite")
    with pytest.raises(Exception, match="is a directory"):
        await store.open({"test": True}, "c" * 64)
    await store.close()
    assert not checkpoint_threads()
