"""Benchmark: how close to the rate limit the client runs, without a single 429.

The fake server (in this process; its latency is a sleep, so it costs no CPU)
answers after 150 ms +- 50 ms and enforces a rolling limit of ``max_requests``
per ``period``; the client is given the same limit (``RateLimit(max_requests,
period)``) and its default concurrency, and streams a search for
``--duration`` seconds. Copper's 180 per 60 s would need several minutes to
show a steady state, so ``--scale K`` keeps the 180 and divides the period by
K (default 4: 180 per 15 s, a 60 s run covers four periods).

Measured over the steady state, excluding the first request: requests
answered per second divided by the limit's rate (target >= 0.97), and the
429s the server sent (target 0). Every request's send time is recorded (an
aiohttp trace on the client's session) for the plot in ``run_all.py``.

Run ``python benchmarks/bench_rate_limit.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

from copper_async import CopperClient
from copper_async._ratelimit import RateLimit
from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions

__all__ = ["main", "measure", "peak_in_window", "steady_rate"]

TARGET_RATIO = 0.97


def steady_rate(times: list[float]) -> float:
    """Requests per second over ``times`` (sorted), the first request excluded:
    the requests after the first, over the time from the first to the last."""
    if len(times) < 2 or times[-1] <= times[0]:
        return math.nan
    return (len(times) - 1) / (times[-1] - times[0])


def peak_in_window(times: list[float], period: float) -> int:
    """The most requests of ``times`` (sorted) inside any closed ``period`` window."""
    peak = 0
    for index, start in enumerate(times):
        peak = max(peak, bisect.bisect_right(times, start + period) - index)
    return peak


async def _warm_up(
    server: FakeCopperServer, *, end_at: int, page_size: int, concurrency: int
) -> None:
    """Read the whole search once, unthrottled: the fake server caches each
    window's sorted matches, so the measured run is not held up by the fake's
    own sorting (hundreds of ms per new window, in this event loop), which
    real Copper hides inside its latency."""
    async with _common.unpaced_client(server) as client:
        search = client.opportunities.search(
            raw=True, page_size=page_size, concurrency=concurrency, end_at=end_at
        )
        async with search:
            async for _ in search:
                pass


async def measure(
    *,
    max_requests: int,
    period: float,
    duration: float,
    latency: float,
    jitter: float,
    page_size: int,
    concurrency: int,
    records: int,
    seed: int,
) -> dict[str, Any]:
    """Run the search for ``duration`` seconds; the send times, statuses and counters."""
    dataset = Dataset.generate(records, seed=seed)
    gc.collect()
    gc.freeze()  # the records live to the end: keep the collector off them
    options = FakeServerOptions(
        rate_limit=(max_requests, period), latency=latency, latency_jitter=jitter, seed=seed
    )
    # Every search of the run ends here, so the warm-up asks the same queries.
    end_at = int(time.time()) + 300
    sends: list[tuple[float, int]] = []
    started: dict[int, float] = {}
    loop = asyncio.get_running_loop()

    async def on_start(
        _session: aiohttp.ClientSession, context: SimpleNamespace, _params: Any
    ) -> None:
        started[id(context)] = loop.time()

    async def on_end(
        _session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        sends.append((started.pop(id(context)), params.response.status))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    trace.on_request_end.append(on_end)
    async with FakeCopperServer(dataset, options=FakeServerOptions(seed=seed)) as server:
        await _warm_up(server, end_at=end_at, page_size=page_size, concurrency=concurrency)
        server.options = options
        server.reset_stats()
        async with (
            aiohttp.ClientSession(trace_configs=[trace]) as session,
            CopperClient(
                access_token=options.access_token,
                user_email=options.user_email,
                base_url=server.url,
                session=session,
                rate_limit=RateLimit(max_requests, period),
            ) as client,
        ):
            search = client.opportunities.search(
                raw=True, page_size=page_size, concurrency=concurrency, end_at=end_at
            )
            begin = loop.time()
            delivered = 0
            async with search:
                async for _record in search:
                    delivered += 1
                    if loop.time() - begin >= duration:
                        break
            finished = search.planner.finished
            client_429 = client.stats.rate_limited
        server_stats = server.stats
    sends.sort()
    origin = sends[0][0] if sends else 0.0
    return {
        "send_times": [round(t - origin, 4) for t, _ in sends],
        "statuses": [status for _, status in sends],
        "records": delivered,
        "search_finished": finished,
        "client_429": client_429,
        "server_429": server_stats["rate_limited"],
        "server_sent_429": server_stats["sent_429"],
        "server_requests": server_stats["requests"],
        "max_in_flight": server_stats["max_in_flight"],
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Requests/s achieved against a rolling rate limit, and 429s received, "
        "with 150 ms +- 50 ms server latency."
    )
    parser.add_argument("--max-requests", type=_common.positive_int, default=180)
    parser.add_argument("--period", type=float, default=60.0, help="the real period (60 s)")
    parser.add_argument(
        "--scale",
        type=float,
        default=4.0,
        help="divide the period by K, keeping max-requests (default 4: 180 per 15 s)",
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds to run (60)")
    parser.add_argument("--latency", type=float, default=0.15, help="server latency (0.15 s)")
    parser.add_argument("--jitter", type=float, default=0.05, help="+- uniform (0.05 s)")
    parser.add_argument("--page-size", type=_common.positive_int, default=200)
    parser.add_argument("--concurrency", type=_common.positive_int, default=4)
    parser.add_argument("--seed", type=int, default=3)
    _common.add_json_option(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a table; 0 when it ran (targets are reported, not enforced)."""
    args = _parser().parse_args(argv)
    if args.scale <= 0 or args.period <= 0 or args.duration <= 0:
        _parser().error("--scale, --period and --duration must be positive")
    period = args.period / args.scale
    limit_rate = args.max_requests / period
    # Enough records that the search outlasts the run, at most one page per request.
    records = math.ceil(limit_rate * args.duration * 1.1 + 10) * args.page_size
    try:
        result = asyncio.run(
            measure(
                max_requests=args.max_requests,
                period=period,
                duration=args.duration,
                latency=args.latency,
                jitter=args.jitter,
                page_size=args.page_size,
                concurrency=args.concurrency,
                records=records,
                seed=args.seed,
            )
        )
    finally:
        gc.unfreeze()  # measure() froze the records; let a caller's process collect them
    times = result["send_times"]
    ok_times = [t for t, s in zip(times, result["statuses"], strict=True) if s == 200]
    rate = steady_rate(ok_times)
    ratio = rate / limit_rate
    peak = peak_in_window(times, period)
    paced = RateLimit(args.max_requests, period)
    columns = ["limit", "scale", "period s", "run s", "requests", "req/s", "limit req/s"]
    columns += ["ratio", "peak/period", "429s"]
    rows = [
        [
            f"{args.max_requests}/{period:g}s",
            args.scale,
            period,
            times[-1] if times else 0.0,
            len(times),
            rate,
            limit_rate,
            ratio,
            peak,
            result["server_429"],
        ]
    ]
    checks = [
        _common.check("requests/s / limit", ratio, f">= {TARGET_RATIO}", ratio >= TARGET_RATIO),
        _common.check(
            "429s received", result["server_sent_429"], "0", not result["server_sent_429"]
        ),
    ]
    notes = [
        f"scale {args.scale:g}: {args.max_requests} requests per {period:g} s "
        f"(Copper: {args.max_requests} per {args.period:g} s); latency {args.latency:g} s "
        f"+- {args.jitter:g} s; concurrency {args.concurrency}; page size {args.page_size}.",
        f"The client paces one send every {paced.interval * 1000:.1f} ms, by design "
        f"{paced.sustained_fraction:.4f} of the limit (see RateLimit).",
        "Steady state: requests answered 200 after the first, over the time from the first "
        "send to the last. The fake server runs in this loop; one unthrottled warm-up search "
        "fills its cache of sorted window queries first, so its own sorting does not stall "
        "the measured run.",
    ]
    if result["search_finished"]:
        notes.append("The search finished before --duration: the run is shorter.")
    print(notes[0])
    _common.print_table(columns, rows)
    _common.print_checks(checks)
    config = {
        "max_requests": args.max_requests,
        "period": period,
        "real_period": args.period,
        "scale": args.scale,
        "duration": args.duration,
        "latency": args.latency,
        "jitter": args.jitter,
        "page_size": args.page_size,
        "concurrency": args.concurrency,
        "records": records,
    }
    payload = _common.result_payload(
        "rate_limit",
        "Rate-limit saturation",
        config=config,
        columns=columns,
        rows=rows,
        checks=checks,
        notes=notes,
        series={"send_times": times, "statuses": result["statuses"]},
        counters={k: v for k, v in result.items() if k not in ("send_times", "statuses")},
    )
    _common.write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
