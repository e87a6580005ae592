"""A search used as a library user may: mixed, shared with other tasks, several at once.

Loopback HTTP against the fake server; small caps keep it quick.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

import copper_async
from copper_async import Opportunity
from copper_async._retry import RetryPolicy
from copper_async.client import CopperClient
from copper_async.exceptions import CapExceededError
from copper_async.filters import OpportunityFilter
from copper_async.testing import Dataset, FakeCopperServer, HotSpot
from tests.fakes import Account, generated_records

pytestmark = pytest.mark.asyncio

CAP = 1_000
PAGE = 50
RECORDS = generated_records(600, seed=5)
ACCOUNT = Account("search-reuse-token", "reuse@example.com")


def pending_fetches() -> set[asyncio.Task[Any]]:
    """The client's page requests still running."""
    return {
        t
        for t in asyncio.all_tasks()
        if not t.done()
        and getattr(t.get_coro(), "__qualname__", "").rsplit(".", 1)[-1] == "fetch_page"
    }


async def started(**options: Any) -> AsyncIterator[CopperClient]:
    retry = RetryPolicy(attempts=2, initial_backoff=0.001, max_backoff=0.01, deadline=10.0)
    async with (
        ACCOUNT.server(RECORDS, **options) as server,
        ACCOUNT.client(server, retry=retry, timeout=5.0) as client,
    ):
        yield client


@pytest_asyncio.fixture
async def client() -> AsyncIterator[CopperClient]:
    async for opened in started(cap=CAP):
        yield opened


@pytest_asyncio.fixture
async def slow_client() -> AsyncIterator[CopperClient]:
    """Answers after 50 ms: requests are in flight when the consumer stops."""
    async for opened in started(cap=CAP, latency=0.05, latency_jitter=0.0):
        yield opened


async def test_pages_after_some_records_start_with_the_rest_of_the_page(
    client: CopperClient,
) -> None:
    search = client.opportunities.search(page_size=PAGE, cap=CAP, raw=True)
    first = [await anext(search) for _ in range(3)]
    rest = [record async for page in search.pages() for record in page.records]
    ids = [record["id"] for record in first + rest]
    assert sorted(ids) == sorted(r["id"] for r in RECORDS)
    assert search.stats.records == len(RECORDS)


async def test_the_pages_a_search_yields_are_of_a_public_type(client: CopperClient) -> None:
    """A caller annotating a page (a commit helper) imports its type from the package."""

    def commit(page: copper_async.ResultPage[Opportunity]) -> int:
        return len(page.records)

    search = client.opportunities.search(page_size=PAGE, cap=CAP)
    sizes = [commit(page) async for page in search.pages()]
    assert sum(sizes) == len(RECORDS)
    assert "ResultPage" in copper_async.__all__


async def test_aclose_from_another_task_ends_the_consumer_cleanly(
    slow_client: CopperClient,
) -> None:
    search = slow_client.opportunities.search(page_size=PAGE, cap=CAP, raw=True)
    first = asyncio.Event()
    seen: list[int] = []

    async def consume() -> None:
        async for record in search:
            seen.append(record["id"])
            first.set()

    consumer = asyncio.ensure_future(consume())
    await first.wait()
    # The consumer handed out its first page without yielding to the loop,
    # so it now waits on requests in flight: closing must end it, not fail it.
    await search.aclose()
    await consumer
    assert 0 < len(seen) < len(RECORDS)
    assert pending_fetches() == set()


async def test_a_failing_filter_of_several_is_named_and_stops_the_others() -> None:
    # 1,200 records in one second past the cap of 1,000: the second filter cannot finish.
    dataset = Dataset.generate(
        300, seed=3, hot_spots=[HotSpot(created=1_600_000_000, count=1_200, modified_spread=0)]
    )
    options = ACCOUNT.server_options(cap=CAP, latency=0.01, latency_jitter=0.0)
    async with (
        FakeCopperServer(dataset, options=options) as server,
        ACCOUNT.client(server) as client,
    ):
        before_hot = OpportunityFilter(maximum_created_date=1_599_999_999)
        many = client.opportunities.search_many(
            [before_hot, OpportunityFilter()], page_size=PAGE, cap=CAP, raw=True
        )
        with pytest.raises(CapExceededError) as raised:
            await many.to_list()
        assert raised.value.context["filter_index"] == 1
        assert "filter_index=1" in str(raised.value)
        assert all(search.stats.finished_at is not None for search in many.searches)
        assert pending_fetches() == set()


async def test_search_many_closed_from_another_task_ends_its_consumer(
    slow_client: CopperClient,
) -> None:
    many = slow_client.opportunities.search_many(
        [OpportunityFilter(), OpportunityFilter(statuses=["Open"])],
        page_size=PAGE,
        cap=CAP,
        raw=True,
    )
    first = asyncio.Event()
    seen: list[int] = []

    async def consume() -> None:
        async for record in many:
            seen.append(record["id"])
            first.set()

    consumer = asyncio.ensure_future(consume())
    await first.wait()
    await many.aclose()
    # A guard, not a race: without the fix the consumer waits forever.
    async with asyncio.timeout(10):
        await consumer
    assert 0 < len(seen) < 2 * len(RECORDS)
    assert pending_fetches() == set()


async def test_workers_sharing_one_search_get_every_record_once(client: CopperClient) -> None:
    search = client.opportunities.search(page_size=PAGE, cap=CAP, raw=True, concurrency=4)
    seen: list[int] = []

    async def worker() -> None:
        async for record in search:
            seen.append(record["id"])
            await asyncio.sleep(0)  # hand the loop to the other workers

    await asyncio.gather(*(worker() for _ in range(3)))
    assert sorted(seen) == sorted(r["id"] for r in RECORDS)
