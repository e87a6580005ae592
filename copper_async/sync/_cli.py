"""``copper-async sync``: keep a local database up to date with Copper.

The command is registered by :mod:`copper_async.cli`, whose helpers
(credentials, progress bar, exit codes) it reuses; they are imported when the
command runs, so either module may be imported first.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import warnings
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import click

from copper_async._options import SEARCH_CAP
from copper_async.exceptions import CopperError, SearchCapWarning
from copper_async.sync._errors import StoreBusyError, StoreError
from copper_async.sync._open import DEFAULT_DB
from copper_async.sync._runner import SyncResult

__all__ = ["SyncExitCode", "run_command", "summary", "sync"]

T = TypeVar("T")


class SyncExitCode:
    """The sync's own exit codes, beside the export's (0-7, 130, 143)."""

    STORE = 8
    BUSY = 9


SYNC_EXIT_CODES_HELP = """\b
Exit codes:
  0    the database is up to date
  1    unexpected failure
  2    usage: bad option, filter or --db URL, missing credentials
  3    authentication refused (401/403)
  4    search cap exceeded: records unreachable
  5    gave up after retries (rate limit, server errors, network)
  8    the database cannot be used: unreachable, login refused, read-only,
       disk full, of another tool or schema version, of another job; what
       was committed stays whole and the next run continues from it
  9    another sync of this database and job is running
  130  interrupted (Ctrl-C): committed pages stay; the next run continues
  143  terminated (SIGTERM): as for Ctrl-C
"""


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"copper-async: {message}", err=True)
    sys.exit(code)


def run_command(coroutine: Coroutine[Any, Any, T], *, progress: Any = None) -> T:
    """Run the sync; map errors, Ctrl-C and SIGTERM to one line and an exit code."""
    from copper_async.cli import ExitCode, _exit_code, _stop_on_sigterm, _Terminated

    stopped = "committed pages stay; the next run continues from them"
    try:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SearchCapWarning)
                return asyncio.run(_stop_on_sigterm(coroutine))
        finally:
            if progress is not None:
                progress.close()
    except KeyboardInterrupt:
        _fail(ExitCode.INTERRUPTED, f"interrupted; {stopped}")
    except _Terminated:
        _fail(ExitCode.TERMINATED, f"terminated; {stopped}")
    except StoreBusyError as error:
        _fail(SyncExitCode.BUSY, str(error))
    except StoreError as error:
        _fail(SyncExitCode.STORE, str(error))
    except CopperError as error:
        _fail(_exit_code(error), str(error))


def _when(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def summary(result: SyncResult) -> list[str]:
    read = "everything" if result.read_from is None else f"modified since {_when(result.read_from)}"
    return [
        f"mode              {result.mode}{' (resumed)' if result.resumed else ''}, read {read}",
        f"inserted          {result.inserted}",
        f"updated           {result.updated}",
        f"unchanged         {result.unchanged}",
        f"deleted           {result.deleted}"
        + ("" if result.mode == "reconcile" else " (deletions are found by --reconcile)"),
        f"requests          {result.requests}",
        f"new bookmark      {_when(result.bookmark)} ({result.bookmark})",
    ]


@click.command(epilog=SYNC_EXIT_CODES_HELP)
@click.option(
    "--db",
    default=DEFAULT_DB,
    show_default=True,
    help="sqlite:///path, a plain path, or postgresql://... (libpq's PG* variables apply).",
)
@click.option(
    "--filter",
    "filter_source",
    metavar="FILE|-",
    help="A JSON search body (as in Copper's docs); - reads stdin.",
)
@click.option(
    "--full", is_flag=True, help="Read everything again (deletions still need --reconcile)."
)
@click.option(
    "--reconcile", is_flag=True, help="Read everything and mark rows not seen as deleted."
)
@click.option(
    "--rate-limit", default="180/60", show_default=True, help="Requests/seconds, or 'none'."
)
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--base-url", default=None, help="API root (default: Copper's).")
@click.option(
    "--cap",
    type=click.IntRange(1),
    default=SEARCH_CAP,
    show_default=True,
    help="The API's search cap (for test servers).",
)
@click.option("--token", envvar="COPPER_ACCESS_TOKEN", help="Or COPPER_ACCESS_TOKEN.")
@click.option("--email", envvar="COPPER_USER_EMAIL", help="Or COPPER_USER_EMAIL.")
@click.option("--allow-insecure-http", is_flag=True, help="Allow http:// to a non-local host.")
@click.option("--quiet", "-q", is_flag=True, help="Only errors on stderr.")
@click.option("--verbose", "-v", is_flag=True, help="Debug logging (never credentials).")
def sync(
    db: str,
    filter_source: str | None,
    full: bool,
    reconcile: bool,
    rate_limit: str,
    concurrency: int,
    base_url: str | None,
    cap: int,
    token: str | None,
    email: str | None,
    allow_insecure_http: bool,
    quiet: bool,
    verbose: bool,
) -> None:
    """Mirror opportunities into a database: everything once, then only changes.

    Each run reads the records modified since the last completed run (less
    an overlap for clock skew) and upserts them by id; pages commit with the
    run's progress, so a stopped run continues where it stopped.
    """
    from copper_async._protocol import DEFAULT_BASE_URL
    from copper_async.cli import (
        ExitCode,
        Progress,
        _configure_logging,
        _rate_limit,
        _read_filter,
    )
    from copper_async.client import CopperClient
    from copper_async.exceptions import InvalidInputError
    from copper_async.sync._open import open_store
    from copper_async.sync._runner import run_sync

    _configure_logging(quiet=quiet, verbose=verbose)
    if not token:
        _fail(ExitCode.USAGE, "no access token: set COPPER_ACCESS_TOKEN or pass --token")
    if not email:
        _fail(ExitCode.USAGE, "no user email: set COPPER_USER_EMAIL or pass --email")
    query = _read_filter(filter_source)
    limit = _rate_limit(rate_limit)
    try:
        store = open_store(db)
        client = CopperClient(
            access_token=token,
            user_email=email,
            rate_limit=limit,
            allow_insecure_http=allow_insecure_http,
            base_url=base_url or DEFAULT_BASE_URL,
        )
    except InvalidInputError as error:
        _fail(ExitCode.USAGE, str(error))
    except StoreError as error:
        _fail(SyncExitCode.STORE, str(error))
    progress = Progress(stream=sys.stderr, enabled=not quiet)

    async def job() -> SyncResult:
        async with client:
            return await run_sync(
                client,
                store,
                query,
                full=full,
                reconcile=reconcile,
                concurrency=concurrency,
                cap=cap,
                progress=progress,
            )

    result = run_command(job(), progress=progress)
    if not quiet:
        for line in summary(result):
            click.echo(line, err=True)
