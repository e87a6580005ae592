"""``copper-async demo-sync``: a mirror kept up to date, shown on the fake server.

Loads N generated records into SQLite through the embedded fake server (with
the real 100,000-record cap), lets the server's users edit, create and delete
some, syncs again (reading only those), optionally reconciles, and checks the
table against the server's own records.
"""

from __future__ import annotations

import gc
import math
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import click
import orjson

from copper_async._cli_support import _search_flag
from copper_async._options import SearchOptions
from copper_async.sync._bookmark import OVERLAP
from copper_async.sync._cli import run_command, summary
from copper_async.sync._runner import SyncResult

__all__ = ["demo_sync"]


def _table(path: Path) -> dict[int, tuple[bytes, str | None]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT id, record, deleted_at FROM opportunities").fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


def _check(path: Path, dataset: Any, deleted: list[int], *, reconciled: bool) -> list[str]:
    """What differs between the table and the server ([] when nothing does)."""
    rows = _table(path)
    problems = []
    truth = dataset.ids()
    wrong = sum(
        1
        for i in truth
        if i not in rows or rows[i][1] is not None or orjson.loads(rows[i][0]) != dataset.record(i)
    )
    if wrong:
        problems.append(f"{wrong} server records missing, stale or marked deleted")
    marked = {i for i, (_r, gone) in rows.items() if gone is not None}
    if reconciled and marked != set(deleted):
        problems.append(f"{len(marked ^ set(deleted))} rows wrongly marked (or not) deleted")
    if len(rows) != len(truth) + len(deleted):
        problems.append(f"{len(rows)} rows for {len(truth)} records and {len(deleted)} deleted")
    return problems


@click.command()
@click.option("--records", "count", type=click.IntRange(1), default=250_000, show_default=True)
@click.option("--edits", type=click.IntRange(0), default=2_000, show_default=True)
@click.option("--creates", type=click.IntRange(0), default=500, show_default=True)
@click.option("--deletes", type=click.IntRange(0), default=300, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file (default: a temporary one, removed after the check).",
)
@click.option(
    "--reconcile/--no-reconcile",
    default=True,
    show_default=True,
    help="End with a reconcile run, which finds the deletions.",
)
@_search_flag(attrs.fields(SearchOptions).cap)
@click.option("--quiet", "-q", is_flag=True, help="Only errors and the summary.")
def demo_sync(
    count: int,
    edits: int,
    creates: int,
    deletes: int,
    seed: int,
    db: Path | None,
    reconcile: bool,
    cap: int,
    quiet: bool,
) -> None:
    """Mirror N fake records into SQLite, change some, sync only those, check."""
    from copper_async._cli_support import ExitCode, Progress, _configure_logging

    _configure_logging(quiet=quiet, verbose=False)
    keep = db is not None
    if db is None:
        folder = tempfile.mkdtemp(prefix="copper-demo-sync-")
        db = Path(folder) / "copper.sqlite"
    progress = Progress(stream=sys.stderr, enabled=not quiet)
    outcome = run_command(
        _play(db, count, seed, cap, (edits, creates, deletes), reconcile, progress, quiet),
        progress=progress,
    )
    runs, problems, deleted_ids = outcome
    for title, result in runs:
        click.echo(f"-- {title}")
        for line in summary(result):
            click.echo(line)
    k = edits + creates
    click.echo(f"-- changes read {k} (ideal requests ceil(k/200) = {math.ceil(k / 200)})")
    click.echo(f"database          {db if keep else '(temporary, removed)'}")
    if not keep:
        for path in db.parent.iterdir():
            path.unlink()
        db.parent.rmdir()
    if problems:
        click.echo("check FAILED: " + "; ".join(problems), err=True)
        sys.exit(ExitCode.FAILED)
    what = (
        "and deletions marked"
        if reconcile
        else f"({len(deleted_ids)} deletions left for --reconcile)"
    )
    click.echo(f"check             the table equals the server's records {what}")


async def _play(
    db: Path,
    count: int,
    seed: int,
    cap: int,
    changes: tuple[int, int, int],
    reconcile: bool,
    progress: Any,
    quiet: bool,
) -> tuple[list[tuple[str, SyncResult]], list[str], list[int]]:
    from copper_async.client import CopperClient
    from copper_async.sync._clock import SettableClock
    from copper_async.sync._open import open_store
    from copper_async.sync._runner import run_sync
    from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions

    started = time.monotonic()
    dataset = Dataset.generate(count, seed=seed)
    gc.freeze()  # the records live until the end: keep the collector off them
    if not quiet:
        click.echo(
            f"generated {len(dataset):,} records in {time.monotonic() - started:.1f} s", err=True
        )
    options = FakeServerOptions(cap=cap)
    runs: list[tuple[str, SyncResult]] = []
    async with FakeCopperServer(dataset, options=options) as server:
        clock = SettableClock(time.time())
        server.clock = clock
        async with CopperClient(
            access_token=options.access_token,
            user_email=options.user_email,
            base_url=server.url,
            rate_limit=None,
        ) as client:

            async def sync(title: str, *, reconcile: bool = False) -> None:
                began = time.monotonic()
                result = await run_sync(
                    client, open_store(str(db)), clock=clock, cap=cap,
                    progress=progress, reconcile=reconcile,
                )  # fmt: skip
                progress.close()
                runs.append((f"{title} ({time.monotonic() - began:.1f} s)", result))

            await sync("full load")
            # A day of activity on the server, stamped with its clock.
            clock.advance(86_400)
            edits, creates, deletes = changes
            played = server.play_changes(edits=edits, creates=creates, deletes=deletes, seed=seed)
            await sync("incremental sync")
            problems = _check(db, dataset, played.deleted, reconciled=False)
            if reconcile and not problems:
                clock.advance(2 * OVERLAP)
                await sync("reconcile", reconcile=True)
                problems = _check(db, dataset, played.deleted, reconciled=True)
    return runs, problems, played.deleted
