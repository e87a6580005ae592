"""``bench_sync.py --stress``: kill -9 a ``copper-async sync`` at random moments.

A full load of N records, then an incremental run (N/10 edits and N/100 new
records), are each killed with SIGKILL at 5 random
moments (the fake server's Nth search request, signalled by an event) and
rerun to the end. After every kill the bookmark must not be ahead of what is
stored (none during the first load, the old one during the incremental run);
at the end the table must equal the server's records.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions

TOKEN, EMAIL = "fake-token", "fake@example.com"
KILLS = 5


async def _run(args: list[str]) -> Any:
    env = {**os.environ, "COPPER_ACCESS_TOKEN": TOKEN, "COPPER_USER_EMAIL": EMAIL}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "copper_async", "sync", *args, "-q",
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _killed_at(server: FakeCopperServer, args: list[str], after: int) -> bool:
    """Start a run, SIGKILL it at the server's ``after``-th request; False if
    it ended first."""
    reached = server.after_searches(after)
    process = await _run(args)
    waiter = asyncio.ensure_future(reached.wait())
    ended = asyncio.ensure_future(process.wait())
    done, _pending = await asyncio.wait({waiter, ended}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if waiter in done:
        process.kill()
    await process.communicate()
    ended.cancel()
    return bool(process.returncode == -signal.SIGKILL)


def _bookmark(db: Path) -> Any:
    with sqlite3.connect(db) as connection:
        row = connection.execute("SELECT bookmark FROM copper_async_sync_state").fetchone()
    return None if row is None else row[0]


def _exact(db: Path, dataset: Dataset) -> bool:
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT id, record FROM opportunities WHERE deleted_at IS NULL"
        ).fetchall()
    truth = dataset.ids()
    stored = dict(rows)
    return len(stored) == len(truth) and all(
        orjson.loads(stored[i]) == dataset.record(i) for i in truth
    )


async def _phase(
    server: FakeCopperServer, args: list[str], db: Path, moments: list[int], expected: Any
) -> tuple[list[int], bool, int]:
    kills, ahead = [], False
    for after in moments:
        if await _killed_at(server, args, after):
            kills.append(after)
            ahead |= _bookmark(db) != expected
    before = server.stats["requests"]
    final = await _run(args)
    _out, err = await final.communicate()
    if final.returncode != 0:
        raise SystemExit(f"the rerun failed ({final.returncode}): {err.decode()[-500:]}")
    return kills, not ahead, server.stats["requests"] - before


async def stress(records: int, cap: int, folder: Path) -> tuple[list[list[Any]], bool]:
    """Rows (phase, kills at requests, requests of the final rerun, seconds,
    exact) and whether every check held."""
    rng = random.Random(13)
    db = folder / "stress.sqlite"
    dataset = Dataset.generate(records, seed=9)
    rows: list[list[Any]] = []
    passed = True
    async with FakeCopperServer(dataset, options=FakeServerOptions(cap=cap)) as server:
        args = ["--db", str(db), "--base-url", server.url, "--cap", str(cap)]
        args += ["--rate-limit", "none"]
        pages = records // 200
        began = time.perf_counter()
        # Each kill within its share of the work, so that all five land.
        moments = [rng.randrange(2, max(pages // KILLS, 3)) for _ in range(KILLS)]
        kills, never_ahead, last = await _phase(server, args, db, moments, None)
        exact = _exact(db, dataset)
        passed &= never_ahead and exact and len(kills) == KILLS
        seconds = round(time.perf_counter() - began, 1)
        rows.append(["full load", f"{kills}", f"rerun {last} requests", seconds, exact])
        print(f"  full load: killed at {kills}, table exact: {exact}", flush=True)

        loaded = _bookmark(db)
        changed = max(records // 10, 1_000)
        # Real clocks here (the runs are other processes): the changes happen
        # now, in one second, after the load's bookmark.
        server.play_changes(edits=changed, creates=changed // 10, seed=3)
        began = time.perf_counter()
        share = max(changed // 200 // KILLS, 3)
        moments = [rng.randrange(2, share) for _ in range(KILLS)]
        kills, never_ahead, last = await _phase(server, args, db, moments, loaded)
        exact = _exact(db, dataset)
        moved = (_bookmark(db) or 0) > loaded
        passed &= never_ahead and exact and moved and len(kills) == KILLS
        seconds = round(time.perf_counter() - began, 1)
        rows.append(["incremental", f"{kills}", f"rerun {last} requests", seconds, exact])
        print(f"  incremental: killed at {kills}, table exact: {exact}", flush=True)
    return rows, passed
