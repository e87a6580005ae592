"""`copper-async sync` in subprocesses: kill -9 at random moments and rerun,
refused concurrent runs, a full disk, bad databases; exit codes and messages.

The fake server runs in the test's event loop; it signals the moment to kill
(its Nth search request) through an event, never a sleep.
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import signal
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from copper_async.filters import OpportunityFilter
from copper_async.sync import SQLiteStore
from copper_async.sync._bookmark import job_identity
from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions
from tests.pg import Cluster, pg_cluster, pg_url  # noqa: F401 - fixtures
from tests.sync_support import EMAIL, TOKEN, live, sqlite_rows

CAP = 2_000
ENV = {**os.environ, "COPPER_ACCESS_TOKEN": TOKEN, "COPPER_USER_EMAIL": EMAIL}


async def cli(args: Sequence[str], *, limit_file_size: int | None = None) -> tuple[int, str]:
    process = await start(args, limit_file_size=limit_file_size)
    _out, err = await process.communicate()
    return process.returncode or 0, err.decode()


async def start(args: Sequence[str], *, limit_file_size: int | None = None) -> Any:
    def limit() -> None:
        if limit_file_size is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "copper_async", "sync", *args,
        env=ENV, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=limit,
    )  # fmt: skip


def sync_args(server: FakeCopperServer, db: Path | str) -> list[str]:
    return [
        "--db", str(db), "--base-url", server.url, "--cap", str(CAP), "--rate-limit", "none",
        "--concurrency", "2",
    ]  # fmt: skip


def bookmark(db: Path) -> Any:
    with sqlite3.connect(db) as connection:
        row = connection.execute("SELECT bookmark FROM copper_async_sync_state").fetchone()
    return None if row is None else row[0]


def truth(dataset: Dataset) -> dict[int, dict[str, Any]]:
    return {i: dataset.record(i) for i in dataset.ids()}


async def kill_at(server: FakeCopperServer, args: list[str], after: int) -> None:
    reached = server.after_searches(after)
    process = await start(args)
    waiter = asyncio.ensure_future(reached.wait())
    ended = asyncio.ensure_future(process.wait())
    done, _pending = await asyncio.wait({waiter, ended}, return_when=asyncio.FIRST_COMPLETED)
    assert waiter in done, "the run ended before the moment to kill it"
    process.kill()
    await process.communicate()
    ended.cancel()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.asyncio
async def test_kill_9_during_a_full_load_and_an_incremental_run(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    rng = random.Random(11)
    dataset = Dataset.generate(12_000, seed=5)
    async with FakeCopperServer(dataset, options=FakeServerOptions(cap=CAP)) as server:
        args = sync_args(server, db)
        # A full load killed three times at random requests, then finished.
        for _ in range(3):
            await kill_at(server, args, rng.randrange(3, 25))
            assert bookmark(db) is None  # never ahead of what is stored
        code, err = await cli(args)
        assert code == 0, err
        assert "(resumed)" in err
        assert live(sqlite_rows(db)) == truth(dataset)
        loaded = bookmark(db)
        assert loaded is not None

        server.play_changes(edits=1_500, creates=300, deletes=50, seed=2)
        await kill_at(server, args, rng.randrange(2, 8))
        assert bookmark(db) == loaded
        code, err = await cli([*args, "--reconcile"])
        assert code == 0, err
        assert live(sqlite_rows(db)) == truth(dataset)
        assert bookmark(db) > loaded
        assert TOKEN not in err


@pytest.mark.asyncio
async def test_a_concurrent_run_is_refused_with_its_own_exit_code(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    async with FakeCopperServer(Dataset.generate(100, seed=1)) as server:
        holder = SQLiteStore(db)
        job, key = job_identity(OpportunityFilter(), base_url=server.url, user_email=EMAIL)
        await holder.open(job, key)
        try:
            code, err = await cli(sync_args(server, db))
        finally:
            await holder.close()
        assert code == 9
        assert "another sync is running" in err
        code, err = await cli(sync_args(server, db))
        assert code == 0, err


@pytest.mark.asyncio
async def test_a_full_disk_is_a_store_error_and_the_next_run_completes(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    dataset = Dataset.generate(3_000, seed=4)
    async with FakeCopperServer(dataset, options=FakeServerOptions(cap=CAP)) as server:
        code, err = await cli(sync_args(server, db), limit_file_size=600_000)
        assert code == 8, err
        assert "full" in err or "disk" in err
        code, err = await cli(sync_args(server, db))
        assert code == 0, err
        assert live(sqlite_rows(db)) == truth(dataset)


@pytest.mark.asyncio
async def test_bad_databases_and_usage(tmp_path: Path, pg_cluster: Cluster) -> None:  # noqa: F811
    async with FakeCopperServer(Dataset.generate(50, seed=1)) as server:
        code, err = await cli(sync_args(server, "mysql://h/d"))
        assert code == 2
        assert "unknown database scheme" in err
        code, err = await cli(sync_args(server, "postgresql://x@/y?host=/no-such-dir"))
        assert code == 8
        assert "PostgreSQL" in err
        wrong = f"postgresql://copper_pw:WRONG-PW@/postgres?host={pg_cluster.root}"
        code, err = await cli(sync_args(server, wrong))
        assert code == 8
        assert "password authentication failed" in err
        assert "WRONG-PW" not in err
        garbage = tmp_path / "g.sqlite"
        garbage.write_bytes(b"text, not a database" * 50)
        code, err = await cli(sync_args(server, garbage))
        assert code == 8
        assert garbage.read_bytes() == b"text, not a database" * 50


@pytest.mark.asyncio
async def test_the_search_endpoint_as_base_url_is_refused_before_the_database_is_made(
    tmp_path: Path,
) -> None:
    async with FakeCopperServer(Dataset.generate(50, seed=1)) as server:
        db = tmp_path / "m.sqlite"
        args = sync_args(server, db)
        args[args.index("--base-url") + 1] = f"{server.url}/opportunities/search"
        code, err = await cli(args)
        assert code == 2, err
        assert "search endpoint itself" in err
        assert repr(server.url) in err  # the API root to give instead
        assert server.stats["requests"] == 0
        assert not db.exists()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url",
    [
        "postgresql://me:s3cret-pw@[::1/crm",  # libpq quotes the whole URL back
        "postgresql://me:s3cret-pw%zz@db.example/crm",  # and a bad token alone
        "postgresql://db.example/crm?password=s3cret-pw%zz",
    ],
)
async def test_a_malformed_postgresql_url_is_refused_without_its_password(url: str) -> None:
    async with FakeCopperServer(Dataset.generate(5, seed=1)) as server:
        code, err = await cli(sync_args(server, url))
        assert code == 2
        assert "invalid option 'db': not a PostgreSQL URL" in err
        assert "s3cret" not in err
        assert server.stats["requests"] == 0


@pytest.mark.asyncio
async def test_the_cli_syncs_into_postgresql(pg_url: str) -> None:  # noqa: F811
    dataset = Dataset.generate(1_500, seed=9)
    async with FakeCopperServer(dataset, options=FakeServerOptions(cap=CAP)) as server:
        code, err = await cli([*sync_args(server, pg_url), "--verbose"])
        assert code == 0, err
        assert "inserted          1500" in err
        assert TOKEN not in err
        server.play_changes(edits=10, seed=1)
        code, err = await cli(sync_args(server, pg_url))
        assert code == 0, err
        assert "updated           10" in err
        assert "requests          1\n" in err


@pytest.mark.asyncio
async def test_demo_sync_checks_the_table() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "copper_async", "demo-sync", "--records", "3000", "--cap", "1000",
        "--edits", "120", "--creates", "30", "--deletes", "20", "-q",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    text = out.decode()
    assert "the table equals the server's records and deletions marked" in text
    assert "updated           120" in text
    assert "deleted           20\n" in text
    assert "generated" not in err.decode()  # -q: only errors and the summary


@pytest.mark.asyncio
async def test_demo_with_sync_runs_the_sync_demo_and_refuses_an_export_output(
    tmp_path: Path,
) -> None:
    """The README's first command: ``copper-async demo --sync``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "copper_async", "demo", "--sync", "--records", "2000",
        "--cap", "800", "-q",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "the table equals the server's records and deletions marked" in out.decode()
    refused = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "copper_async", "demo", "--sync", "--out", str(tmp_path / "o.jsonl"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, refusal = await refused.communicate()
    assert refused.returncode == 2
    assert "--sync mirrors into SQLite" in refusal.decode()
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.asyncio
async def test_custom_field_names_flag_makes_the_named_view(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    async with FakeCopperServer(Dataset.generate(50, seed=2)) as server:
        code, err = await cli([*sync_args(server, db), "--custom-field-names"])
        assert code == 0, err
    with sqlite3.connect(db) as connection:
        regions = connection.execute(
            "SELECT DISTINCT cf_region FROM opportunities_named"
        ).fetchall()
    assert regions
    assert {region for (region,) in regions} <= {
        "North", "South", "East", "West", "Central", "EMEA", "APAC", "LATAM", None,
    }  # fmt: skip


@pytest.mark.asyncio
async def test_a_filters_sort_is_dropped_with_a_warning_that_says_why(tmp_path: Path) -> None:
    db, body = tmp_path / "m.sqlite", tmp_path / "f.json"
    body.write_bytes(orjson.dumps({"sort_by": "name", "statuses": ["Open"]}))
    dataset = Dataset.generate(60, seed=2)
    async with FakeCopperServer(dataset) as server:
        code, err = await cli([*sync_args(server, db), "--filter", str(body)])
    assert code == 0, err
    warned = [line for line in err.splitlines() if "WARNING" in line]
    assert len(warned) == 1, err
    assert "sort_by cannot be honoured by a sync" in warned[0]
    assert warned[0].endswith("; ignored")
    with sqlite3.connect(db) as connection:
        stored = {i for (i,) in connection.execute("SELECT id FROM opportunities")}
    opened = {i for i, record in truth(dataset).items() if record["status"] == "Open"}
    assert stored == opened
