"""The streaming engine end to end, over loopback HTTP against the fake server.

Small caps (1,000 records, pages of 50) keep every split quick while taking
the same paths as the real 100,000 cap.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any, Protocol, assert_type

import aiohttp
import attrs
import orjson
import pytest
import pytest_asyncio

from copper_async import MultiSearch, Search
from copper_async._records import Opportunity
from copper_async._retry import RetryPolicy
from copper_async.client import CopperClient
from copper_async.exceptions import (
    CapExceededError,
    InvalidOptionError,
    SearchCapWarning,
    ServerError,
)
from copper_async.filters import OpportunityFilter
from copper_async.testing import (
    Dataset,
    FakeCopperServer,
    FakeServerOptions,
    HotSpot,
    parse_search_body,
)
from copper_async.testing._server import PastCap, TotalMode
from tests.fakes import assert_exactly_once, cancel_mid_stream, generated_records

pytestmark = pytest.mark.asyncio

CAP = 1_000
PAGE = 50
FAST_RETRY = RetryPolicy(attempts=8, initial_backoff=0.001, max_backoff=0.01, deadline=30.0)


@pytest.fixture(scope="module")
def dataset_records() -> list[dict[str, Any]]:
    """4,321 generated records, shared read-only by the tests of this module."""
    return generated_records(4_321, seed=11)


def fresh(records: list[dict[str, Any]]) -> Dataset:
    return Dataset.from_records(records)


@attrs.define
class Harness:
    server: FakeCopperServer
    client: CopperClient

    @property
    def requests(self) -> int:
        stats = self.server.stats
        return int(sum(stats["requests_by_status"].values()))


class HarnessFactory(Protocol):
    """Starts a fake server over ``dataset`` and a client for it, closed after the test."""

    async def __call__(
        self, dataset: Dataset, server_options: FakeServerOptions | None = None
    ) -> Harness: ...


def options(**changes: Any) -> FakeServerOptions:
    return FakeServerOptions(cap=CAP, **changes)


@pytest_asyncio.fixture
async def harness_factory() -> AsyncIterator[HarnessFactory]:
    opened: list[tuple[FakeCopperServer, CopperClient]] = []

    async def make(dataset: Dataset, server_options: FakeServerOptions | None = None) -> Harness:
        server_options = server_options or options()
        server = FakeCopperServer(dataset, options=server_options)
        await server.__aenter__()
        client = CopperClient(
            access_token=server_options.access_token,
            user_email=server_options.user_email,
            base_url=server.url,
            rate_limit=None,
            retry=FAST_RETRY,
            timeout=2.0,
        )
        await client.__aenter__()
        opened.append((server, client))
        return Harness(server, client)

    yield make
    for server, client in reversed(opened):
        await client.aclose()
        await server.__aexit__(None, None, None)


def truth(harness: Harness, body: dict[str, Any]) -> list[int]:
    """Every id the server holds for ``body``, ignoring pages and the cap."""
    query, _ = parse_search_body(body)
    return list(harness.server.dataset.search(query))


async def collect(search: Any) -> list[Any]:
    return [record async for record in search]


def unsplittable_second() -> Dataset:
    """1,200 records in one second with one date_modified: over the cap of
    1,000, with no field left to split them on (200 are past reach)."""
    return Dataset.generate(
        200, seed=3, hot_spots=[HotSpot(created=1_600_000_000, count=1_200, modified_spread=0)]
    )


async def slow_harness(harness_factory: HarnessFactory, records: list[dict[str, Any]]) -> Harness:
    """A server slow enough (50 ms an answer) that requests are in flight when
    the consumer stops."""
    return await harness_factory(fresh(records), options(latency=0.05, latency_jitter=0.0))


# -- exactly once -------------------------------------------------------------------


@pytest.mark.parametrize("total_mode", ["exact", "overcount", "capped", "absent"])
@pytest.mark.parametrize("past_cap", ["empty", "error"])
async def test_every_record_once_past_the_cap_in_every_server_mode(
    harness_factory: HarnessFactory,
    dataset_records: list[dict[str, Any]],
    total_mode: str,
    past_cap: str,
) -> None:
    harness = await harness_factory(
        fresh(dataset_records), options(total_mode=total_mode, past_cap=past_cap)
    )
    search = harness.client.opportunities.search(page_size=PAGE, cap=CAP, raw=True)
    ids = [record["id"] for record in await collect(search)]
    assert_exactly_once(ids, {r["id"] for r in dataset_records})
    assert search.stats.windows_split >= 4  # 4,321 records need at least 5 windows
    assert search.stats.records == len(dataset_records)
    assert search.stats.requests == harness.requests
    ideal = -(-len(dataset_records) // PAGE)
    leaves = search.stats.windows_done
    if total_mode == "exact":
        assert search.stats.requests <= 1.01 * ideal + 3 * leaves


async def test_typed_records_are_opportunities_in_a_fitting_query(
    harness_factory: HarnessFactory, dataset_records: list[dict[str, Any]]
) -> None:
    harness = await harness_factory(fresh(dataset_records[:420]))
    search = harness.client.opportunities.search(page_size=PAGE, cap=CAP)
    found = await collect(search)
    assert all(isinstance(record, Opportunity) for record in found)
    assert sorted(o.to_dict()["id"] for o in found) == sorted(
        r["id"] for r in dataset_records[:420]
    )
    # A query under the cap costs exactly its pages.
    assert harness.requests == -(-420 // PAGE)
    assert search.stats.windows_split == 0


async def test_a_filter_is_kept_in_every_window(
    harness_factory: HarnessFactory, dataset_records: list[dict[str, Any]]
) -> None:
    harness = await harness_factory(fresh(dataset_records))
    query = OpportunityFilter(statuses=["Open", "Won"])
    expected = truth(harness, query.to_body())
    found = await collect(
        harness.client.opportunities.search(query, page_size=PAGE, cap=CAP, raw=True)
    )
    assert sorted(r["id"] for r in found) == sorted(expected)
    assert {r["status"] for r in found} <= {"Open", "Won"}


async def test_user_date_bounds_are_split_inside(
    harness_factory: HarnessFactory, dataset_records: list[dict[str, Any]]
) -> None:
    created = sorted(r["date_created"] for r in dataset_records)
    lo, hi = created[300], created[-300]
    harness = await harness_factory(fresh(dataset_records))
    query = OpportunityFilter(minimum_created_date=lo, maximum_created_date=hi)
    found = await collect(
        harness.client.opportunities.search(query, page_size=PAGE, cap=CAP, raw=True)
    )
    expected = {r["id"] for r in dataset_records if lo <= r["date_created"] <= hi}
    assert {r["id"] for r in found} == expected
    assert len(found) == len(expected)


async def test_splitting_on_date_modified(
    harness_factory: HarnessFactory, dataset_records: list[dict[str, Any]]
) -> None:
    harness = await harness_factory(fresh(dataset_records))
    search = harness.client.opportunities.search(
        page_size=PAGE, cap=CAP, raw=True, split_field="date_modified"
    )
    ids = [r["id"] for r in await collect(search)]
    assert sorted(ids) == sorted(r["id"] for r in dataset_records)


# -- hot spots --------------------------------------------------------------------------


async def test_a_hot_second_is_split_on_date_modified(
    harness_factory: HarnessFactory,
) -> None:
    dataset = Dataset.generate(
        1_500, seed=3, hot_spots=[HotSpot(created=1_600_000_000, count=2_500)]
    )
    harness = await harness_factory(dataset)
    search = harness.client.opportunities.search(page_size=PAGE, cap=CAP, raw=True)
    ids = [r["id"] for r in await collect(search)]
    assert len(ids) == len(set(ids)) == len(dataset)
    assert search.stats.hot_spots >= 1


@pytest.mark.parametrize("total_mode", ["exact", "overcount", "absent"])
async def test_every_record_once_when_the_api_orders_ties_per_query(
    harness_factory: HarnessFactory, total_mode: TotalMode
) -> None:
    """A narrower query may order one second's records otherwise. The first
    120 records share a second, so the root's page 1 (held, then handed to
    its first window) is not that window's page 1: the window is read again,
    and every record still comes once."""
    dataset = Dataset.generate(
        2_500,
        seed=4,
        hot_spots=[
            HotSpot(created=1_000_000_000, count=120),
            HotSpot(created=1_600_000_000, count=1_500),
        ],
    )
    harness = await harness_factory(dataset, options(ties="per_query", total_mode=total_mode))
    search = harness.client.opportunities.search(page_size=PAGE, cap=CAP, raw=True)
    ids = [r["id"] for r in await collect(search)]
    assert len(ids) == len(set(ids)) == len(dataset)
    assert search.stats.shifted_reads > 0
    assert search.stats.rereads == 1


async def test_an_unsplittable_second_raises_naming_the_window(
    harness_factory: HarnessFactory,
) -> None:
    harness = await harness_factory(unsplittable_second())
    search = harness.client.opportunities.search(page_size=PAGE, cap=CAP, raw=True)
    with pytest.raises(CapExceededError) as raised:
        await collect(search)
    assert raised.value.window["date_created"] == [1_600_000_000, 1_600_000_000]
    assert raised.value.unreachable == 200


async def test_warn_mode_yields_what_is_reachable_and_records_the_loss(
    harness_factory: HarnessFactory,
) -> None:
    dataset = unsplittable_second()
    harness = await harness_factory(dataset)
    search = harness.client.opportunities.search(page_size=PAGE, cap=CAP, raw=True, on_cap="warn")
    with pytest.warns(SearchCapWarning, match="200 records are unreachable"):
        ids = [r["id"] for r in await collect(search)]
    assert len(ids) == len(set(ids)) == len(dataset) - 200
    assert search.stats.unreachable_records == 200


async def test_the_cap_warning_names_the_callers_line(harness_factory: HarnessFactory) -> None:
    """Filtered or shown, the warning points at the code that reads the
    search, whichever way it reads it, not at the library's own lines."""
    harness = await harness_factory(unsplittable_second())

    def search() -> Search[dict[str, Any]]:
        return harness.client.opportunities.search(page_size=PAGE, cap=CAP, raw=True, on_cap="warn")

    async def by_record() -> None:
        async for _ in search():
            pass

    async def by_page() -> None:
        async for _ in search().pages():
            pass

    async def as_list() -> None:
        await search().to_list()

    for read in (by_record, by_page, as_list):
        with pytest.warns(SearchCapWarning) as caught:
            await read()
        (warning,) = caught
        assert warning.filename == __file__, read.__name__
        # The line in the reading function that took the records.
        first = read.__code__.co_firstlineno
        assert first < warning.lineno <= first + 2, read.__name__


# -- faults -----------------------------------------------------------------------------


async def test_retried_pages_are_not_yielded_twice(
    harness_factory: HarnessFactory, dataset_records: list[dict[str, Any]]
) -> None:
    server_options = options(
        fault_rates={"500": 0.1, "503": 0.05, "reset": 0.05, "truncated": 0.05}, seed=5
    )
    harness = await harness_factory(fresh(dataset_records), server_options)
    search = harness.client.opportunities.search(page_size=PAGE, cap=CAP, raw=True)
    ids = [r["id"] for r in await collect(search)]
    assert_exactly_once(ids, {r["id"] for r in dataset_records})
    assert search.stats.retries > 0


async def test_a_page_that_keeps_failing_names_its_window_and_page(
    harness_factory: HarnessFactory, dataset_records: list[dict[str, Any]]
) -> None:
    harness = await harness_factory(fresh(dataset_records), options(fault_rates={"500": 1.0}))
    search = harness.client.opportunities.search(page_size=PAGE, cap=CAP, raw=True)
    with pytest.raises(ServerError) as raised:
        await collect(search)
    assert raised.value.status == 500
    assert "window" in raised.value.context
    assert raised.value.context["page_number"] == 1


# -- closing early ----------------------------------------------------------------------


def pending_tasks() -> set[asyncio.Task[Any]]:
    """The client's page requests still running (the server's own tasks aside)."""
    return {
        t
        for t in asyncio.all_tasks()
        if not t.done() and "fetch_page" in getattr(t.get_coro(), "__qualname__", "")
    }


async def test_breaking_out_cancels_requests_in_flight(
    harness_factory: HarnessFactory, dataset_records: list[dict[str, Any]]
) -> None:
    harness = await slow_harness(harness_factory, dataset_records)
    before = pending_tasks()
    search = harness.client.opportunities.search(page_size=PAGE, cap=CAP, raw=True, concurrency=4)
    count = 0
    async for _ in search:
        count += 1
        if count == 75:
            break
    in_flight = pending_tasks() - before
    del search
    gc.collect()
    # Cancelled, not left to finish: each ends in CancelledError (the server's
    # latency would keep an uncancelled one running far longer).
    if in_flight:
        await asyncio.wait(in_flight, timeout=5)
    assert all(task.cancelled() for task in in_flight)
    assert pending_tasks() - before == set()


async def test_aclose_cancels_requests_in_flight(
    harness_factory: HarnessFactory, dataset_records: list[dict[str, Any]]
) -> None:
    harness = await slow_harness(harness_factory, dataset_records)
    before = pending_tasks()
    async with harness.client.opportunities.search(
        page_size=PAGE, cap=CAP, raw=True, concurrency=4
    ) as search:
        first = await anext(search)
        assert "id" in first
    assert pending_tasks() - before == set()
    with pytest.raises(StopAsyncIteration):
        await anext(search)


async def test_cancelling_the_consumer_task_leaves_nothing_running(
    harness_factory: HarnessFactory, dataset_records: list[dict[str, Any]]
) -> None:
    harness = await slow_harness(harness_factory, dataset_records)
    before = pending_tasks()
    await cancel_mid_stream(
        lambda: harness.client.opportunities.search(page_size=PAGE, cap=CAP, raw=True)
    )
    assert pending_tasks() - before == set()


async def test_pages_are_prefetched_up_to_the_concurrency(
    harness_factory: HarnessFactory, dataset_records: list[dict[str, Any]]
) -> None:
    harness = await harness_factory(
        fresh(dataset_records[:900]), options(latency=0.02, latency_jitter=0.0)
    )
    search = harness.client.opportunities.search(page_size=PAGE, cap=CAP, raw=True, concurrency=6)
    await collect(search)
    # The server counts requests it holds at once: its latency keeps them open.
    assert harness.server.stats["max_in_flight"] == 6


# -- search_many --------------------------------------------------------------------------


async def test_search_many_yields_from_every_filter(
    harness_factory: HarnessFactory, dataset_records: list[dict[str, Any]]
) -> None:
    harness = await harness_factory(fresh(dataset_records))
    open_ = OpportunityFilter(statuses=["Open"])
    high = OpportunityFilter(priorities=["High"])
    truth_open = truth(harness, open_.to_body())
    truth_high = truth(harness, high.to_body())
    many = harness.client.opportunities.search_many(
        [open_, high], page_size=PAGE, cap=CAP, raw=True
    )
    ids = [r["id"] for r in await collect(many)]
    assert sorted(ids) == sorted(truth_open + truth_high)
    assert set(truth_open) & set(truth_high), "the data should make the filters overlap"


async def test_search_many_with_union_yields_each_record_once(
    harness_factory: HarnessFactory, dataset_records: list[dict[str, Any]]
) -> None:
    harness = await harness_factory(fresh(dataset_records))
    open_ = OpportunityFilter(statuses=["Open"])
    high = OpportunityFilter(priorities=["High"])
    expected = set(truth(harness, open_.to_body())) | set(truth(harness, high.to_body()))
    many = harness.client.opportunities.search_many(
        [open_, high], union=True, page_size=PAGE, cap=CAP
    )
    ids = [o.id for o in await collect(many)]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected
    assert many.duplicates_dropped > 0


async def test_search_many_is_typed_like_search(
    harness_factory: HarnessFactory, dataset_records: list[dict[str, Any]]
) -> None:
    """Records, or dicts with raw=True: the assert_type lines are checked by
    mypy --strict, the isinstance lines at run time."""
    harness = await harness_factory(fresh(dataset_records[:120]))
    filters = [OpportunityFilter(statuses=["Open"]), None]
    typed = harness.client.opportunities.search_many(filters, page_size=PAGE, cap=CAP)
    assert_type(typed, MultiSearch[Opportunity])
    assert all(
        isinstance(o, Opportunity) for o in assert_type(await typed.to_list(), list[Opportunity])
    )
    raw = harness.client.opportunities.search_many(filters, raw=True, page_size=PAGE, cap=CAP)
    assert_type(raw, MultiSearch[dict[str, Any]])
    assert all(isinstance(r, dict) for r in await raw.to_list())
    # A flag known only at run time gives either kind, as search() does.
    flag: bool = bool(len(filters))
    assert_type(
        harness.client.opportunities.search(raw=flag, page_size=PAGE, cap=CAP),
        Search[Opportunity] | Search[dict[str, Any]],
    )
    either = harness.client.opportunities.search_many(filters, raw=flag, page_size=PAGE, cap=CAP)
    assert_type(either, MultiSearch[Opportunity] | MultiSearch[dict[str, Any]])
    await either.aclose()


# -- invalid arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "option"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 201}, "page_size"),
        ({"page_size": True}, "page_size"),
        ({"cap": 10, "page_size": 50}, "cap"),
        ({"split_field": "date_last_contacted"}, "split_field"),
        ({"split_field": "nonsense"}, "split_field"),
        ({"secondary_field": "date_created"}, "secondary_field"),
        ({"on_cap": "ignore"}, "on_cap"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 1_000}, "concurrency"),
        ({"max_passes": 0}, "max_passes"),
        ({"secondary_field": "nonsense"}, "secondary_field"),
        ({"raw": "yes"}, "raw"),
        ({"raw": 1}, "raw"),
    ],
)
async def test_invalid_arguments_fail_before_any_request(
    harness_factory: HarnessFactory,
    dataset_records: list[dict[str, Any]],
    arguments: dict[str, Any],
    option: str,
) -> None:
    harness = await harness_factory(fresh(dataset_records[:10]))
    with pytest.raises(InvalidOptionError) as raised:
        harness.client.opportunities.search(**arguments)
    assert raised.value.option == option
    assert harness.requests == 0


async def test_a_filter_that_is_not_a_filter_is_refused(
    harness_factory: HarnessFactory, dataset_records: list[dict[str, Any]]
) -> None:
    harness = await harness_factory(fresh(dataset_records[:10]))
    with pytest.raises(InvalidOptionError, match="OpportunityFilter"):
        harness.client.opportunities.search({"statuses": ["Open"]})  # type: ignore[call-overload]
    with pytest.raises(InvalidOptionError, match="list of filters"):
        harness.client.opportunities.search_many(OpportunityFilter())  # type: ignore[call-overload]
    for not_a_list in (None, "statuses", {"statuses": ["Open"]}):
        with pytest.raises(InvalidOptionError, match="list of filters") as raised:
            harness.client.opportunities.search_many(not_a_list)  # type: ignore[arg-type]
        assert raised.value.option == "filters"
    with pytest.raises(InvalidOptionError) as raised:
        harness.client.opportunities.search_many([OpportunityFilter()], union="no")  # type: ignore[call-overload]
    assert raised.value.option == "union"
    assert harness.requests == 0


async def test_stats_count_the_records_handed_out(
    harness_factory: HarnessFactory, dataset_records: list[dict[str, Any]]
) -> None:
    harness = await harness_factory(fresh(dataset_records))
    async with harness.client.opportunities.search(page_size=PAGE, cap=CAP, raw=True) as search:
        taken = 0
        async for _ in search:
            taken += 1
            if taken == 60:
                break
        # Pages beyond the 60th record were fetched, but not handed out.
        assert search.stats.records == 60
        assert search.stats.pages >= 2


# -- an API that caps lower than the client was told ------------------------------------


# A total capped at the server's lower cap hides the loss: nothing shows more records.
@pytest.mark.parametrize("total_mode", ["exact", "overcount", "absent"])
@pytest.mark.parametrize("past_cap", ["empty", "error"])
async def test_a_server_cap_below_the_clients_costs_requests_not_records(
    harness_factory: HarnessFactory,
    dataset_records: list[dict[str, Any]],
    total_mode: TotalMode,
    past_cap: PastCap,
) -> None:
    """The server stops at 300 records a query (an empty page or a 422 past it)
    while the client assumes 1,000: pages that stop at a page boundary short of
    the count are read on from the last value, so every record still comes once."""
    harness = await harness_factory(
        fresh(dataset_records),
        FakeServerOptions(cap=300, total_mode=total_mode, past_cap=past_cap),
    )
    search = harness.client.opportunities.search(page_size=PAGE, cap=CAP, raw=True)
    ids = [record["id"] for record in await collect(search)]
    assert_exactly_once(ids, {r["id"] for r in dataset_records})
    assert search.stats.windows_continued >= 10
    if past_cap == "error":
        assert search.stats.pages_refused > 0


async def test_a_windows_body_is_made_once_and_its_pages_differ_only_in_paging(
    harness_factory: HarnessFactory,
    dataset_records: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Building and validating a filter per page cost about a tenth of the raw
    path's time: now one a window, and the bodies sent are those it makes."""
    harness = await harness_factory(fresh(dataset_records))
    sent: list[dict[str, Any]] = []

    async def on_chunk(_session: Any, _context: Any, params: Any) -> None:
        sent.append(orjson.loads(params.chunk))

    tracing = aiohttp.TraceConfig()
    tracing.on_request_chunk_sent.append(on_chunk)
    made: list[OpportunityFilter] = []
    with_sort = OpportunityFilter.with_sort

    def counted(self: OpportunityFilter, *args: Any) -> OpportunityFilter:
        made.append(result := with_sort(self, *args))
        return result

    monkeypatch.setattr(OpportunityFilter, "with_sort", counted)
    query = OpportunityFilter(statuses=["Open", "Won"])
    async with CopperClient(
        access_token=harness.server.options.access_token,
        user_email=harness.server.options.user_email,
        base_url=harness.server.url,
        rate_limit=None,
        trace_configs=[tracing],
    ) as client:
        found = await collect(client.opportunities.search(query, page_size=PAGE, cap=CAP, raw=True))
    assert sorted(r["id"] for r in found) == sorted(truth(harness, query.to_body()))

    def window_of(body: dict[str, Any]) -> bytes:
        return orjson.dumps({k: v for k, v in body.items() if k != "page_number"})

    pages: dict[bytes, list[int]] = {}
    for body in sent:
        pages.setdefault(window_of(body), []).append(body["page_number"])
    assert len(sent) > len(pages) > 1  # several windows, several pages each
    assert len(made) == len(pages)  # one filter a window, not one a page
    assert {window_of(f.to_body(page_size=PAGE)) for f in made} == set(pages)
    # Pages of one window differ in page_number alone (a probe may skip ahead).
    assert all(len(set(numbers)) == len(numbers) for numbers in pages.values())
