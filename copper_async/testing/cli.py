"""``copper-async fake-server``: the embedded fake Copper server from a shell.

The command serves generated records (``--generate N --seed S``, with
``--hot-spot SECOND:COUNT`` bulk imports) or a JSON lines file
(``--records FILE``), prints the base URL and the credentials it accepts,
and runs until SIGINT or SIGTERM, then shuts down cleanly. Every
:class:`~copper_async.testing.server.FakeServerOptions` has a flag.
Heavy imports wait until the command runs, so ``copper-async --help`` stays
fast.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from copper_async.exceptions import InvalidOptionError

if TYPE_CHECKING:
    from copper_async.testing.dataset import Dataset, HotSpot
    from copper_async.testing.server import FakeServerOptions

__all__ = ["build_options", "fake_server", "load_dataset", "parse_hot_spot", "parse_rate_limit"]

DEFAULT_GENERATE = 10_000

#: Flag name -> fault kind (``--fault-500 RATE`` ...).
_FAULT_FLAGS: Mapping[str, str] = {
    "fault_500": "500",
    "fault_502": "502",
    "fault_503": "503",
    "fault_reset": "reset",
    "fault_stall": "stall",
    "fault_truncated": "truncated",
    "fault_non_json": "non_json",
}


def parse_rate_limit(text: str) -> tuple[int, float]:
    """``"180/60"`` -> ``(180, 60.0)``: max requests per rolling period in seconds."""
    count, slash, period = text.partition("/")
    try:
        if not slash:
            raise ValueError(text)
        return int(count), float(period)
    except ValueError:
        raise InvalidOptionError(
            "rate_limit", f"expected MAX_REQUESTS/SECONDS like 180/60, not {text!r}"
        ) from None


def parse_hot_spot(text: str) -> HotSpot:
    """``"SECOND:COUNT"`` -> a :class:`HotSpot` of COUNT records created in that Unix second."""
    from copper_async.testing.dataset import HotSpot

    second, colon, count = text.partition(":")
    try:
        if not colon:
            raise ValueError(text)
        created, how_many = int(second), int(count)
    except ValueError:
        raise InvalidOptionError(
            "hot_spot", f"expected SECOND:COUNT like 1600000000:150000, not {text!r}"
        ) from None
    if created < 0 or how_many < 1:
        raise InvalidOptionError("hot_spot", f"needs SECOND >= 0 and COUNT >= 1, not {text!r}")
    return HotSpot(created=created, count=how_many)


def build_options(flags: Mapping[str, Any]) -> FakeServerOptions:
    """The server options the command's flags describe (validated)."""
    from copper_async.testing.server import FakeServerOptions

    rate_limit = flags.get("rate_limit")
    fault_rates = {
        kind: flags[flag] for flag, kind in _FAULT_FLAGS.items() if flags.get(flag) is not None
    }
    return FakeServerOptions(
        access_token=flags.get("token", "fake-token"),
        user_email=flags.get("email", "fake@example.com"),
        cap=flags.get("cap", 100_000),
        past_cap=flags.get("past_cap", "empty"),
        total_mode=flags.get("total_mode", "exact"),
        rate_limit=parse_rate_limit(rate_limit) if rate_limit else None,
        retry_after=flags.get("retry_after", False),
        fault_rates=fault_rates,
        burst_429_rate=flags.get("burst_429_rate", 0.0),
        burst_429_length=flags.get("burst_429_length", 3),
        stall_seconds=flags.get("stall_seconds", 60.0),
        latency=flags.get("latency", 0.0),
        latency_jitter=flags.get("latency_jitter", 0.0),
        drift_insert_rate=flags.get("drift_insert", 0.0),
        drift_delete_rate=flags.get("drift_delete", 0.0),
        drift_modify_rate=flags.get("drift_modify", 0.0),
        drift_per=flags.get("drift_per", "request"),
        seed=flags.get("seed", 0),
    )


def load_dataset(
    *,
    generate: int | None,
    records: Path | None,
    seed: int = 0,
    hot_spots: Sequence[str] = (),
) -> Dataset:
    """The records to serve: a JSON lines file, or ``generate`` generated ones
    (:data:`DEFAULT_GENERATE` when neither is given)."""
    from copper_async.testing.dataset import Dataset

    if records is not None:
        if generate is not None or hot_spots:
            raise InvalidOptionError(
                "records", "give either --records or --generate/--hot-spot, not both"
            )
        try:
            return Dataset.load_jsonl(records)
        except (OSError, ValueError) as error:
            raise InvalidOptionError("records", f"cannot load {str(records)!r}: {error}") from None
    spots = [parse_hot_spot(text) for text in hot_spots]
    count = DEFAULT_GENERATE if generate is None else generate
    return Dataset.generate(count, seed=seed, hot_spots=spots)


def _rate(flag: str, what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(flag, type=click.FloatRange(0, 1), default=None, metavar="RATE", help=what)


@click.command("fake-server", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Port (default: any free port)."
)
@click.option(
    "--generate",
    type=click.IntRange(0),
    default=None,
    metavar="N",
    help=f"Serve N generated records (default {DEFAULT_GENERATE:,}).",
)
@click.option(
    "--records",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Serve the records of a JSON lines file instead.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the records and faults."
)
@click.option(
    "--hot-spot",
    "hot_spots",
    multiple=True,
    metavar="SECOND:COUNT",
    help="Also generate COUNT records created in one Unix second (repeatable).",
)
@click.option(
    "--cap",
    type=click.IntRange(1),
    default=100_000,
    show_default=True,
    help="No record past the first CAP of a sorted result is served.",
)
@click.option(
    "--past-cap",
    type=click.Choice(["empty", "error"]),
    default="empty",
    show_default=True,
    help="A page past the cap: an empty array or a 422.",
)
@click.option(
    "--total-mode",
    type=click.Choice(["exact", "overcount", "capped", "absent"]),
    default="exact",
    show_default=True,
    help="What X-PW-TOTAL carries.",
)
@click.option(
    "--rate-limit", default=None, metavar="N/SECONDS", help="Rolling rate limit, e.g. 180/60."
)
@click.option("--retry-after/--no-retry-after", default=False, help="Send Retry-After on 429s.")
@_rate("--fault-500", "Chance of a 500 answer per request.")
@_rate("--fault-502", "Chance of a 502 answer.")
@_rate("--fault-503", "Chance of a 503 answer.")
@_rate("--fault-reset", "Chance of a connection reset.")
@_rate("--fault-stall", "Chance of a stalled answer (see --stall-seconds).")
@_rate("--fault-truncated", "Chance of a body cut short.")
@_rate("--fault-non-json", "Chance of a 200 with an HTML body.")
@click.option(
    "--stall-seconds",
    type=click.FloatRange(0),
    default=60.0,
    show_default=True,
    help="How long a stalled answer waits.",
)
@click.option(
    "--burst-429-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    metavar="RATE",
    help="Chance per request that a burst of 429s starts.",
)
@click.option(
    "--burst-429-length",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="Consecutive 429s in a burst.",
)
@click.option("--latency", type=click.FloatRange(0), default=0.0, help="Seconds per answer.")
@click.option("--latency-jitter", type=click.FloatRange(0), default=0.0, help="+- seconds.")
@click.option(
    "--drift-insert",
    type=click.FloatRange(0),
    default=0.0,
    metavar="RATE",
    help="Records inserted per request (or second), on average.",
)
@click.option(
    "--drift-delete", type=click.FloatRange(0), default=0.0, metavar="RATE", help="Deleted."
)
@click.option(
    "--drift-modify", type=click.FloatRange(0), default=0.0, metavar="RATE", help="Modified."
)
@click.option(
    "--drift-per",
    type=click.Choice(["request", "second"]),
    default="request",
    show_default=True,
    help="Drift rates are edits per served request or per second.",
)
@click.option("--token", default="fake-token", show_default=True, help="Accepted access token.")
@click.option("--email", default="fake@example.com", show_default=True, help="Accepted email.")
def fake_server(**flags: Any) -> None:
    """Serve Copper's opportunity search on loopback, from generated or given records.

    Prints the base URL and the token and email it accepts, then serves until
    interrupted (Ctrl-C or SIGTERM).
    """
    try:
        options = build_options(flags)
        dataset = load_dataset(
            generate=flags["generate"],
            records=flags["records"],
            seed=flags["seed"],
            hot_spots=flags["hot_spots"],
        )
    except InvalidOptionError as error:
        raise click.UsageError(str(error)) from None
    # The records live as long as the process: keep full garbage collections
    # (hundreds of ms with a million records) from walking them mid-request.
    gc.collect()
    gc.freeze()
    try:
        asyncio.run(_serve(dataset, options, host=flags["host"], port=flags["port"]))
    except OSError as error:
        raise click.ClickException(
            f"cannot serve on {flags['host']}:{flags['port']}: {error}"
        ) from None


async def _serve(dataset: Dataset, options: FakeServerOptions, *, host: str, port: int) -> None:
    from copper_async.testing.server import FakeCopperServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            pass
    try:
        async with FakeCopperServer(dataset, options=options, host=host, port=port) as server:
            click.echo(f"fake Copper server: {server.url}")
            click.echo(f"records:            {len(dataset)}")
            click.echo(f"X-PW-AccessToken:   {options.access_token}")
            click.echo(f"X-PW-UserEmail:     {options.user_email}")
            click.echo("serving; Ctrl-C to stop")
            sys.stdout.flush()
            await stop.wait()
            stats = server.stats
        click.echo(f"stopped after {stats['requests']} requests")
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
