"""What the ``copper-async`` commands share: exit codes, the run wrapper,
logging, the progress display, the summary and the search-option flags.

:func:`_run` turns errors, Ctrl-C and SIGTERM into one line on stderr and an
exit code (:class:`ExitCode`); :class:`Progress` shows a bar on a terminal
and periodic log lines elsewhere. The ``sync`` and ``tap`` commands reuse
them through :mod:`copper_async.cli`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TextIO, TypeVar

import attrs
import click
import orjson
from tqdm import tqdm  # type: ignore[import-untyped]

from copper_async._export import ExportResult
from copper_async._lock import ExportBusyError
from copper_async._options import SearchOptions, option_spec
from copper_async._protocol import DEFAULT_BASE_URL, search_url
from copper_async._ratelimit import RateLimit
from copper_async._stats import SearchStats
from copper_async.exceptions import (
    AuthenticationError,
    CapExceededError,
    CheckpointError,
    CopperError,
    InvalidInputError,
    InvalidRequestError,
    OutputClosedError,
    OutputError,
    RateLimitedError,
    RequestTimeoutError,
    ResponseError,
    SearchCapWarning,
    ServerError,
    TransportError,
)
from copper_async.filters import DateField, OpportunityFilter

# The command line's log lines (progress, cap warnings) keep the name they always had.
logger = logging.getLogger("copper_async.cli")
T = TypeVar("T")


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
    #: 128 + SIGPIPE: what a shell shows for a tool that a closed pipe ended.
    READER_CLOSED = 141
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
  6    checkpoint missing, damaged, of another export, or it cannot be
       written (disk full): the last one written stays; continue with --resume
  7    the output cannot be written (disk full, I/O error); the file is
       cut back to whole pages: with --checkpoint, continue with --resume
  9    another export of the same checkpoint or output is running; this
       one wrote nothing
  130  interrupted (Ctrl-C): the output holds whole pages; with --checkpoint,
       continue with --resume
  141  --out -: the reader of stdout closed it (as `| head` does); stopped there
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
    if isinstance(error, OutputClosedError):
        return ExitCode.READER_CLOSED
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
    except OutputClosedError as error:
        # Nothing more can reach stdout, not even the interpreter's flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        _fail(exit_code(error), "stdout was closed by its reader; stopped")
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
    if isinstance(error, AuthenticationError):
        return (
            f"{error}: check the access token (--token or COPPER_ACCESS_TOKEN) and that the "
            "email (--email or COPPER_USER_EMAIL) is of the user it belongs to"
        )
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
            # This run's records only, as the bar's rate: a resume's earlier ones took no time here.
            rate = stats.records / stats.elapsed if stats.elapsed else 0.0
            logger.info("%d records written (%.0f/s), %s", written, rate, postfix)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _open_windows(stats: SearchStats) -> int:
    return max(stats.windows_planned - stats.windows_split - stats.windows_done, 0)


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


def _credential_flags(function: Callable[..., Any]) -> Any:
    """``--token``, ``--email`` (each with its environment variable) and
    ``--allow-insecure-http``: how a command that calls Copper signs in."""
    for flag in reversed(
        (
            click.option("--token", envvar="COPPER_ACCESS_TOKEN", help="Or COPPER_ACCESS_TOKEN."),
            click.option("--email", envvar="COPPER_USER_EMAIL", help="Or COPPER_USER_EMAIL."),
            click.option(
                "--allow-insecure-http", is_flag=True, help="Allow http:// to a non-local host."
            ),
        )
    ):
        function = flag(function)
    return function


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
        click.option(
            "--format",
            "format_",
            type=click.Choice(["jsonl", "csv"]),
            default="jsonl",
            show_default=True,
            help="JSON lines (each record as served) or CSV (a column per field).",
        ),
        _search_flags,
        click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors on stderr."),
        click.option("--verbose", "-v", is_flag=True, help="Debug logging (never credentials)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


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
        query = OpportunityFilter.from_body(body)
    except InvalidInputError as error:
        _fail(ExitCode.USAGE, f"filter {source!r}: {error}")
    paging = [key for key in ("page_number", "page_size") if body.get(key) is not None]
    if paging:
        # Bodies copied from Copper's examples page: the command reads every page itself.
        logger.warning(
            "the filter's %s %s ignored: every page is read, in pages of --page-size",
            " and ".join(paging),
            "is" if len(paging) == 1 else "are",
        )
    return query


def _rate_limit(value: str) -> RateLimit | None:
    if value.lower() in ("none", "off", "0"):
        return None
    try:
        return RateLimit.parse(value)
    except InvalidInputError as error:
        _fail(ExitCode.USAGE, str(error))
