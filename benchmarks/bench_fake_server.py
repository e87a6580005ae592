"""Benchmark: is the embedded fake Copper server fast enough never to be the bottleneck?

Measured, with the targets beside them:

- ready: generating ``--records`` records (target < 30 s);
- resident memory once ready (target < 3 GB);
- the first page of a NEW query (nothing cached), wall time of one real
  request over loopback, the search included (target < 1 s): a
  ``date_created`` window of up to the cap's 100,000 records sorted by
  ``date_created`` (what the streaming client asks), and a generic filter
  (statuses + a custom field) sorted by name, the slowest path, and the same
  filter inside the window (what the client sends for a filtered export);
  and the shapes that sort (nearly) every record on a column with no index:
  a date range covering every record sorted by name (the range is the
  smallest candidate set, but not in the sort's order), and a full sort by
  ``company_name`` and by ``monetary_value`` (descending);
- each further page of the same query: the server's own work, timed
  directly, as the handler does it: ``dataset.search(query)`` (cached) +
  the slice + ``encode_page`` of 200 records; mean and p99 over
  ``--pages`` pages spread over the result (target < 5 ms). The mean
  loopback round trip of the same pages (an aiohttp client in the same
  process, so its own cost is in it) is shown for reference.

As ``copper-async fake-server`` does once its records are loaded, the
records are moved out of the garbage collector's reach (``gc.freeze()``):
a full collection over a million live records takes a large fraction of a
second and would land in some request.

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

from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions, parse_search_body

__all__ = ["TARGETS", "main", "measure"]

#: Figure -> (limit, unit) the figure must stay under.
TARGETS: dict[str, tuple[float, str]] = {
    "ready_seconds": (30.0, "s"),
    "rss_bytes": (3e9, "B"),
    "first_page_window_seconds": (1.0, "s"),
    "first_page_filter_seconds": (1.0, "s"),
    "first_page_filtered_window_seconds": (1.0, "s"),
    "first_page_wide_range_seconds": (1.0, "s"),
    "first_page_company_sort_seconds": (1.0, "s"),
    "first_page_value_sort_seconds": (1.0, "s"),
    "further_window_mean_seconds": (0.005, "s"),
    "further_window_p99_seconds": (0.005, "s"),
    "further_filter_mean_seconds": (0.005, "s"),
    "further_filter_p99_seconds": (0.005, "s"),
}
WINDOW = 100_000  # the search cap: the largest window the streaming client reads
PAGE_SIZE = 200


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(math.ceil(fraction * len(ordered)) - 1, 0))]


def _bodies(dataset: Dataset) -> tuple[dict[str, Any], dict[str, Any]]:
    """The queries: a mid-range created window of up to WINDOW records, and a filter."""
    index = dataset.search(parse_search_body({"sort_by": "date_created"})[0])
    size = max(min(WINDOW, len(index) // 2), 1)
    first = (len(index) - size) // 2
    low = dataset.record(index[first])["date_created"]
    high = dataset.record(index[first + size - 1])["date_created"]
    window = {
        "sort_by": "date_created",
        "minimum_created_date": low,
        "maximum_created_date": high,
    }
    generic = {
        "sort_by": "name",
        "statuses": ["Open", "Won"],
        "custom_fields": [{"custom_field_definition_id": 12, "value": [8], "option": "ANY"}],
    }
    return window, generic


#: Name -> a body whose first page sorts (nearly) every record on a column with no
#: index. Each sorts a different column, so none finds another's kept order.
SORT_BODIES: dict[str, dict[str, Any]] = {
    "wide_range": {"minimum_modified_date": 0, "sort_by": "name"},
    "company_sort": {"sort_by": "company_name"},
    "value_sort": {"sort_by": "monetary_value", "sort_direction": "desc"},
}


async def _first_page(
    session: aiohttp.ClientSession, server: FakeCopperServer, body: dict[str, Any]
) -> float:
    """Wall seconds of one request of a query nothing has cached yet."""
    started = time.perf_counter()
    async with session.post(
        server.url + "/opportunities/search", data=orjson.dumps({**body, "page_size": PAGE_SIZE})
    ) as response:
        payload = await response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {payload[:200]!r}")
    return time.perf_counter() - started


def _further_pages(dataset: Dataset, body: dict[str, Any], pages: int) -> list[float]:
    """Server seconds per page (pages 2 and on, spread over the result): what the
    handler does for a page of an already-searched query."""
    query = parse_search_body(body)[0]
    matches = len(dataset.search(query))
    last = max(math.ceil(min(matches, WINDOW) / PAGE_SIZE), 2)
    times = []
    for i in range(pages):
        number = 2 + (i * (last - 2)) // max(pages - 1, 1)
        started = time.perf_counter()
        ids = dataset.search(query)
        start = (number - 1) * PAGE_SIZE
        dataset.encode_page(ids[start : start + PAGE_SIZE])
        times.append(time.perf_counter() - started)
    return times


async def _round_trips(
    session: aiohttp.ClientSession, server: FakeCopperServer, body: dict[str, Any], pages: int
) -> float:
    """Mean loopback round trip of further pages (client included)."""
    times = []
    for i in range(pages):
        started = time.perf_counter()
        page = {**body, "page_size": PAGE_SIZE, "page_number": 2 + i % 100}
        async with session.post(server.url + "/opportunities/search", json=page) as response:
            await response.read()
        times.append(time.perf_counter() - started)
    return statistics.fmean(times)


async def measure(records: int, *, seed: int = 1, pages: int = 500) -> dict[str, Any]:
    """Every figure (seconds, bytes), keyed as in :data:`TARGETS` plus a few more."""
    process = psutil.Process()
    started = time.perf_counter()
    dataset = Dataset.generate(records, seed=seed)
    ready = time.perf_counter() - started
    gc.collect()
    gc.freeze()
    try:
        results: dict[str, Any] = {
            "records": records,
            "ready_seconds": ready,
            "rss_bytes": process.memory_info().rss,
        }
        window, generic = _bodies(dataset)
        options = FakeServerOptions()
        headers = {
            "X-PW-AccessToken": options.access_token,
            "X-PW-UserEmail": options.user_email,
            "X-PW-Application": "developer_api",
        }
        async with (
            FakeCopperServer(dataset, options=options) as server,
            aiohttp.ClientSession(headers=headers) as session,
        ):
            await _first_page(session, server, {"ids": [1]})  # open the connection
            # What the streaming client sends for a filtered export: filter + window.
            filtered = {**generic, **window}
            results["first_page_filtered_window_seconds"] = await _first_page(
                session, server, filtered
            )
            results["filtered_window_matches"] = len(dataset.search(parse_search_body(filtered)[0]))
            for name, body in (("window", window), ("filter", generic)):
                results[f"first_page_{name}_seconds"] = await _first_page(session, server, body)
                results[f"{name}_matches"] = len(dataset.search(parse_search_body(body)[0]))
                times = _further_pages(dataset, body, pages)
                results[f"further_{name}_mean_seconds"] = statistics.fmean(times)
                results[f"further_{name}_p99_seconds"] = _percentile(times, 0.99)
                results[f"further_{name}_max_seconds"] = max(times)
                results[f"round_trip_{name}_mean_seconds"] = await _round_trips(
                    session, server, body, min(pages, 200)
                )
            for name, body in SORT_BODIES.items():
                results[f"first_page_{name}_seconds"] = await _first_page(session, server, body)
                results[f"{name}_matches"] = len(dataset.search(parse_search_body(body)[0]))
        results["rss_peak_bytes"] = max(results["rss_bytes"], process.memory_info().rss)
        results["pages"] = pages
        return results
    finally:
        gc.unfreeze()


def _show(value: float, unit: str) -> str:
    if unit == "B":
        return f"{value / 2**20:,.0f} MiB"
    return f"{value * 1000:,.2f} ms" if value < 1 else f"{value:,.2f} s"


def _table(results: dict[str, Any]) -> list[str]:
    labels = {
        "ready_seconds": f"ready: generate {results['records']:,} records",
        "rss_bytes": "RSS when ready",
        "first_page_window_seconds": (
            f"first page, created window ({results['window_matches']:,} matches)"
        ),
        "first_page_filter_seconds": (
            f"first page, statuses + custom field by name ({results['filter_matches']:,})"
        ),
        "first_page_filtered_window_seconds": (
            f"first page, the same in the window ({results['filtered_window_matches']:,})"
        ),
        "first_page_wide_range_seconds": (
            f"first page, modified >= 0 by name ({results['wide_range_matches']:,})"
        ),
        "first_page_company_sort_seconds": (
            f"first page, every record by company ({results['company_sort_matches']:,})"
        ),
        "first_page_value_sort_seconds": (
            f"first page, every record by value desc ({results['value_sort_matches']:,})"
        ),
        "further_window_mean_seconds": f"further pages, window (n={results['pages']}), mean",
        "further_window_p99_seconds": "further pages, window, p99",
        "further_filter_mean_seconds": "further pages, filter, mean",
        "further_filter_p99_seconds": "further pages, filter, p99",
    }
    rows = [("figure", "measured", "target", "")]
    for key, (limit, unit) in TARGETS.items():
        ok = results[key] < limit
        rows.append(
            (
                labels[key],
                _show(results[key], unit),
                f"< {_show(limit, unit)}",
                "ok" if ok else "MISSED",
            )
        )
    for name in ("window", "filter"):
        rows.append(
            (
                f"(loopback round trip, {name}, mean)",
                _show(results[f"round_trip_{name}_mean_seconds"], "s"),
                "",
                "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [
        f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:<{widths[2]}}  {d}".rstrip() for a, b, c, d in rows
    ]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Measure the fake Copper server against its speed targets."
    )
    parser.add_argument(
        "--records", type=int, default=1_000_000, metavar="N", help="records (default 1,000,000)"
    )
    parser.add_argument("--seed", type=int, default=1, help="generation seed (default 1)")
    parser.add_argument(
        "--pages", type=int, default=500, metavar="N", help="further pages to time (default 500)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table (and write JSON when asked); 0 when done."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.records < 1 or args.pages < 1:
        parser.error("--records and --pages must be at least 1")
    results = asyncio.run(measure(args.records, seed=args.seed, pages=args.pages))
    for line in _table(results):
        print(line)
    if args.json is not None:
        payload = {
            "benchmark": "fake_server",
            "python": platform.python_version(),
            "aiohttp": importlib.metadata.version("aiohttp"),
            "platform": platform.platform(),
            "cpus": psutil.cpu_count(),
            "targets": {key: limit for key, (limit, _unit) in TARGETS.items()},
            "met": {key: results[key] < limit for key, (limit, _unit) in TARGETS.items()},
            **results,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
