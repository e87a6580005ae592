"""The ``demo`` command: export generated records from the embedded fake
server, then check the file against the server's own truth."""

from __future__ import annotations

import gc
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import click
import orjson
from click.core import ParameterSource

from copper_async._cli_support import (
    ExitCode,
    Progress,
    _common_export_options,
    _configure_logging,
    _fail,
    _run,
    _summary,
)
from copper_async._export import ExportResult, run_export
from copper_async._options import SearchOptions
from copper_async.client import CopperClient

__all__ = ["demo"]

# Flags of the export demo that the sync demo has no use for: refused, not ignored.
_EXPORT_ONLY = frozenset(
    {"out", "format_", "page_size", "concurrency", "split_field", "on_cap", "verbose"}
)


@click.command()
@click.option("--records", "count", type=click.IntRange(1), default=250_000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output file, checked after the export (default: a temporary file, removed "
    "after the check; not - : the demo reads its file back).",
)
@click.option(
    "--sync",
    "sync_",
    is_flag=True,
    help="Show the recurring job instead: mirror the records into SQLite, play a day of "
    "edits, creations and deletions, sync only those, reconcile, check the table "
    "(demo-sync has more knobs).",
)
@_common_export_options
@click.pass_context
def demo(
    ctx: click.Context,
    count: int,
    seed: int,
    out: Path | None,
    sync_: bool,
    format_: str,
    options: SearchOptions,
    quiet: bool,
    verbose: bool,
) -> None:
    """Export N generated records from the embedded fake server and check the file.

    The fake server runs on loopback with the real 100,000-record search cap,
    so the default 250,000 records need the window splitting to come out
    whole. The file is then checked against the server's own truth. With
    --sync, the same records are mirrored into SQLite instead.
    """
    if sync_:
        from copper_async.sync._demo import demo_sync

        given = [
            param.opts[0]
            for param in ctx.command.params
            if param.name in _EXPORT_ONLY
            and ctx.get_parameter_source(param.name) is not ParameterSource.DEFAULT
        ]
        if given:
            _fail(
                ExitCode.USAGE,
                f"--sync mirrors into SQLite with the default search options: "
                f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for the export demo",
            )
        # A day's changes at the default size, fewer for a small demo.
        changes = {"edits": min(2_000, count // 10), "creates": min(500, count // 40)}
        changes["deletes"] = min(300, count // 60)
        ctx.invoke(demo_sync, count=count, seed=seed, cap=options.cap, quiet=quiet, **changes)
        return
    _configure_logging(quiet=quiet, verbose=verbose)
    if out is not None and str(out) == "-":
        # export's "-" is stdout; the demo reads its file back to check it.
        _fail(ExitCode.USAGE, "--out -: the demo checks the file it writes, so it needs a file")
    keep = out is not None
    if out is None:
        handle, name = tempfile.mkstemp(prefix="copper-demo-", suffix=f".{format_}")
        os.close(handle)
        out = Path(name)
    progress = Progress(stream=sys.stderr, enabled=not quiet)
    job = _export_generated(count, seed, out, format_, options, progress, quiet=quiet)
    try:
        # Stopped or failed (_run exits then), the temporary file goes all the same.
        result, truth, elapsed = _run(job, progress=progress)
        written = _ids_in(out, format_)
    finally:
        if not keep:
            out.unlink(missing_ok=True)
    click.echo(f"output            {out if keep else '(temporary, removed)'}")
    _check(result, truth, written, elapsed, options.page_size)


async def _export_generated(
    count: int,
    seed: int,
    out: Path,
    format_: str,
    options: SearchOptions,
    progress: Progress,
    *,
    quiet: bool,
) -> tuple[ExportResult, set[int], float]:
    """Serve ``count`` generated records on loopback and export them to ``out``:
    the result, the ids the server holds and the seconds taken."""
    # Only the demo needs the fake server: ``export`` starts without it.
    from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions

    started = time.monotonic()
    dataset = Dataset.generate(count, seed=seed)
    # The records live until the end: keep the collector from walking them again.
    gc.freeze()
    if not quiet:
        click.echo(
            f"generated {len(dataset)} records in {time.monotonic() - started:.1f} s",
            err=True,
        )
    server_options = FakeServerOptions(cap=options.cap)
    async with FakeCopperServer(dataset, options=server_options) as server:
        async with CopperClient(
            access_token=server_options.access_token,
            user_email=server_options.user_email,
            base_url=server.url,
            rate_limit=None,
        ) as client:
            result = await run_export(
                client,
                out=out,
                format=format_,  # type: ignore[arg-type]
                options=options,
                progress=progress,
            )
        truth = set(dataset.ids())
    return result, truth, time.monotonic() - started


def _check(
    result: ExportResult, truth: set[int], written: list[int], elapsed: float, page_size: int
) -> None:
    """Print the summary and the check; exit 1 unless every record came exactly once."""
    unique = set(written)
    ideal = math.ceil(len(truth) / page_size)
    for line in _summary(result, ideal=ideal):
        click.echo(line)
    click.echo(f"unique ids        {len(unique)} of {len(truth)} on the server")
    click.echo(f"requests / ideal  {result.stats.get('requests', 0) / max(ideal, 1):.4f}")
    click.echo(f"total time        {elapsed:.1f} s (generation included)")
    missing, extra, repeated = len(truth - unique), len(unique - truth), len(written) - len(unique)
    if missing or extra or repeated:
        _fail(
            ExitCode.FAILED,
            f"check FAILED: {missing} missing, {extra} unexpected, {repeated} repeated",
        )
    click.echo("check             every record exactly once")


def _ids_in(path: Path, format_: str) -> list[int]:
    if format_ == "jsonl":
        with open(path, "rb") as file:
            return [orjson.loads(line)["id"] for line in file if line.strip()]
    import csv

    with open(path, newline="") as file:
        return [int(row["id"]) for row in csv.DictReader(file)]
