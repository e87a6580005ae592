"""``copper-async fake-server``: the embedded fake Copper search server from a shell.

It serves generated records (``--generate N --seed S``, with
``--hot-spot SECOND:COUNT[:SPREAD]`` bulk imports) or a JSON lines file
(``--records FILE``), with a flag for every
:class:`~copper_async.testing._server.FakeServerOptions` field (its ``seed``
is ``--play-seed``, or ``--seed`` when that is not given, so faults can vary
over the same records); prints the
base URL and the headers it requires; serves until SIGINT or SIGTERM and
then shuts down cleanly (exit 0). A bad flag is one ``Error:`` line on
stderr and exit 2.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeVar, get_args

import click

from copper_async._ratelimit import RateLimit
from copper_async.exceptions import InvalidOptionError
from copper_async.testing._answers import APPLICATION
from copper_async.testing._dataset import Dataset, HotSpot
from copper_async.testing._faults import FAULT_KINDS
from copper_async.testing._options import CustomDates, DriftUnit, PastCap, Ties, TotalMode
from copper_async.testing._server import FakeCopperServer, FakeServerOptions

__all__ = [
    "build_options",
    "fake_server",
    "load_dataset",
    "parse_fault",
    "parse_hot_spot",
    "serve_until_stopped",
]

# The command's parameters that are not server options.
_NOT_OPTIONS = frozenset(
    {"host", "port", "generate", "records", "hot_spots", "token", "email", "seed", "play_seed"}
)


def parse_fault(text: str) -> tuple[str, float]:
    """``"503=0.02"`` -> ``("503", 0.02)``: a kind of :data:`FAULT_KINDS` and its rate."""
    kind, equals, rate_text = text.partition("=")
    if not equals or kind not in FAULT_KINDS:
        raise InvalidOptionError(
            "fault", f"expected KIND=RATE with KIND one of {', '.join(FAULT_KINDS)}, not {text!r}"
        )
    try:
        rate = float(rate_text)
    except ValueError:
        raise InvalidOptionError("fault", f"the rate in {text!r} is not a number") from None
    if not 0 <= rate <= 1:
        raise InvalidOptionError("fault", f"the rate in {text!r} must be from 0 to 1")
    return kind, rate


def parse_hot_spot(text: str) -> HotSpot:
    """``"SECOND:COUNT"`` (or ``"SECOND:COUNT:SPREAD"``) -> a :class:`HotSpot`:
    COUNT records created in one Unix second, modified over SPREAD seconds."""
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError(text)
        numbers = [int(part) for part in parts]
    except ValueError:
        raise InvalidOptionError(
            "hot_spot", f"expected SECOND:COUNT[:SPREAD] like 1600000000:150000, not {text!r}"
        ) from None
    if numbers[0] < 0 or numbers[1] < 1 or (len(numbers) == 3 and numbers[2] < 0):
        raise InvalidOptionError(
            "hot_spot", f"needs SECOND >= 0, COUNT >= 1 and SPREAD >= 0, not {text!r}"
        )
    return HotSpot(*numbers)


def build_options(params: Mapping[str, Any]) -> FakeServerOptions:
    """The server options the command's parsed parameters describe (validated).

    The play's seed is ``play_seed``, or the records' ``seed`` when it is None.
    """
    play = {key: value for key, value in params.items() if key not in _NOT_OPTIONS}
    seed = params["play_seed"] if params.get("play_seed") is not None else params["seed"]
    return FakeServerOptions(
        access_token=params["token"], user_email=params["email"], seed=seed, **play
    )


def load_dataset(
    *, generate: int | None, records: Path | None, seed: int, hot_spots: Sequence[HotSpot] = ()
) -> Dataset:
    """The records to serve: exactly one of ``generate`` (a count) or ``records`` (a file)."""
    if records is None:
        if generate is None:
            raise InvalidOptionError("records", "give one of --generate N or --records FILE")
        return Dataset.generate(generate, seed=seed, hot_spots=hot_spots)
    if generate is not None:
        raise InvalidOptionError("records", "give --generate N or --records FILE, not both")
    if hot_spots:
        raise InvalidOptionError("hot_spot", "--hot-spot goes with --generate, not --records")
    try:
        return Dataset.load_jsonl(records)
    except (OSError, ValueError, KeyError, TypeError) as error:
        # ValueError covers bad JSON and duplicate ids; KeyError/TypeError a line
        # that is not a record object with an id.
        reason = f"{type(error).__name__}: {error}"
        raise InvalidOptionError("records", f"cannot load {str(records)!r}: {reason}") from None


async def serve_until_stopped(
    dataset: Dataset,
    options: FakeServerOptions,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    out: TextIO | None = None,
    stop: asyncio.Event | None = None,
) -> dict[str, Any]:
    """Serve until SIGINT/SIGTERM (or ``stop`` is set); return the final stats.

    The first line printed is the base URL; then the token and email accepted.
    """
    stop = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
            pass
    try:
        async with FakeCopperServer(dataset, options=options, host=host, port=port) as server:
            lines = (
                f"fake Copper server: {server.url}",
                f"X-PW-AccessToken: {options.access_token}",
                f"X-PW-UserEmail: {options.user_email}",
                # On the last line, so that the lines before keep their places.
                f"records: {len(dataset)}; every route (/_fake/* too) also needs "
                f"X-PW-Application: {APPLICATION}; serving until SIGINT or SIGTERM",
            )
            for line in lines:
                click.echo(line, file=out)
            # A parent process reads these lines through a pipe: send them now.
            (out if out is not None else sys.stdout).flush()
            await stop.wait()
            stats = server.stats
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
    click.echo(f"stopped after {stats['requests']} requests", file=out)
    return stats


class _OneLineErrors(click.Command):
    """Usage errors as a single ``Error:`` line (no usage block), exit 2."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:
            error.ctx = None
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            error.ctx = None
            raise


def _rate_limit(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        limit = RateLimit.parse(value)
    except InvalidOptionError as error:
        raise click.BadParameter(error.reason) from None
    return (limit.max_requests, limit.period)


def _faults(_ctx: click.Context, _param: click.Parameter, values: Sequence[str]) -> Any:
    rates: dict[str, float] = {}
    for text in values:
        try:
            kind, rate = parse_fault(text)
        except InvalidOptionError as error:
            raise click.BadParameter(error.reason) from None
        if kind in rates:
            raise click.BadParameter(f"fault {kind!r} given twice")
        rates[kind] = rate
    return rates


def _hot_spots(_ctx: click.Context, _param: click.Parameter, values: Sequence[str]) -> Any:
    try:
        return [parse_hot_spot(text) for text in values]
    except InvalidOptionError as error:
        raise click.BadParameter(error.reason) from None


_RATE = click.FloatRange(0, 1)
_SECONDS = click.FloatRange(0)
_F = TypeVar("_F", bound=Callable[..., Any])


def _choice(flag: str, kind: Any, help: str) -> Callable[[_F], _F]:
    """A flag taking the values of the option's ``Literal`` type; the first is its default."""
    values = get_args(kind)
    return click.option(
        flag, type=click.Choice(values), default=values[0], show_default=True, help=help
    )


@click.command(
    "fake-server", cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port; 0 picks a free one (the URL printed shows it).",
)
@click.option("--generate", type=click.IntRange(0), metavar="N", help="Serve N generated records.")
@click.option(
    "--records",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE.jsonl",
    help="Serve the records of a JSON lines file instead.",
)
@click.option(
    "--hot-spot",
    "hot_spots",
    multiple=True,
    metavar="SECOND:COUNT[:SPREAD]",
    callback=_hot_spots,
    help=(
        "Also generate COUNT records created in that Unix second, modified over SPREAD "
        "seconds after it (default 86400; repeatable)."
    ),
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the generated records, and of the play unless --play-seed is given.",
)
@click.option(
    "--play-seed",
    type=int,
    help="Seed of the faults, 429 bursts, latency, drift, overcount and per-request ties "
    "(default: --seed).",
)
@click.option("--cap", type=click.IntRange(1, 2**31), default=100_000, show_default=True)
@_choice("--past-cap", PastCap, "A page past the cap: an empty array or a 422.")
@_choice("--total-mode", TotalMode, "What X-PW-TOTAL carries.")
@_choice(
    "--ties",
    Ties,
    "Order of records with equal sort values: by id, each query its own, "
    "or each request its own (drawn from the play seed).",
)
@_choice("--custom-dates", CustomDates, "Date custom fields as Unix seconds or M/D/YYYY text.")
@click.option(
    "--rate-limit",
    metavar="N/SECONDS",
    callback=_rate_limit,
    help="Rolling per-token rate limit, e.g. 180/60 (default: none).",
)
@click.option("--retry-after", is_flag=True, help="Send Retry-After with 429s.")
@click.option(
    "--fault",
    "fault_rates",
    multiple=True,
    metavar="KIND=RATE",
    callback=_faults,
    help=f"Chance per request of a fault; KIND: {', '.join(FAULT_KINDS)} (repeatable).",
)
@click.option("--burst-429-rate", type=_RATE, default=0.0, help="Chance a burst of 429s starts.")
@click.option("--burst-429-length", type=click.IntRange(1, 10_000), default=3, show_default=True)
@click.option("--stall-seconds", type=_SECONDS, default=60.0, show_default=True)
@click.option("--latency", type=_SECONDS, default=0.0, help="Seconds before each answer.")
@click.option("--latency-jitter", type=_SECONDS, default=0.0, help="Uniform +- seconds.")
@click.option("--drift-insert-rate", type=_SECONDS, default=0.0, help="Inserts per unit.")
@click.option("--drift-delete-rate", type=_SECONDS, default=0.0, help="Deletes per unit.")
@click.option("--drift-modify-rate", type=_SECONDS, default=0.0, help="Modifies per unit.")
@_choice("--drift-per", DriftUnit, "The unit of the drift rates.")
@click.option("--token", default="fake-token", show_default=True, help="Accepted access token.")
@click.option("--email", default="fake@example.com", show_default=True, help="Accepted email.")
def fake_server(**params: Any) -> None:
    """Serve Copper's opportunity search on loopback, from generated or given records."""
    host, port = params["host"], params["port"]
    try:
        options = build_options(params)
        dataset = load_dataset(
            generate=params["generate"],
            records=params["records"],
            seed=params["seed"],
            hot_spots=params["hot_spots"],
        )
    except InvalidOptionError as error:
        raise click.UsageError(str(error)) from None
    # The records live as long as the process: keep full collections (hundreds
    # of ms over a million records) from walking them mid-request.
    gc.collect()
    gc.freeze()
    try:
        asyncio.run(serve_until_stopped(dataset, options, host=host, port=port))
    except OSError as error:
        raise click.ClickException(f"cannot serve on {host}:{port}: {error}") from None
