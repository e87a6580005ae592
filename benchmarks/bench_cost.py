"""Benchmark: the cost per record of the engine, against a bare aiohttp loop.

Both read the same pages from the same fake server and data, with no rate
limit and no latency: a query that fits under the cap (``--records`` below
``--cap``), whose page bodies are recorded from one warm-up search and then
replayed by the bare loops, so every run asks for exactly the same pages.

- bare raw: ``aiohttp`` POST of each page body + ``orjson.loads``, with the
  same concurrency as the engine (page 1 first, as the engine must).
- bare typed: the same + ``copper_async._records.structure_page``, the
  structuring the engine itself runs, so ours typed / bare typed is the
  engine's own overhead: the target.
- bare typed (plain cattrs preconf orjson converter): the same +
  ``converter.structure(page, list[Opportunity])``, the literal baseline
  (aiohttp reads + orjson decode + cattrs structure). The converter is the
  package's ``cattrs.preconf.orjson`` one, which adds only the hooks Copper's
  JSON needs (Unix-second datetimes, ``M/D/YYYY`` dates, ``ABSENT``, strict
  scalars): a bare ``make_converter()`` cannot structure these records at all.
  ``structure_page`` runs that same converter record by record, so this case
  should read about as fast as bare typed; its ratio is information.
- ours raw / typed: ``client.opportunities.search(raw=True / False)``.

Runs alternate (bare raw, ours raw, bare typed, bare typed with the cattrs
converter, ours typed) for several rounds after one warm-up round; the
medians of records per second give the ratios (targets: >= 0.8 for raw
against bare raw and for typed against bare typed). The fake server runs in another
process by default (``copper-async fake-server``), so its CPU does not
compete with the client's inside one event loop; ``--server inline`` runs it
in this process instead, for comparison. Each run's CPU time in this process
is recorded too (records per CPU second).

Run ``python benchmarks/bench_cost.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

from copper_async import CopperClient
from copper_async._converter import converter
from copper_async._engine import Search
from copper_async._opportunities import OpportunitiesAPI
from copper_async._pages import RawPage
from copper_async._protocol import DEFAULT_USER_AGENT, SEARCH_PATH, request_headers, search_url
from copper_async._records import Opportunity, structure_page

__all__ = ["CASES", "CATTRS_CASE", "STRUCTURERS", "bare_loop", "main", "ours", "record_bodies"]

CATTRS_CASE = "bare typed (plain cattrs preconf orjson converter)"
CASES = ("bare raw", "ours raw", "bare typed", CATTRS_CASE, "ours typed")
#: How each bare loop turns a decoded page into records (None: left as dicts).
STRUCTURERS: dict[str, Callable[[list[Any]], list[Any]] | None] = {
    "bare raw": None,
    "bare typed": structure_page,
    CATTRS_CASE: lambda page: converter.structure(page, list[Opportunity]),
}
TARGET_RATIO = 0.8
# A fixed end of the search, so that every run sends the same bodies.
_END_AT = 1_800_000_000


class _Recorder:
    """A page fetcher that keeps every body it is asked for."""

    def __init__(self, client: CopperClient) -> None:
        self.client = client
        self.bodies: list[dict[str, Any]] = []

    @property
    def base_url(self) -> str:
        return self.client.base_url

    @property
    def user_email(self) -> str:
        return self.client.user_email

    async def fetch_page(
        self,
        body: Mapping[str, Any],
        *,
        path: str = SEARCH_PATH,
        context: Mapping[str, Any] | None = None,
    ) -> RawPage:
        self.bodies.append(dict(body))
        return await self.client.fetch_page(body, path=path, context=context)


def _without_page(body: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "page_number"}


def _client(url: str, token: str, email: str) -> CopperClient:
    return CopperClient(access_token=token, user_email=email, base_url=url, rate_limit=None)


async def record_bodies(
    url: str, token: str, email: str, *, page_size: int, cap: int, concurrency: int
) -> list[bytes]:
    """The page bodies one search sends, encoded, page 1 first."""
    async with _client(url, token, email) as client:
        recorder = _Recorder(client)
        search = OpportunitiesAPI(recorder).search(
            raw=True, page_size=page_size, cap=cap, concurrency=concurrency, end_at=_END_AT
        )
        async with search:
            async for _ in search:
                pass
        # One window, or one read on past a total of whole pages (a lower cap?).
        if search.stats.windows_split != search.stats.windows_continued:
            raise SystemExit("the query must fit under the cap: lower --records or raise --cap")
    # The bare loop pages the first window only: a read-on's request is ours alone.
    window = _without_page(recorder.bodies[0])
    mine = [body for body in recorder.bodies if _without_page(body) == window]
    bodies = sorted(mine, key=lambda body: body["page_number"])
    return [orjson.dumps(body) for body in bodies]


async def bare_loop(
    url: str,
    token: str,
    email: str,
    bodies: list[bytes],
    *,
    structure: Callable[[list[Any]], list[Any]] | None,
    concurrency: int,
) -> int:
    """POST every body (page 1 alone, then ``concurrency`` at a time); the records read."""
    endpoint = search_url(url)
    headers = request_headers(access_token=token, user_email=email, user_agent=DEFAULT_USER_AGENT)
    count = 0
    async with aiohttp.ClientSession() as session:

        async def worker(queue: list[bytes]) -> None:
            nonlocal count
            while queue:
                data = queue.pop()
                async with session.post(endpoint, data=data, headers=headers) as response:
                    raw = await response.read()
                records = orjson.loads(raw)
                if structure is not None:
                    records = structure(records)
                count += len(records)

        await worker([bodies[0]])
        rest = list(reversed(bodies[1:]))  # popped from the end: in page order
        await asyncio.gather(*(worker(rest) for _ in range(concurrency)))
    return count


async def ours(
    url: str, token: str, email: str, *, typed: bool, page_size: int, cap: int, concurrency: int
) -> int:
    """A full ``client.opportunities.search``; the records delivered."""
    count = 0
    async with _client(url, token, email) as client:
        options: dict[str, Any] = {
            "page_size": page_size,
            "cap": cap,
            "concurrency": concurrency,
            "end_at": _END_AT,
        }
        search: Search[Any] = (
            client.opportunities.search(**options)
            if typed
            else client.opportunities.search(raw=True, **options)
        )
        async with search:
            async for _ in search:
                count += 1
    return count


@contextlib.asynccontextmanager
async def _inline_server(records: int, seed: int, cap: int) -> AsyncIterator[tuple[str, str, str]]:
    from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions

    dataset = Dataset.generate(records, seed=seed)
    gc.collect()
    gc.freeze()
    options = FakeServerOptions(cap=cap)
    async with FakeCopperServer(dataset, options=options) as server:
        yield server.url, options.access_token, options.user_email


async def _measure(
    args: argparse.Namespace, url: str, token: str, email: str
) -> dict[str, list[dict[str, float]]]:
    bodies = await record_bodies(
        url, token, email, page_size=args.page_size, cap=args.cap, concurrency=args.concurrency
    )
    settings = {"concurrency": args.concurrency}
    lib = {"page_size": args.page_size, "cap": args.cap, "concurrency": args.concurrency}
    cases: dict[str, Callable[[], Awaitable[int]]] = {
        name: functools.partial(
            bare_loop, url, token, email, bodies, structure=structure, **settings
        )
        for name, structure in STRUCTURERS.items()
    }
    cases["ours raw"] = lambda: ours(url, token, email, typed=False, **lib)
    cases["ours typed"] = lambda: ours(url, token, email, typed=True, **lib)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in CASES}
    expected: int | None = None
    for round_number in range(args.rounds + 1):
        for name in CASES:
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            count = await cases[name]()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            expected = count if expected is None else expected
            if count != expected:
                raise SystemExit(f"{name} read {count} records, not {expected}")
            if round_number:  # round 0 warms up
                samples[name].append({"records": count, "seconds": wall, "cpu": cpu})
    return samples


async def _run(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    if args.server == "inline":
        async with _inline_server(args.records, args.seed, args.cap) as (url, token, email):
            return await _measure(args, url, token, email)
    server_args = [
        "--generate",
        str(args.records),
        "--seed",
        str(args.seed),
        "--cap",
        str(args.cap),
    ]
    with _common.fake_server_process(server_args) as server:
        return await _measure(args, server.url, server.token, server.email)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Records/s of client.opportunities.search (raw and typed) over a bare "
        "aiohttp + orjson (+ structure_page, or the cattrs converter) loop reading the same "
        "pages."
    )
    parser.add_argument("--records", type=_common.positive_int, default=50_000)
    parser.add_argument("--cap", type=_common.positive_int, default=100_000)
    parser.add_argument("--page-size", type=_common.positive_int, default=200)
    parser.add_argument("--concurrency", type=_common.positive_int, default=4)
    parser.add_argument(
        "--rounds", type=_common.positive_int, default=7, help="after a warm-up (7)"
    )
    parser.add_argument(
        "--server",
        choices=["process", "inline"],
        default="process",
        help="fake server in another process (default) or in this event loop",
    )
    parser.add_argument("--seed", type=int, default=5)
    _common.add_json_option(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a table; 0 when it ran (targets are reported)."""
    args = _parser().parse_args(argv)
    if args.records > args.cap:
        _parser().error("--records must fit under --cap (one window, the same pages)")
    try:
        samples = asyncio.run(_run(args))
    finally:
        gc.unfreeze()  # an inline server froze its records
    rate = {
        name: _common.median([s["records"] / s["seconds"] for s in samples[name]]) for name in CASES
    }
    cpu_rate = {
        name: _common.median([s["records"] / max(s["cpu"], 1e-9) for s in samples[name]])
        for name in CASES
    }
    # Each "ours" case against its baseline; the cattrs one is information, not a target.
    baselines = {"ours raw": "bare raw", "ours typed": "bare typed"}
    ratio = {name: rate[name] / rate[base] for name, base in baselines.items()}
    cpu_ratio = {name: cpu_rate[name] / cpu_rate[base] for name, base in baselines.items()}
    cattrs_ratio = rate["ours typed"] / rate[CATTRS_CASE]
    cattrs_cpu_ratio = cpu_rate["ours typed"] / cpu_rate[CATTRS_CASE]
    columns = ["case", "records", "median s", "records/s", "records/CPU s", "ours/bare"]
    columns += ["ours/bare (CPU)"]
    rows = [
        [
            name,
            int(samples[name][0]["records"]),
            _common.median([s["seconds"] for s in samples[name]]),
            rate[name],
            cpu_rate[name],
            ratio.get(name),
            cpu_ratio.get(name),
        ]
        for name in CASES
    ]
    checks = [
        _common.check(
            f"ours {mode} / bare {mode} (records/s)",
            ratio[f"ours {mode}"],
            f">= {TARGET_RATIO}",
            ratio[f"ours {mode}"] >= TARGET_RATIO,
        )
        for mode in ("typed", "raw")
    ]
    where = (
        "in another process (copper-async fake-server)"
        if args.server == "process"
        else "inline, in the same event loop as the client"
    )
    notes = [
        f"{args.records:,} records under a cap of {args.cap:,} (one window), page size "
        f"{args.page_size}, concurrency {args.concurrency}, no rate limit or latency; fake "
        f"server {where}.",
        f"Medians of {args.rounds} alternating rounds after a warm-up; records/CPU s counts "
        "this process's CPU only (the client's, when the server runs elsewhere).",
        "Targets: ours raw / bare raw and ours typed / bare typed, whose bare loop runs "
        "structure_page, the same structuring as the engine: the ratio is the engine's own "
        "overhead. Information only: ours typed / bare typed (plain cattrs preconf orjson "
        f"converter) = {cattrs_ratio:.3f} ({cattrs_cpu_ratio:.3f} by CPU), against the "
        "literal baseline, the package's cattrs.preconf.orjson converter with the hooks "
        "Copper's JSON needs (converter.structure(page, list[Opportunity])); structure_page "
        "runs the same converter one record at a time.",
    ]
    print(notes[0])
    _common.print_table(columns, rows)
    _common.print_checks(checks)
    print(notes[2])
    config = {
        "records": args.records,
        "cap": args.cap,
        "page_size": args.page_size,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "server": args.server,
    }
    payload = _common.result_payload(
        "cost",
        "Cost per record against a bare loop",
        config=config,
        columns=columns,
        rows=rows,
        checks=checks,
        notes=notes,
        samples=samples,
        ratios={
            "ours raw / bare raw": ratio["ours raw"],
            "ours typed / bare typed": ratio["ours typed"],
            f"ours typed / {CATTRS_CASE}": cattrs_ratio,
        },
    )
    _common.write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
