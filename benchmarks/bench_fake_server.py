"""Benchmark: the embedded fake Copper server's own costs.

The server must never be the bottleneck of a client benchmark. This measures,
in one process over loopback with a plain aiohttp client:

- ready time: generating N records and starting the server;
- resident memory once ready (and its growth over the interpreter's start);
- the first page of a new query (nothing cached): a date_created window of
  about a tenth of the records sorted by date_created (what the streaming
  client asks for), and a full sort by name (the slowest path);
- further pages of the same query: mean, p99 and max of the server's own
  time (the ``busy_seconds`` counter, so client and socket costs are left
  out), the mean round trip beside it, and how many full (generation 2)
  garbage collections fell in the pass. With a million records a full
  collection takes a large fraction of a second, so the pass is run twice:
  as is, then after ``gc.freeze()`` (what ``copper-async fake-server`` does
  once its records are loaded).

Run ``python benchmarks/bench_fake_server.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil  # type: ignore[import-untyped]

from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions

__all__ = ["main", "measure"]

_AUTH = {"X-PW-Application": "developer_api"}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


async def _page(
    session: aiohttp.ClientSession, server: FakeCopperServer, body: dict[str, Any]
) -> tuple[float, float]:
    """(server seconds, round-trip seconds) of one request."""
    busy = server.stats["busy_seconds"]
    started = time.perf_counter()
    async with session.post(server.url + "/opportunities/search", data=orjson.dumps(body)) as r:
        payload = await r.read()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {payload[:200]!r}")
    round_trip = time.perf_counter() - started
    return server.stats["busy_seconds"] - busy, round_trip


async def measure(records: int, *, pages: int, page_size: int, seed: int) -> dict[str, Any]:
    """Run every measurement; return the figures (seconds, bytes)."""
    process = psutil.Process()
    rss_start = process.memory_info().rss
    started = time.perf_counter()
    dataset = Dataset.generate(records, seed=seed)
    options = FakeServerOptions()
    async with FakeCopperServer(dataset, options=options) as server:
        ready = time.perf_counter() - started
        rss_ready = process.memory_info().rss
        headers = {
            **_AUTH,
            "X-PW-AccessToken": options.access_token,
            "X-PW-UserEmail": options.user_email,
        }
        # A window of about a tenth of the records (at most the cap), mid-range.
        by_created = dataset.search(_query({"sort_by": "date_created"}))
        size = max(min(records // 10, options.cap), 1)
        first = min(len(by_created) // 2, len(by_created) - size)
        lo = dataset.record(by_created[first])["date_created"]
        hi = dataset.record(by_created[first + size - 1])["date_created"]
        window_body = {
            "sort_by": "date_created",
            "page_size": page_size,
            "minimum_created_date": lo,
            "maximum_created_date": hi,
        }
        name_body = {"sort_by": "name", "page_size": page_size, "sort_direction": "desc"}
        async with aiohttp.ClientSession(headers=headers) as session:
            await _page(session, server, {"page_size": 1, "ids": [1]})  # warm the connection
            first_window = await _page(session, server, window_body)
            first_name = await _page(session, server, name_body)
            matches = len(dataset.search(_query(window_body)))
            last_page = max(min(matches, options.cap) // page_size, 2)
            numbers = [2 + (i * (last_page - 2)) // max(pages - 1, 1) for i in range(pages)]
            bodies = [{**window_body, "page_number": n} for n in numbers]
            plain = await _pass(session, server, bodies)
            gc.collect()
            gc.freeze()
            try:
                frozen = await _pass(session, server, bodies)
            finally:
                gc.unfreeze()
    return {
        "records": records,
        "page_size": page_size,
        "window_matches": matches,
        "ready_seconds": ready,
        "rss_bytes": rss_ready,
        "rss_growth_bytes": rss_ready - rss_start,
        "first_page_window_server_seconds": first_window[0],
        "first_page_window_round_trip_seconds": first_window[1],
        "first_page_name_sort_server_seconds": first_name[0],
        "first_page_name_sort_round_trip_seconds": first_name[1],
        "further_pages": len(bodies),
        "further": plain,
        "further_gc_frozen": frozen,
    }


async def _pass(
    session: aiohttp.ClientSession, server: FakeCopperServer, bodies: list[dict[str, Any]]
) -> dict[str, float]:
    """Time one request per body; summarise the server times and full collections."""
    full_collections = 0

    def count(phase: str, info: dict[str, Any]) -> None:
        nonlocal full_collections
        if phase == "stop" and info["generation"] == 2:
            full_collections += 1

    gc.callbacks.append(count)
    try:
        timed = [await _page(session, server, body) for body in bodies]
    finally:
        gc.callbacks.remove(count)
    server_times = [s for s, _ in timed]
    return {
        "server_mean_seconds": statistics.fmean(server_times),
        "server_p99_seconds": _percentile(server_times, 0.99),
        "server_max_seconds": max(server_times),
        "round_trip_mean_seconds": statistics.fmean(r for _, r in timed),
        "full_collections": full_collections,
    }


def _query(body: dict[str, Any]) -> Any:
    from copper_async.testing import parse_search_body

    return parse_search_body(body)[0]


def _table(results: dict[str, Any]) -> list[str]:
    ms = 1000.0
    rows = [
        ("records", f"{results['records']:,}"),
        ("ready (generate + start)", f"{results['ready_seconds']:.2f} s"),
        (
            "RSS when ready",
            f"{results['rss_bytes'] / 2**20:,.0f} MiB "
            f"(+{results['rss_growth_bytes'] / 2**20:,.0f} MiB)",
        ),
        (
            f"first page, date window ({results['window_matches']:,} matches)",
            f"{results['first_page_window_server_seconds'] * ms:.1f} ms server, "
            f"{results['first_page_window_round_trip_seconds'] * ms:.1f} ms round trip",
        ),
        (
            "first page, full sort by name",
            f"{results['first_page_name_sort_server_seconds'] * ms:.1f} ms server, "
            f"{results['first_page_name_sort_round_trip_seconds'] * ms:.1f} ms round trip",
        ),
    ]
    for key, label in (("further", "as is"), ("further_gc_frozen", "after gc.freeze()")):
        run = results[key]
        rows += [
            (
                f"further pages of {results['page_size']} (n={results['further_pages']}, "
                f"{label}), mean",
                f"{run['server_mean_seconds'] * ms:.3f} ms server, "
                f"{run['round_trip_mean_seconds'] * ms:.3f} ms round trip",
            ),
            (
                "  p99 / max server",
                f"{run['server_p99_seconds'] * ms:.3f} ms / {run['server_max_seconds'] * ms:.1f} ms"
                f" ({run['full_collections']} full GC)",
            ),
        ]
    width = max(len(name) for name, _ in rows)
    return [f"{name:<{width}}  {value}" for name, value in rows]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Measure the fake Copper server: ready time, memory, first and further "
        "page costs, over loopback in one process."
    )
    parser.add_argument(
        "--records", type=int, default=1_000_000, metavar="N", help="records (default 1,000,000)"
    )
    parser.add_argument("--pages", type=int, default=200, help="further pages to time")
    parser.add_argument(
        "--page-size", type=int, default=200, choices=range(1, 201), metavar="1-200"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table (and write JSON when asked). Returns 0."""
    args = _parser().parse_args(argv)
    if args.records < 1 or args.pages < 1:
        _parser().error("--records and --pages must be at least 1")
    results = asyncio.run(
        measure(args.records, pages=args.pages, page_size=args.page_size, seed=args.seed)
    )
    for line in _table(results):
        print(line)
    if args.json is not None:
        payload = {
            "benchmark": "fake_server",
            "python": platform.python_version(),
            "aiohttp": importlib.metadata.version("aiohttp"),
            "platform": platform.platform(),
            **results,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
