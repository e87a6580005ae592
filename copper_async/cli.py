"""The ``copper-async`` command line: ``export``, ``demo`` and ``fake-server``.

What the commands share (exit codes, the run wrapper, logging, progress) is
in :mod:`copper_async._cli_support`; the ``demo`` command in
:mod:`copper_async._demo`.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import BinaryIO, ClassVar

import click

from copper_async import __version__
from copper_async._cli_support import (
    EXIT_CODES_HELP,
    Progress,
    _common_export_options,
    _configure_logging,
    _credential_flags,
    _fail,
    _rate_limit,
    _read_filter,
    _run,
    _summary,
)

# Re-exported: ExitCode is documented with the command, and tests and the
# console script's users import it from here.
from copper_async._cli_support import ExitCode as ExitCode
from copper_async._custom_fields import CustomFieldNames
from copper_async._demo import demo as demo
from copper_async._export import ExportResult, run_export, sort_in
from copper_async._options import SearchOptions
from copper_async._protocol import DEFAULT_BASE_URL
from copper_async._ratelimit import RateLimit
from copper_async._retry import RetryPolicy
from copper_async.client import CopperClient
from copper_async.exceptions import InvalidInputError
from copper_async.filters import OpportunityFilter

__all__ = ["ExitCode", "main"]

logger = logging.getLogger(__name__)
# The longest one attempt of a request waits (--timeout bounds all of them).
_ATTEMPT_TIMEOUT = 30.0


class _LazyGroup(click.Group):
    """Commands that need the fake server (and its dataset) are imported only
    when run, so that ``export`` and ``--help`` start without them."""

    # name: (module, attribute, the help line the command list shows)
    lazy: ClassVar[dict[str, tuple[str, str, str]]] = {
        "fake-server": (
            "copper_async.testing._command",
            "fake_server",
            "Serve Copper's opportunity search on loopback, from generated or given records.",
        ),
        "sync": (
            "copper_async.sync._cli",
            "sync",
            "Mirror opportunities into a database: everything once, then only changes.",
        ),
        "demo-sync": (
            "copper_async.sync._demo",
            "demo_sync",
            "Mirror N fake records into SQLite, change some, sync only those, check.",
        ),
        "tap": (
            "copper_async.singer._cli",
            "tap",
            "A Singer tap of Copper opportunities, complete past the search cap.",
        ),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, attribute, help_line = self.lazy[cmd_name]
            if ctx.meta.get(_LISTING):
                return click.Command(cmd_name, help=help_line)
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        ctx.meta[_LISTING] = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            ctx.meta[_LISTING] = False


_LISTING = "copper_async.cli.listing"


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="copper-async")
def main() -> None:
    """Stream Copper CRM opportunities out of the search API, exactly once."""


main.add_command(demo)


@main.command(epilog=EXIT_CODES_HELP)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Output file; - writes to stdout (no checkpoint then).",
)
@click.option(
    "--filter",
    "filter_source",
    metavar="FILE|-",
    help="A JSON search body (as in Copper's docs); - reads stdin.",
)
@_common_export_options
@click.option(
    "--rate-limit",
    default="180/60",
    show_default=True,
    help="Requests/seconds, e.g. 180/60, or 'none'.",
)
@click.option("--base-url", default=None, help="API root (default: Copper's).")
@click.option(
    "--timeout",
    type=click.FloatRange(1, 86_400),
    default=RetryPolicy().deadline,
    show_default=True,
    help=f"Seconds one request may take, retries included (each attempt at most "
    f"{_ATTEMPT_TIMEOUT:g}).",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Checkpoint file, written after each committed page.",
)
@click.option("--resume", is_flag=True, help="Continue the export recorded in --checkpoint.")
@_credential_flags
@click.option(
    "--custom-field-names",
    is_flag=True,
    help="CSV: name custom-field columns and options (one more request).",
)
def export(
    out: Path,
    filter_source: str | None,
    format_: str,
    options: SearchOptions,
    quiet: bool,
    verbose: bool,
    rate_limit: str,
    base_url: str | None,
    timeout: float,
    checkpoint: Path | None,
    resume: bool,
    token: str | None,
    email: str | None,
    allow_insecure_http: bool,
    custom_field_names: bool,
) -> None:
    """Export every opportunity a filter matches to a JSON-lines or CSV file.

    The search orders each date window itself (on the split field) to read
    past the 100,000-record cap: a sort_by in the filter is ignored, with a
    warning.
    """
    _configure_logging(quiet=quiet, verbose=verbose)
    to_stdout = str(out) == "-"
    if to_stdout and checkpoint is not None:
        _fail(ExitCode.USAGE, "--out - streams to stdout, which no checkpoint can resume")
    stdout_fd = _stdout_fd() if to_stdout else None
    if not token:
        _fail(ExitCode.USAGE, "no access token: set COPPER_ACCESS_TOKEN or pass --token")
    if not email:
        _fail(ExitCode.USAGE, "no user email: set COPPER_USER_EMAIL or pass --email")
    if resume and checkpoint is None:
        _fail(ExitCode.USAGE, "--resume needs --checkpoint")
    if custom_field_names and format_ != "csv":
        _fail(ExitCode.USAGE, "--custom-field-names needs --format csv")
    query = _export_filter(filter_source)
    limit = _rate_limit(rate_limit)
    client = _export_client(token, email, limit, base_url, timeout, allow_insecure_http)
    progress = Progress(stream=sys.stderr, enabled=not quiet)
    # Unbuffered, and left open: the writer appends whole pages to fd 1.
    stream = open(stdout_fd, "wb", buffering=0, closefd=False) if stdout_fd is not None else None  # noqa: SIM115
    job = _export_job(
        client,
        query,
        out=stream if stream is not None else out,
        format_=format_,
        options=options,
        checkpoint=checkpoint,
        resume=resume,
        progress=progress,
        custom_field_names=custom_field_names,
    )
    result = _run(
        job, progress=progress, resumable=checkpoint is not None, base_url=client.base_url
    )
    if not quiet:
        for line in _summary(result):
            click.echo(line, err=True)


def _stdout_fd() -> int:
    """The descriptor ``--out -`` writes to; refused (exit 2) when the command
    was started with stdout closed (``>&-``), before any request."""
    try:
        return sys.stdout.fileno()  # sys.stdout is None when fd 1 was closed at start
    except (AttributeError, OSError, ValueError):
        _fail(ExitCode.USAGE, "--out -: stdout is closed; give --out a file")


def _export_filter(source: str | None) -> OpportunityFilter:
    query = _read_filter(source)
    ignored = sort_in(query)
    if ignored is not None:
        # Bodies copied from Copper's examples often sort: say so, and go on without it.
        logger.warning("the filter's %s; ignored", ignored)
        query = query.with_sort(None, None)
    return query


async def _export_job(
    client: CopperClient,
    query: OpportunityFilter,
    *,
    out: Path | BinaryIO,
    format_: str,
    options: SearchOptions,
    checkpoint: Path | None,
    resume: bool,
    progress: Progress,
    custom_field_names: bool,
) -> ExportResult:
    async def names() -> CustomFieldNames:
        return CustomFieldNames.for_records(await client.custom_field_definitions())

    async with client:
        return await run_export(
            client,
            query,
            out=out,
            format=format_,  # type: ignore[arg-type]
            options=options,
            checkpoint=checkpoint,
            resume=resume,
            progress=progress,
            custom_fields=names if custom_field_names else None,
        )


def _export_client(
    token: str,
    email: str,
    limit: RateLimit | None,
    base_url: str | None,
    timeout: float,
    allow_insecure_http: bool,
) -> CopperClient:
    root = (base_url or DEFAULT_BASE_URL).rstrip("/")
    try:
        return CopperClient(
            access_token=token,
            user_email=email,
            rate_limit=limit,
            allow_insecure_http=allow_insecure_http,
            base_url=root,
            timeout=min(_ATTEMPT_TIMEOUT, timeout),
            retry=RetryPolicy(deadline=timeout),
        )
    except InvalidInputError as error:
        _fail(ExitCode.USAGE, str(error))
