"""The ``copper-async`` command line: ``export``, ``demo`` and ``fake-server``."""

from __future__ import annotations

import asyncio
import functools
import gc
import importlib
import logging
import math
import os
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ClassVar, NoReturn, TextIO, TypeVar

import attrs
import click
import orjson
from tqdm import tqdm  # type: ignore[import-untyped]

from copper_async import __version__
from copper_async._custom_fields import CustomFieldNames
from copper_async._export import ExportResult, run_export, sort_in
from copper_async._lock import ExportBusyError
from copper_async._options import SearchOptions, option_spec
from copper_async._protocol import DEFAULT_BASE_URL, SEARCH_PATH, search_url
from copper_async._ratelimit import RateLimit
from copper_async._retry import RetryPolicy
from copper_async._stats import SearchStats
from copper_async.client import CopperClient
from copper_async.exceptions import (
    AuthenticationError,
    CapExceededError,
    CheckpointError,
    CopperError,
    InvalidInputError,
    InvalidRequestError,
    OutputError,
    RateLimitedError,
    RequestTimeoutError,
    ResponseError,
    SearchCapWarning,
    ServerError,
    TransportError,
)
from copper_async.filters import DateField, OpportunityFilter

__all__ = ["ExitCode", "main"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
# The longest one attempt of a request waits (--timeout bounds all of them).
_ATTEMPT_TIMEOUT = 30.0


class ExitCode:
    """Process exit codes, documented in ``copper-async export --help``."""

    OK = 0
    FAILED = 1
    USAGE = 2
    AUTHENTICATION = 3
    CAP_EXCEEDED = 4
    GAVE_UP = 5
    CHECKPOINT = 6
    OUTPUT = 7
    BUSY = 9  # the sync's code, with the same meaning
    INTERRUPTED = 130
    TERMINATED = 143


EXIT_CODES_HELP = """\b
Exit codes:
  0    every record exported
  1    unexpected failure
  2    usage: bad option, filter, output or checkpoint path, missing
       credentials; or Copper rejected the request (HTTP 400, 404, 422:
       the filter or --base-url is wrong; never retried)
  3    authentication refused (401/403)
  4    search cap exceeded: records unreachable (see --on-cap)
  5    gave up: rate limit, server errors, network or --timeout, after
       retries; or answers that are not search results
  6    checkpoint missing, damaged or of another export
  7    the output cannot be written (disk full, I/O error); the file is
       cut back to whole pages: with --checkpoint, continue with --resume
  9    another export of the same checkpoint or output is running; this
       one wrote nothing
  130  interrupted (Ctrl-C): the output holds whole pages; with --checkpoint,
       continue with --resume
  143  terminated (SIGTERM): stopped as for Ctrl-C
"""


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"copper-async: {message}", err=True)
    sys.exit(code)


class _Terminated(Exception):
    """SIGTERM stopped the run (it is then cancelled, as Ctrl-C cancels it)."""


def _exit_code(error: BaseException) -> int:
    if isinstance(error, ExportBusyError):
        return ExitCode.BUSY
    if isinstance(error, InvalidRequestError):
        return ExitCode.USAGE  # retrying cannot help: the request itself is wrong
    if isinstance(error, AuthenticationError):
        return ExitCode.AUTHENTICATION
    if isinstance(error, CapExceededError):
        return ExitCode.CAP_EXCEEDED
    if isinstance(error, CheckpointError):
        return ExitCode.CHECKPOINT
    if isinstance(error, OutputError):
        return ExitCode.OUTPUT
    if isinstance(error, InvalidInputError):
        return ExitCode.USAGE
    if isinstance(error, RateLimitedError | ServerError | TransportError | ResponseError):
        return ExitCode.GAVE_UP
    return ExitCode.FAILED


async def _stop_on_sigterm(coroutine: Coroutine[Any, Any, T]) -> T:
    """Await ``coroutine``; SIGTERM cancels it the way asyncio.run's Ctrl-C does,
    so the export stops between pages with its file and checkpoint whole."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, terminate)
        installed = True
    except (NotImplementedError, RuntimeError):  # no signals here (Windows, not main thread)
        installed = False
    try:
        return await coroutine
    except asyncio.CancelledError:
        if terminated:
            raise _Terminated from None
        raise
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGTERM)


def _run(
    coroutine: Coroutine[Any, Any, T],
    *,
    progress: Progress | None = None,
    resumable: bool = False,
    base_url: str | None = None,
    stopped: str | None = None,
    exit_code: Callable[[CopperError], int] = _exit_code,
) -> T:
    """Run ``coroutine``; map errors, Ctrl-C and SIGTERM to one line and an exit code.

    The progress bar is closed first, so that the line stands on its own.
    ``stopped`` says what an interruption leaves (default: the export's
    output); ``exit_code`` maps errors for commands with codes of their own.
    """
    if stopped is None:
        stopped = "the output is consistent up to the last page" + (
            "; continue with --resume" if resumable else ""
        )
    try:
        try:
            with warnings.catch_warnings():
                _route_cap_warnings()
                return asyncio.run(_stop_on_sigterm(coroutine))
        finally:
            if progress is not None:
                progress.close()
    except KeyboardInterrupt:
        _fail(ExitCode.INTERRUPTED, f"interrupted; {stopped}")
    except _Terminated:
        _fail(ExitCode.TERMINATED, f"terminated; {stopped}")
    except CopperError as error:
        _fail(exit_code(error), _explain(error, base_url))


def _explain(error: CopperError, base_url: str | None) -> str:
    """The error's message, with what to do when the cause is usually the command line."""
    if isinstance(error, InvalidRequestError) and error.status == 404 and base_url is not None:
        return (
            f"{error}: there is no search endpoint at {search_url(base_url)}; "
            f"--base-url must be the API root, {DEFAULT_BASE_URL} for Copper "
            "(neither the server root nor the search URL itself)"
        )
    if isinstance(error, InvalidRequestError):
        return f"{error}: check the --filter body against Copper's search fields"
    deadline = error.context.get("deadline")
    if isinstance(error, RequestTimeoutError) and deadline is not None:
        attempts = error.context.get("attempts")
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        return f"no answer within --timeout {deadline:g}s ({tries}): {error}"
    return str(error)


def _route_cap_warnings() -> None:
    """Each SearchCapWarning as one log line (above the progress bar), once."""
    warnings.simplefilter("always", SearchCapWarning)
    show = warnings.showwarning

    def showwarning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, SearchCapWarning):
            logger.warning("%s", message)
        else:
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning


class _BarSafeHandler(logging.StreamHandler[TextIO]):
    """Writes log lines above a progress bar (through tqdm) rather than into it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:
            self.handleError(record)


def _configure_logging(*, quiet: bool, verbose: bool, stream: TextIO | None = None) -> None:
    if quiet and verbose:
        _fail(ExitCode.USAGE, "--quiet and --verbose cannot be used together")
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = _BarSafeHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("copper_async")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class Progress:
    """A tqdm bar on a terminal; plain periodic log lines otherwise.

    The bar is drawn at the first call, not before: an error found before any
    page then prints alone. It starts at the records written before this run
    (``written`` less the search's own count, at the first call), so a
    resumed export shows its real position, rate and ETA.
    """

    def __init__(self, *, stream: TextIO, enabled: bool, interval: float = 5.0) -> None:
        self._bar: Any = None
        self._enabled = enabled
        self._interactive = enabled and stream.isatty()
        self._stream = stream
        self._interval = interval
        self._last = time.monotonic()

    def __call__(self, stats: SearchStats, written: int) -> None:
        if not self._enabled:
            return
        postfix = (
            f"windows {stats.windows_done}/{stats.windows_done + _open_windows(stats)} "
            f"requests {stats.requests} retries {stats.retries}"
        )
        if self._interactive:
            bar = self._bar
            if bar is None:
                bar = self._bar = tqdm(
                    total=None if stats.total_hint is None else max(stats.total_hint, written),
                    initial=max(written - stats.records, 0),
                    unit="rec",
                    unit_scale=True,
                    file=self._stream,
                    leave=True,
                    dynamic_ncols=True,
                )
            if stats.total_hint is not None and bar.total is None:
                bar.total = max(stats.total_hint, written)
            elif bar.total is not None and written > bar.total:
                # The total is an upper bound, but not always.
                bar.total = written
            bar.set_postfix_str(postfix, refresh=False)
            bar.update(written - bar.n)
            return
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            rate = written / stats.elapsed if stats.elapsed else 0.0
            logger.info("%d records written (%.0f/s), %s", written, rate, postfix)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _open_windows(stats: SearchStats) -> int:
    return max(stats.windows_planned - stats.windows_split - stats.windows_done, 0)


def _read_filter(source: str | None) -> OpportunityFilter:
    if source is None:
        return OpportunityFilter()
    try:
        text = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as error:
        _fail(ExitCode.USAGE, f"cannot read filter file {source!r}: {error.strerror}")
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        _fail(ExitCode.USAGE, f"filter {source!r} is not valid JSON: {error}")
    if not isinstance(body, dict):
        _fail(ExitCode.USAGE, f"filter {source!r} must be a JSON object (a search body)")
    try:
        return OpportunityFilter.from_body(body)
    except InvalidInputError as error:
        _fail(ExitCode.USAGE, f"filter {source!r}: {error}")


def _rate_limit(value: str) -> RateLimit | None:
    if value.lower() in ("none", "off", "0"):
        return None
    try:
        return RateLimit.parse(value)
    except InvalidInputError as error:
        _fail(ExitCode.USAGE, str(error))


def _summary(result: ExportResult, *, ideal: int | None = None) -> list[str]:
    stats = result.stats
    return [
        f"records written   {result.records}",
        f"bytes             {result.bytes}",
        f"windows           {stats.get('windows_done', 0)} "
        f"(split {stats.get('windows_split', 0)}, hot spots {stats.get('hot_spots', 0)})",
        f"requests          {stats.get('requests', 0)}"
        + (f" (ideal ceil(N/page_size) = {ideal})" if ideal is not None else ""),
        f"retries           {stats.get('retries', 0)} (429s {stats.get('rate_limited', 0)})",
        f"duplicates drop.  {stats.get('duplicates_dropped', 0)}",
        f"count mismatches  {stats.get('count_mismatches', 0)}",
        f"unreachable       {stats.get('unreachable_records', 0)}",
        f"elapsed           {stats.get('elapsed', 0.0):.1f} s",
    ]


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
            "Mirror opportunities into SQLite or PostgreSQL, reading only what changed.",
        ),
        "demo-sync": (
            "copper_async.sync._demo",
            "demo_sync",
            "Load the fake server into SQLite, play a day of changes, sync them, check the table.",
        ),
        "tap": (
            "copper_async.singer._cli",
            "tap",
            "Run as a Singer tap: SCHEMA, RECORD and STATE messages on stdout.",
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


def _search_flag(field: attrs.Attribute[Any]) -> Callable[[Callable[..., Any]], Any]:
    """One :class:`SearchOptions` field as a flag: its bounds, default and help."""
    spec = option_spec(field)
    kind = click.Choice(spec.choices) if spec.choices else click.IntRange(spec.low, spec.high)
    default = field.default.record_key if isinstance(field.default, DateField) else field.default
    return click.option(
        f"--{field.name.replace('_', '-')}",
        field.name,
        type=kind,
        default=default,
        show_default=True,
        help=spec.help,
    )


def _search_flags(function: Callable[..., Any]) -> Callable[..., Any]:
    """A flag for every search option that has one; the command gets them as
    one ``options`` (checks across options fail with exit code 2)."""
    flagged = [field for field in attrs.fields(SearchOptions) if option_spec(field).flag]

    @functools.wraps(function)
    def command(**params: Any) -> Any:
        values = {field.name: params.pop(field.name) for field in flagged}
        try:
            options = SearchOptions(**values)
        except InvalidInputError as error:
            _fail(ExitCode.USAGE, str(error))
        return function(options=options, **params)

    for field in reversed(flagged):
        command = _search_flag(field)(command)
    return command


def _common_export_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--format", "format_", type=click.Choice(["jsonl", "csv"]), default="jsonl"),
        _search_flags,
        click.option("--quiet", "-q", is_flag=True, help="Only errors on stderr."),
        click.option("--verbose", "-v", is_flag=True, help="Debug logging (never credentials)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


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
@click.option("--token", envvar="COPPER_ACCESS_TOKEN", help="Or COPPER_ACCESS_TOKEN.")
@click.option("--email", envvar="COPPER_USER_EMAIL", help="Or COPPER_USER_EMAIL.")
@click.option("--allow-insecure-http", is_flag=True, help="Allow http:// to a non-local host.")
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
    if not token:
        _fail(ExitCode.USAGE, "no access token: set COPPER_ACCESS_TOKEN or pass --token")
    if not email:
        _fail(ExitCode.USAGE, "no user email: set COPPER_USER_EMAIL or pass --email")
    if resume and checkpoint is None:
        _fail(ExitCode.USAGE, "--resume needs --checkpoint")
    if custom_field_names and format_ != "csv":
        _fail(ExitCode.USAGE, "--custom-field-names needs --format csv")
    query = _read_filter(filter_source)
    ignored = sort_in(query)
    if ignored is not None:
        # Bodies copied from Copper's examples often sort: say so, and go on without it.
        logger.warning("ignoring the filter's %s", ignored)
        query = query.with_sort(None, None)
    limit = _rate_limit(rate_limit)
    client = _export_client(token, email, limit, base_url, timeout, allow_insecure_http)
    progress = Progress(stream=sys.stderr, enabled=not quiet)
    # Unbuffered, and left open: the writer appends whole pages to fd 1.
    stream = open(sys.stdout.fileno(), "wb", buffering=0, closefd=False) if to_stdout else None  # noqa: SIM115

    async def job() -> ExportResult:
        async with client:
            names = None
            if custom_field_names:
                definitions = await client.custom_field_definitions()
                names = CustomFieldNames.for_records(definitions)
            return await run_export(
                client,
                query,
                out=stream if stream is not None else out,
                format=format_,  # type: ignore[arg-type]
                options=options,
                checkpoint=checkpoint,
                resume=resume,
                progress=progress,
                custom_fields=names,
            )

    result = _run(
        job(), progress=progress, resumable=checkpoint is not None, base_url=client.base_url
    )
    if not quiet:
        for line in _summary(result):
            click.echo(line, err=True)


def _export_client(
    token: str,
    email: str,
    limit: RateLimit | None,
    base_url: str | None,
    timeout: float,
    allow_insecure_http: bool,
) -> CopperClient:
    root = (base_url or DEFAULT_BASE_URL).rstrip("/")
    if root.endswith(f"/{SEARCH_PATH}"):
        _fail(
            ExitCode.USAGE,
            f"--base-url {root!r} is the search endpoint itself: give the API root, "
            f"{root.removesuffix(f'/{SEARCH_PATH}')!r} ({DEFAULT_BASE_URL} for Copper)",
        )
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


@main.command()
@click.option("--records", "count", type=click.IntRange(1), default=250_000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output file (default: a temporary file, removed after the check).",
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

        if out is not None:
            _fail(ExitCode.USAGE, "--sync mirrors into SQLite: --out is for the export demo")
        ctx.invoke(demo_sync, count=count, seed=seed, cap=options.cap, quiet=quiet)
        return
    from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions

    _configure_logging(quiet=quiet, verbose=verbose)
    keep = out is not None
    if out is None:
        handle, name = tempfile.mkstemp(prefix="copper-demo-", suffix=f".{format_}")
        os.close(handle)
        out = Path(name)
    progress = Progress(stream=sys.stderr, enabled=not quiet)

    async def job() -> tuple[ExportResult, set[int], float]:
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

    result, truth, elapsed = _run(job(), progress=progress)
    try:
        written = _ids_in(out, format_)
    finally:
        if not keep:
            out.unlink(missing_ok=True)
    unique = set(written)
    ideal = math.ceil(len(truth) / options.page_size)
    click.echo(f"output            {out if keep else '(temporary, removed)'}")
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
