"""The README's promises that code can check: its commands and its imports."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.stopping import Stop, stop_after
from tests.sync_support import DAY, sync, world

README = Path(__file__).resolve().parents[2] / "README.md"


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.S)


def test_the_readme_starts_with_the_two_setup_commands() -> None:
    first, second = code_blocks("bash")[:2]
    assert first.strip() == "pip install . && copper-async demo --sync"
    assert second.strip() == (
        "pip install '.[test]' && python -W error -m pytest -n auto --maxprocesses 4"
    )
    ci = (README.parent / ".ci" / "run").read_text()
    assert second.strip() in ci


def test_every_import_in_the_readme_works() -> None:
    imports = [
        line.strip()
        for block in code_blocks("python")
        for line in block.splitlines()
        if line.strip().startswith(("from copper_async", "import copper_async"))
    ]
    assert imports
    for line in imports:
        exec(line, {})


def test_the_fake_server_example_runs_and_gets_every_record() -> None:
    """The "testing your own code" block is a whole program: it runs as printed
    (its own assert checks that every generated record came back)."""
    (block,) = [b for b in code_blocks("python") if "FakeServerOptions(cap=" in b]
    assert "asyncio.run(main())" in block
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    # The check inside the block must be reached, not skipped.
    assert "assert sorted(ids) == dataset.ids()" in block


def state_query(store: str) -> str:
    """The README's query of the sync state table for ``store`` ("SQLite" or "PostgreSQL")."""
    (block,) = [b for b in code_blocks("sql") if b.startswith(f"-- {store}\n")]
    return block


@pytest.mark.asyncio
async def test_the_readme_state_queries_show_the_last_run_and_an_unfinished_one(db: str) -> None:
    """Both of the README's monitoring queries run as printed on a real mirror,
    and show what the text around them says they show."""
    store = "PostgreSQL" if db.startswith("postgresql://") else "SQLite"

    def query() -> list[tuple[Any, ...]]:
        if store == "SQLite":
            with closing(sqlite3.connect(db)) as connection:
                return connection.execute(state_query(store)).fetchall()
        with psycopg.connect(db) as connection:
            return connection.execute(state_query(store)).fetchall()

    async with world(3_000, cap=2_000) as w:
        first = await sync(w, db)
        ((finished, mode, inserted, updated, deleted, requests, unfinished, _at),) = query()
        assert (mode, inserted, updated, deleted, requests) == ("full", 3_000, 0, 0, first.requests)
        assert not unfinished
        expected = dt.datetime.fromtimestamp(w.clock.time(), dt.UTC)
        if store == "SQLite":
            assert finished == expected.strftime("%Y-%m-%d %H:%M:%S")
        else:
            assert finished == expected

        w.clock.advance(DAY)
        w.server.play_changes(edits=400, seed=5, over=DAY)
        w.clock.advance(DAY)
        with pytest.raises(Stop):
            await sync(w, db, progress=stop_after(1))
        ((_f, mode, inserted, *_counts, unfinished, _at),) = query()
        assert (mode, inserted) == ("full", 3_000)  # still the last completed run
        assert unfinished

        finished_run = await sync(w, db)
        ((_f, mode, _inserted, updated, *_rest, unfinished, _at),) = query()
        assert (mode, updated) == ("incremental", finished_run.updated)
        assert finished_run.updated > 0
        assert not unfinished
