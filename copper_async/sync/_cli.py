"""``copper-async sync``: keep a local database up to date with Copper.

The command is registered (lazily) by :mod:`copper_async.cli`, whose helpers
it reuses: the search flags, declared once in
:class:`~copper_async._options.SearchOptions`, the runner that maps errors,
Ctrl-C and SIGTERM to exit codes, the progress bar.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import attrs
import click

from copper_async._cli_support import _credential_flags, _search_flag
from copper_async._options import SearchKwargs, SearchOptions
from copper_async.client import CopperClient
from copper_async.exceptions import CopperError, StoreBusyError, StoreError
from copper_async.sync._open import DEFAULT_DB
from copper_async.sync._runner import SyncResult
from copper_async.sync._store import Store

__all__ = ["SyncExitCode", "run_command", "summary", "sync"]

T = TypeVar("T")
logger = logging.getLogger(__name__)
_OPTIONS = attrs.fields(SearchOptions)


class SyncExitCode:
    """The sync's own exit codes, beside the export's (0-7, 130, 143)."""

    STORE = 8
    BUSY = 9


SYNC_EXIT_CODES_HELP = """\b
Exit codes:
  0    the database is up to date
  1    unexpected failure
  2    usage: bad option, filter or --db URL, missing credentials; or
       Copper rejected the request (HTTP 400, 404, 422: the filter or
       --base-url is wrong; never retried)
  3    authentication refused (401/403)
  4    search cap exceeded: records unreachable
  5    gave up after retries (rate limit, server errors, network); or
       answers that are not search results
  8    the database cannot be used: unreachable, login refused, read-only,
       disk full, of another tool or schema version, of another job; what
       was committed stays whole and the next run continues from it
  9    another sync of this database and job is running (or, for
       SQLite, another program holds the database locked for writing)
  130  interrupted (Ctrl-C): committed pages stay; the next run continues
  143  terminated (SIGTERM): as for Ctrl-C
"""


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"copper-async: {message}", err=True)
    sys.exit(code)


def _exit_code(error: CopperError) -> int:
    from copper_async._cli_support import _exit_code as export_exit_code

    if isinstance(error, StoreBusyError):
        return SyncExitCode.BUSY
    if isinstance(error, StoreError):
        return SyncExitCode.STORE
    return export_exit_code(error)


def run_command(
    coroutine: Coroutine[Any, Any, T], *, progress: Any = None, base_url: str | None = None
) -> T:
    """Run the sync through the export's runner, with the sync's own exit codes."""
    from copper_async._cli_support import _run

    return _run(
        coroutine,
        progress=progress,
        base_url=base_url,
        stopped="committed pages stay; the next run continues from them",
        exit_code=_exit_code,
    )


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


def _client(
    token: str,
    email: str,
    limit: Any,
    base_url: str | None,
    allow_insecure_http: bool,
    options: SearchKwargs,
) -> CopperClient:
    """The client, with every option checked (across them too) before anything is opened."""
    from copper_async._cli_support import ExitCode
    from copper_async._protocol import DEFAULT_BASE_URL
    from copper_async.exceptions import InvalidInputError

    try:
        SearchOptions(**options)
        return CopperClient(
            access_token=token,
            user_email=email,
            rate_limit=limit,
            allow_insecure_http=allow_insecure_http,
            base_url=base_url or DEFAULT_BASE_URL,
        )
    except InvalidInputError as error:
        _fail(ExitCode.USAGE, str(error))


def _credentials(token: str | None, email: str | None) -> tuple[str, str]:
    from copper_async._cli_support import ExitCode

    if not token:
        _fail(ExitCode.USAGE, "no access token: set COPPER_ACCESS_TOKEN or pass --token")
    if not email:
        _fail(ExitCode.USAGE, "no user email: set COPPER_USER_EMAIL or pass --email")
    return token, email


def _open_store(db: str) -> Store:
    """The store ``--db`` names, or the exit its error calls for."""
    from copper_async._cli_support import ExitCode
    from copper_async.exceptions import InvalidInputError
    from copper_async.sync._open import open_store

    try:
        return open_store(db)
    except InvalidInputError as error:  # a --db URL of no known scheme
        _fail(ExitCode.USAGE, str(error))
    except StoreError as error:
        _fail(SyncExitCode.STORE, str(error))


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
@_search_flag(_OPTIONS.concurrency)
@_search_flag(_OPTIONS.page_size)
@_search_flag(_OPTIONS.cap)
@click.option("--base-url", default=None, help="API root (default: Copper's).")
@_credential_flags
@click.option(
    "--custom-field-names",
    is_flag=True,
    help="Also (re)create the view opportunities_named: a column per custom field, "
    "options by name (one more request).",
)
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors on stderr.")
@click.option("--verbose", "-v", is_flag=True, help="Debug logging (never credentials).")
def sync(
    db: str,
    filter_source: str | None,
    full: bool,
    reconcile: bool,
    rate_limit: str,
    concurrency: int,
    page_size: int,
    cap: int,
    base_url: str | None,
    token: str | None,
    email: str | None,
    allow_insecure_http: bool,
    custom_field_names: bool,
    quiet: bool,
    verbose: bool,
) -> None:
    """Mirror opportunities into a database: everything once, then only changes.

    Each run reads the records modified since the last completed run (less
    an overlap for clock skew) and upserts them by id; pages commit with the
    run's progress, so a stopped run continues where it stopped.
    """
    from copper_async._cli_support import Progress, _configure_logging, _rate_limit, _read_filter
    from copper_async._export import sort_in
    from copper_async.sync._runner import run_sync

    _configure_logging(quiet=quiet, verbose=verbose)
    token, email = _credentials(token, email)
    query = _read_filter(filter_source)
    ignored = sort_in(query, "a sync")
    if ignored is not None:  # bodies copied from Copper's examples often sort
        logger.warning("the filter's %s; ignored", ignored)
        query = query.with_sort(None, None)
    limit = _rate_limit(rate_limit)
    options = SearchKwargs(page_size=page_size, concurrency=concurrency, cap=cap)
    client = _client(token, email, limit, base_url, allow_insecure_http, options)
    store = _open_store(db)
    progress = Progress(stream=sys.stderr, enabled=not quiet)

    async def job() -> SyncResult:
        async with client:
            return await run_sync(
                client,
                store,
                query,
                full=full,
                reconcile=reconcile,
                progress=progress,
                custom_field_names=custom_field_names,
                **options,
            )

    result = run_command(job(), progress=progress, base_url=client.base_url)
    if not quiet:
        for line in summary(result):
            click.echo(line, err=True)
