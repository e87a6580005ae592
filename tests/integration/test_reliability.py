"""Reliability: faults, crashes, drift and cancellation, end to end over loopback.

Every test runs the real client and engine against the fake server on
loopback with a small cap (1,000 records, pages of 50), which takes the same
paths as Copper's 100,000. The full-size fault run is ``benchmarks/stress.py``
(``nox -s stress``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import sys
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import psutil  # type: ignore[import-untyped]
import pytest

from copper_async._engine import SearchOptions
from copper_async._export import run_export
from copper_async._retry import RetryPolicy
from copper_async.client import CopperClient
from copper_async.exceptions import (
    ClientClosedError,
    CopperError,
    RateLimitedError,
    RequestTimeoutError,
    ResponseFormatError,
    ServerError,
    TransportError,
)
from copper_async.filters import OpportunityFilter
from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions
from tests.fakes import (
    Account,
    assert_exactly_once,
    cancel_mid_stream,
    committed_rows,
    generated_records,
    ids_in,
    load_benchmark,
)

pytestmark = pytest.mark.asyncio

CAP, PAGE = 1_000, 50
TOKEN = "reliability-token-7c1e55d0"
EMAIL = "reliable@example.com"
ACCOUNT = Account(TOKEN, EMAIL)
FAST_RETRY = RetryPolicy(attempts=10, initial_backoff=0.001, max_backoff=0.01, deadline=30.0)
#: The stress benchmark's fault mix: 5% 5xx, 2% resets, 1% stalls, 1% bad bodies
#: (429 bursts come on top, below).
FAULT_RATES: dict[str, float] = load_benchmark("stress").FAULT_RATES


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    """3,000 generated records (three windows' worth at cap 1,000), read-only."""
    return generated_records(3_000, seed=41)


def server_options(**changes: Any) -> FakeServerOptions:
    return ACCOUNT.server_options(cap=CAP, **changes)


def client_for(
    server: FakeCopperServer, *, retry: RetryPolicy = FAST_RETRY, timeout: float = 5.0
) -> CopperClient:
    return ACCOUNT.client(server, retry=retry, timeout=timeout)


# -- faults --------------------------------------------------------------------------


async def test_an_export_through_every_fault_writes_every_id_once(
    records: list[dict[str, Any]], tmp_path: Path
) -> None:
    """5xx, resets, stalls past the client timeout, truncated and non-JSON bodies
    and 429 bursts: each run writes every id exactly once. Seeds are run until
    every kind of fault has been played at least once across them."""
    expected = {r["id"] for r in records}
    played: dict[str, int] = dict.fromkeys([*FAULT_RATES, "429"], 0)
    retries = timeouts = 0
    for seed in range(12):
        options = server_options(
            seed=seed,
            fault_rates=FAULT_RATES,
            burst_429_rate=0.01,
            burst_429_length=3,
            stall_seconds=0.6,
        )
        out = tmp_path / f"faults-{seed}.jsonl"
        async with FakeCopperServer(Dataset.from_records(records), options=options) as server:
            async with client_for(server, timeout=0.5) as client:
                result = await run_export(
                    client, out=out, options=SearchOptions(page_size=PAGE, cap=CAP, concurrency=4)
                )
                timeouts += client.stats.timeouts
            stats = server.stats
        assert_exactly_once(ids_in(out), expected)
        assert result.records == len(expected)
        retries += result.stats["retries"]
        for kind, count in stats["faults"].items():
            played[kind] += count
        played["429"] += stats["burst_429"]
        if all(played.values()):
            break
    assert all(played.values()), f"some faults were never played: {played}"
    assert timeouts >= played["stall"] > 0
    assert retries >= sum(played.values())


@attrs.frozen
class Exhaust:
    options: dict[str, Any]
    error: type[CopperError]


EXHAUSTING = {
    "503": Exhaust({"fault_rates": {"503": 1.0}}, ServerError),
    "reset": Exhaust({"fault_rates": {"reset": 1.0}}, TransportError),
    "stall": Exhaust({"fault_rates": {"stall": 1.0}, "stall_seconds": 0.3}, RequestTimeoutError),
    "truncated": Exhaust({"fault_rates": {"truncated": 1.0}}, TransportError),
    "non_json": Exhaust({"fault_rates": {"non_json": 1.0}}, ResponseFormatError),
    "429": Exhaust({"burst_429_rate": 1.0}, RateLimitedError),
}


@pytest.mark.parametrize("kind", list(EXHAUSTING))
async def test_exhausted_retries_name_the_window_and_page_and_the_checkpoint_resumes(
    records: list[dict[str, Any]], tmp_path: Path, kind: str
) -> None:
    exhaust = EXHAUSTING[kind]
    out, checkpoint = tmp_path / "out.jsonl", tmp_path / "out.ckpt"
    options = SearchOptions(page_size=PAGE, cap=CAP, concurrency=4)
    retry = RetryPolicy(attempts=3, initial_backoff=0.001, max_backoff=0.002, deadline=30.0)
    async with FakeCopperServer(Dataset.from_records(records), options=server_options()) as server:
        pages = 0

        def break_the_server(_stats: Any, _written: int) -> None:
            nonlocal pages
            pages += 1
            if pages == 15:
                server.options = server_options(**exhaust.options)

        async with client_for(server, retry=retry, timeout=0.1) as client:
            with pytest.raises(exhaust.error) as raised:
                await run_export(
                    client,
                    out=out,
                    options=options,
                    checkpoint=checkpoint,
                    progress=break_the_server,
                )
        error = raised.value
        assert type(error) is exhaust.error
        window = error.context["window"]
        assert set(window) == {"date_created", "date_modified"}
        assert isinstance(error.context["page_number"], int)
        assert error.context["page_number"] >= 1
        assert error.context["attempts"] == 3
        assert f"page_number={error.context['page_number']}" in str(error)
        assert "window=" in str(error)

        state = json.loads(checkpoint.read_bytes())
        assert not state["complete"]
        assert 0 < state["records"] < len(records)
        assert committed_rows(out, state["committed_bytes"]) == state["records"]

        server.options = server_options()
        async with client_for(server) as client:
            result = await run_export(
                client, out=out, options=options, checkpoint=checkpoint, resume=True
            )
    assert result.resumed
    assert_exactly_once(ids_in(out), {r["id"] for r in records})


# -- drift ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "inserts", "deletes", "modifies", "concurrency"),
    [
        (1, 0.0, 1.0, 1.0, 4),
        (2, 1.0, 1.0, 1.0, 4),
        (3, 0.3, 0.3, 1.0, 1),
        (4, 0.05, 0.05, 0.1, 4),
    ],
)
async def test_drift_during_an_export_delivers_every_lasting_record_once(
    records: list[dict[str, Any]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    seed: int,
    inserts: float,
    deletes: float,
    modifies: float,
    concurrency: int,
) -> None:
    """Records inserted, deleted and edited (per request) while the export runs:
    every record present at the start and at the end (date_created never
    changes) is written exactly once, nothing twice, nothing invented, and the
    mismatches are counted and logged at WARNING."""
    caplog.set_level(logging.WARNING, logger="copper_async")
    dataset = Dataset.from_records(records)
    at_start = set(dataset.ids())
    options = server_options(
        seed=seed,
        drift_insert_rate=inserts,
        drift_delete_rate=deletes,
        drift_modify_rate=modifies,
    )
    out = tmp_path / "drift.jsonl"
    async with FakeCopperServer(dataset, options=options) as server:
        async with client_for(server) as client:
            result = await run_export(
                client,
                out=out,
                options=SearchOptions(page_size=PAGE, cap=CAP, concurrency=concurrency),
            )
        drift = server.stats["drift"]
    at_end = set(dataset.ids())
    written = ids_in(out)
    assert drift["deleted"] > 0
    assert len(written) == len(set(written)), "an id was written twice"
    lasting = at_start & at_end
    assert lasting <= set(written), f"{len(lasting - set(written))} lasting records missing"
    ever = at_start | set(range(max(at_start) + 1, max(at_start) + 1 + drift["inserted"]))
    assert set(written) <= ever
    if deletes >= 0.3:
        # This much drift always hits windows while they are read.
        assert result.stats["count_mismatches"] > 0
    warned = [
        r
        for r in caplog.records
        if r.name == "copper_async._engine"
        and r.levelno == logging.WARNING
        and "expected" in r.getMessage()
    ]
    assert len(warned) == result.stats["count_mismatches"]


# -- cancellation and resources --------------------------------------------------------


@attrs.define
class Watch:
    """What :func:`strict_asyncio` collected, checked when it exits."""

    problems: list[str] = attrs.Factory(list)
    sessions: list[aiohttp.ClientSession] = attrs.Factory(list)
    ports: list[int] = attrs.Factory(list)


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(f"asyncio log: {record.getMessage()}")


@contextlib.asynccontextmanager
async def strict_asyncio() -> AsyncIterator[Watch]:
    """Asyncio debug mode, every warning recorded, every loop error and unraisable
    exception collected; on exit: nothing pending, every session and socket closed."""
    loop = asyncio.get_running_loop()
    watch = Watch()
    debug, slow = loop.get_debug(), loop.slow_callback_duration
    handler, hook = loop.get_exception_handler(), sys.unraisablehook
    collector = _Collect(watch.problems)
    asyncio_logger = logging.getLogger("asyncio")
    loop.set_debug(True)
    # A slow shared machine is not a leak: only real problems count.
    loop.slow_callback_duration = 60.0
    loop.set_exception_handler(
        lambda _loop, context: watch.problems.append(f"loop error: {context}")
    )
    sys.unraisablehook = lambda info: watch.problems.append(f"unraisable: {info.exc_value!r}")
    asyncio_logger.addHandler(collector)
    before = asyncio.all_tasks()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield watch
            for _ in range(3):
                gc.collect()
                await asyncio.sleep(0)
        watch.problems.extend(f"warning: {w.category.__name__}: {w.message}" for w in caught)
        pending = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()]
        assert not pending, f"tasks left pending: {pending}"
        assert all(s.closed and s.connector is None for s in watch.sessions), "unclosed session"
        connections = psutil.Process().net_connections(kind="tcp")
        left = [
            c
            for c in connections
            if (c.raddr and c.raddr.port in watch.ports) or (c.laddr.port in watch.ports)
        ]
        assert not left, f"sockets left open: {left}"
        assert not watch.problems, watch.problems
    finally:
        asyncio_logger.removeHandler(collector)
        sys.unraisablehook = hook
        loop.set_exception_handler(handler)
        loop.set_debug(debug)
        loop.slow_callback_duration = slow


def client_tasks() -> list[asyncio.Task[Any]]:
    """The engine's own tasks still running (page requests and multi-search pumps)."""
    names = ("fetch_page", "_pump")
    return [
        t
        for t in asyncio.all_tasks()
        if not t.done() and any(n in getattr(t.get_coro(), "__qualname__", "") for n in names)
    ]


async def settle() -> None:
    """A few loop turns: enough for cancelled tasks to finish, never a real wait."""
    for _ in range(5):
        await asyncio.sleep(0)


Scenario = Callable[[CopperClient], Any]
#: Opens the stream a scenario reads, in the task that reads it.
OpenStream = Callable[[], AsyncIterable[Any]]


def expire_now(deadline: asyncio.Timeout) -> None:
    """Make ``deadline`` fire at the next await: a timeout tied to an event,
    not to how fast a loaded machine gets there."""
    deadline.reschedule(asyncio.get_running_loop().time())


async def break_out(open_stream: OpenStream) -> None:
    count = 0
    async for _ in open_stream():
        count += 1
        if count == 120:
            break


async def time_out(open_stream: OpenStream) -> None:
    async def drain() -> None:
        async with asyncio.timeout(None) as deadline:
            async for _ in open_stream():
                expire_now(deadline)  # the first record: requests are still in flight

    with pytest.raises(TimeoutError):
        await drain()


def one_search(client: CopperClient, **options: Any) -> OpenStream:
    return lambda: client.opportunities.search(page_size=PAGE, cap=CAP, **options)


def two_searches(client: CopperClient, **options: Any) -> OpenStream:
    filters = [OpportunityFilter(statuses=["Open"]), OpportunityFilter(priorities=["High"])]
    return lambda: client.opportunities.search_many(filters, page_size=PAGE, cap=CAP, **options)


async def time_out_an_export(client: CopperClient, out: Path) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(None) as deadline:
            # Times out once the first page is written, whatever the machine's load.
            await run_export(
                client,
                out=out,
                options=SearchOptions(page_size=PAGE, cap=CAP),
                progress=lambda _stats, _written: expire_now(deadline),
            )


# Each way of stopping, on one search and on search_many; typed and raw records.
SCENARIOS: dict[str, Scenario] = {
    "break": lambda client: break_out(one_search(client, raw=True, concurrency=8)),
    "cancel": lambda client: cancel_mid_stream(one_search(client, concurrency=8)),
    "timeout": lambda client: time_out(one_search(client, raw=True)),
    "many-break": lambda client: break_out(two_searches(client, union=True)),
    "many-cancel": lambda client: cancel_mid_stream(two_searches(client, raw=True)),
    "many-timeout": lambda client: time_out(two_searches(client, raw=True)),
}


@contextlib.asynccontextmanager
async def watched_client(
    records: list[dict[str, Any]], watch: Watch
) -> AsyncIterator[CopperClient]:
    # Latency keeps requests in flight at the moment the consumer stops.
    options = server_options(latency=0.01, latency_jitter=0.0)
    async with FakeCopperServer(Dataset.from_records(records), options=options) as server:
        watch.ports.append(server.port)
        async with client_for(server) as client:
            assert client.session is not None
            watch.sessions.append(client.session)
            yield client


async def read_150_and_hold(client: CopperClient) -> Any:
    """A raw search broken out of at its 150th record and still referenced:
    its requests for later pages are in flight."""
    search = client.opportunities.search(raw=True, page_size=PAGE, cap=CAP, concurrency=8)
    async for _ in search:
        if search.stats.records >= 150:
            break
    return search


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_stopping_a_search_leaves_nothing_behind(
    records: list[dict[str, Any]], name: str
) -> None:
    async with strict_asyncio() as watch, watched_client(records, watch) as client:
        await SCENARIOS[name](client)
        await settle()
        # The client is still open: the search itself cancelled its requests.
        assert client_tasks() == []
        assert client.stats.requests > 0


async def test_a_timeout_around_an_export_leaves_nothing_behind_and_closes_the_file(
    records: list[dict[str, Any]], tmp_path: Path
) -> None:
    async with strict_asyncio() as watch, watched_client(records, watch) as client:
        await time_out_an_export(client, tmp_path / "out.jsonl")
        await settle()
        assert client_tasks() == []
    assert (tmp_path / "out.jsonl").exists()


async def test_closing_the_client_under_a_held_search_stops_its_requests(
    records: list[dict[str, Any]],
) -> None:
    """``break`` out of a search still referenced, then close the client: the
    requests still in flight end with a ClientClosedError at once (no retry against a
    closed session, no aiohttp RuntimeError) and nothing is reported as an
    unretrieved task exception when the search is dropped."""
    async with strict_asyncio() as watch:
        async with watched_client(records, watch) as client:
            search = await read_150_and_hold(client)
            in_flight = list(search._tasks)
            assert in_flight
        # The client is closed now; the requests it had in flight give up.
        await asyncio.wait(in_flight, timeout=5)
        outcomes = [t.exception() for t in in_flight if not t.cancelled()]
        assert all(e is None or type(e) is ClientClosedError for e in outcomes), outcomes
        closed = [e for e in outcomes if isinstance(e, ClientClosedError) and "closed" in str(e)]
        assert closed, outcomes
        assert client.stats.retries == 0
        del search, in_flight, outcomes, closed


async def test_dropping_a_search_whose_requests_failed_reports_nothing(
    records: list[dict[str, Any]],
) -> None:
    """A search dropped while its finished requests hold errors nobody read: its
    ``__del__`` settles them, so the loop reports no "Task exception was never
    retrieved"."""
    async with strict_asyncio() as watch:
        async with watched_client(records, watch) as client:
            search = await read_150_and_hold(client)
            tasks = list(search._tasks)
        await asyncio.wait(tasks, timeout=5)
        # Looked at without retrieving (which would hide the problem under test).
        assert any(t._exception is not None for t in tasks if not t.cancelled())
        del tasks
        del search
