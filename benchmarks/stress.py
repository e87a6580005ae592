"""Stress run: a full-size export through every fault, checked for exactly once.

Exports N generated records (250,000 by default: two and a half times the
real 100,000-record search cap) from the embedded fake server over loopback,
while the server plays the fault mix the test suite plays at small size:

- 5% 5xx answers (500, 502, 503), 2% connection resets,
- 1% stalled answers (held past the client's timeout),
- 1% truncated or non-JSON bodies,
- bursts of 429s,

optionally with drift (records inserted, deleted and edited while it runs).
The output file is then checked against the server's own truth: every id
exactly once (without drift), or every record present from start to end
exactly once and no id twice (with drift). Exit status 0 when the check
holds, 1 when it does not.

Run ``python benchmarks/stress.py --help``; ``nox -s stress`` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from copper_async._engine import SEARCH_CAP, SearchOptions
from copper_async._export import run_export
from copper_async._retry import RetryPolicy
from copper_async.client import CopperClient
from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions

__all__ = ["FAULT_RATES", "main", "run"]

#: The fault mix: 5% 5xx, 2% resets, 1% stalls, 1% truncated or non-JSON bodies.
FAULT_RATES = {
    "500": 0.02,
    "502": 0.015,
    "503": 0.015,
    "reset": 0.02,
    "stall": 0.01,
    "truncated": 0.005,
    "non_json": 0.005,
}


def _ids(path: Path, format_: str) -> list[int]:
    if format_ == "jsonl":
        with open(path, "rb") as file:
            return [orjson.loads(line)["id"] for line in file]
    import csv

    with open(path, newline="") as file:
        return [int(row["id"]) for row in csv.DictReader(file)]


class _Count(logging.Handler):
    """Counts the package's warnings (count mismatches) instead of printing each."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


async def run(arguments: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Generate, serve, export and check; the figures as a dict.

    The logging and collector settings it changes are put back afterwards, so
    a caller's process (a test) keeps its own.
    """
    warnings_logged = _Count()
    package = logging.getLogger("copper_async")
    server_log = logging.getLogger("aiohttp.server")
    propagate, server_level = package.propagate, server_log.level
    package.addHandler(warnings_logged)
    package.propagate = False
    # The fake server's side of an injected reset is logged by aiohttp: noise here.
    server_log.setLevel(logging.CRITICAL)
    try:
        return await _run(arguments, out, warnings_logged)
    finally:
        package.removeHandler(warnings_logged)
        package.propagate = propagate
        server_log.setLevel(server_level)
        gc.unfreeze()


async def _run(arguments: argparse.Namespace, out: Path, warnings_logged: _Count) -> dict[str, Any]:
    started = time.perf_counter()
    dataset = Dataset.generate(arguments.records, seed=arguments.seed)
    gc.freeze()  # the records live to the end: keep the collector off them
    generated = time.perf_counter() - started
    at_start = set(dataset.ids())
    options = FakeServerOptions(
        cap=arguments.cap,
        seed=arguments.seed,
        fault_rates=FAULT_RATES,
        burst_429_rate=arguments.burst_rate,
        burst_429_length=arguments.burst_length,
        stall_seconds=arguments.timeout * 1.2,
        drift_insert_rate=arguments.drift,
        drift_delete_rate=arguments.drift,
        drift_modify_rate=arguments.drift,
    )
    retry = RetryPolicy(
        attempts=arguments.attempts, initial_backoff=0.01, max_backoff=0.5, deadline=300.0
    )
    async with FakeCopperServer(dataset, options=options) as server:
        async with CopperClient(
            access_token=options.access_token,
            user_email=options.user_email,
            base_url=server.url,
            rate_limit=None,
            retry=retry,
            timeout=arguments.timeout,
        ) as client:
            export_started = time.perf_counter()
            result = await run_export(
                client,
                out=out,
                format=arguments.format,
                options=SearchOptions(
                    page_size=arguments.page_size,
                    cap=arguments.cap,
                    concurrency=arguments.concurrency,
                ),
            )
            exported = time.perf_counter() - export_started
            client_stats = client.stats.as_dict()
        server_stats = server.stats
    at_end = set(dataset.ids())
    written = _ids(out, arguments.format)
    unique = set(written)
    lasting = at_start & at_end
    ideal = math.ceil(len(at_start) / arguments.page_size)
    figures = {
        "records_at_start": len(at_start),
        "records_written": len(written),
        "repeated": len(written) - len(unique),
        "lasting_missing": len(lasting - unique),
        "unexpected": None if arguments.drift else len(unique - at_start),
        "requests": result.stats["requests"],
        "ideal_requests": ideal,
        "client_sends": client_stats["requests"],
        "retries": client_stats["retries"],
        "timeouts": client_stats["timeouts"],
        "connection_errors": client_stats["connection_errors"],
        "faults": server_stats["faults"],
        "burst_429": server_stats["burst_429"],
        "drift": server_stats["drift"],
        "windows": result.stats["windows_done"],
        "windows_split": result.stats["windows_split"],
        "duplicates_dropped": result.stats["duplicates_dropped"],
        "count_mismatches": result.stats["count_mismatches"],
        "warnings_logged": warnings_logged.count,
        "generate_seconds": round(generated, 1),
        "export_seconds": round(exported, 1),
        "records_per_second": round(len(written) / exported) if exported else None,
    }
    exact = not figures["repeated"] and not figures["lasting_missing"]
    if not arguments.drift:
        exact = exact and unique == at_start
    figures["exactly_once"] = exact
    return figures


def main(argv: list[str] | None = None) -> int:
    """Parse options, run, print the figures as JSON; 0 when exactly once held."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cap", type=int, default=SEARCH_CAP)
    parser.add_argument("--page-size", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    parser.add_argument(
        "--timeout", type=float, default=1.0, help="client timeout; stalls last 1.2x it"
    )
    parser.add_argument("--attempts", type=int, default=10)
    parser.add_argument("--burst-rate", type=float, default=0.01)
    parser.add_argument("--burst-length", type=int, default=3)
    parser.add_argument(
        "--drift", type=float, default=0.0, help="inserts, deletes and edits per request"
    )
    parser.add_argument("--out", type=Path, default=None, help="keep the export here")
    arguments = parser.parse_args(argv)
    if arguments.out is not None:
        figures = asyncio.run(run(arguments, arguments.out))
    else:
        with tempfile.TemporaryDirectory(prefix="copper-stress-") as folder:
            figures = asyncio.run(run(arguments, Path(folder) / f"stress.{arguments.format}"))
    print(json.dumps(figures, indent=2))
    return 0 if figures["exactly_once"] else 1


if __name__ == "__main__":
    sys.exit(main())
