"""What an SDK paginator offers, over loopback against the fake server:
``max_items``, ``to_list()``, ``pages()`` and ``count()``."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from copper_async._records import Opportunity
from copper_async.client import CopperClient
from copper_async.exceptions import InvalidOptionError
from copper_async.filters import OpportunityFilter
from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions, parse_search_body

pytestmark = pytest.mark.asyncio

CAP = 1_000
PAGE = 50
RECORDS = 1_800  # past the cap: the date range is split


@pytest.fixture(scope="module")
def dataset_records() -> list[dict[str, Any]]:
    dataset = Dataset.generate(RECORDS, seed=23)
    return [dataset.record(i) for i in dataset.ids()]


@pytest_asyncio.fixture
async def served(
    dataset_records: list[dict[str, Any]], request: pytest.FixtureRequest
) -> AsyncIterator[tuple[FakeCopperServer, CopperClient]]:
    changes: dict[str, Any] = getattr(request, "param", {})
    server_options = FakeServerOptions(**{"cap": CAP, **changes})
    async with (
        FakeCopperServer(Dataset.from_records(dataset_records), options=server_options) as server,
        CopperClient(
            access_token=server_options.access_token,
            user_email=server_options.user_email,
            base_url=server.url,
            rate_limit=None,
        ) as client,
    ):
        yield server, client


def page_requests() -> set[asyncio.Task[Any]]:
    return {
        t
        for t in asyncio.all_tasks()
        if not t.done() and "fetch_page" in getattr(t.get_coro(), "__qualname__", "")
    }


def ids_of(records: list[Any]) -> list[int]:
    return [r["id"] if isinstance(r, dict) else r.id for r in records]


# -- max_items ----------------------------------------------------------------------------


@pytest.mark.parametrize("served", [{"cap": 5_000}], indirect=True)
@pytest.mark.parametrize("max_items", [1, 49, 50, 120, 999])
async def test_max_items_yields_that_many_and_asks_for_no_page_beyond(
    served: tuple[FakeCopperServer, CopperClient], max_items: int
) -> None:
    server, client = served
    search = client.opportunities.search(
        raw=True, max_items=max_items, page_size=PAGE, cap=5_000, concurrency=8
    )
    records = [record async for record in search]
    ids = ids_of(records)
    assert len(ids) == max_items == len(set(ids))
    assert set(ids) <= set(server.dataset.ids())
    # Only the pages the records need, though 8 may be in flight.
    assert server.stats["requests"] == math.ceil(max_items / PAGE)
    assert search.stats.records == max_items


async def test_max_items_below_the_page_size_asks_for_that_many_records(
    served: tuple[FakeCopperServer, CopperClient],
) -> None:
    server, client = served
    search = client.opportunities.search(max_items=7, page_size=PAGE, cap=CAP)
    records = await search.to_list()
    assert len(records) == 7
    assert all(isinstance(record, Opportunity) for record in records)
    # Past the cap the first page only probes the total; a window that fits gives them.
    assert server.stats["records_served"] <= 7 * server.stats["requests"]
    assert search.options.page_size == 7


async def test_max_items_past_a_window_split_keeps_every_record_once(
    served: tuple[FakeCopperServer, CopperClient],
) -> None:
    server, client = served
    everything = ids_of(
        await client.opportunities.search(raw=True, page_size=PAGE, cap=CAP).to_list()
    )
    assert sorted(everything) == server.dataset.ids()
    limited = ids_of(
        await client.opportunities.search(
            raw=True, max_items=1_234, page_size=PAGE, cap=CAP
        ).to_list()
    )
    assert len(limited) == 1_234 == len(set(limited))
    assert set(limited) <= set(everything)


@pytest.mark.parametrize("served", [{"latency": 0.05, "latency_jitter": 0.0}], indirect=True)
async def test_reaching_max_items_cancels_the_requests_in_flight(
    served: tuple[FakeCopperServer, CopperClient],
) -> None:
    _server, client = served
    before = page_requests()
    search = client.opportunities.search(
        raw=True, max_items=130, page_size=PAGE, cap=CAP, concurrency=8
    )
    pages = [page async for page in search.pages()]
    assert [len(page.records) for page in pages] == [50, 50, 30]
    assert page_requests() - before == set()
    assert search.stats.finished_at is not None


@pytest.mark.parametrize("bad", [0, -3, True, 2.5, "10"])
async def test_max_items_is_validated_before_any_request(
    served: tuple[FakeCopperServer, CopperClient], bad: Any
) -> None:
    server, client = served
    with pytest.raises(InvalidOptionError) as raised:
        client.opportunities.search(max_items=bad)
    assert raised.value.option == "max_items"
    with pytest.raises(InvalidOptionError):
        client.opportunities.search_many([None], max_items=bad)
    assert server.stats["requests"] == 0


async def test_search_many_max_items_counts_every_filter_together(
    served: tuple[FakeCopperServer, CopperClient],
) -> None:
    server, client = served
    filters = [OpportunityFilter(statuses=["Open"]), OpportunityFilter(statuses=["Won"])]
    multi = client.opportunities.search_many(
        filters, raw=True, union=True, max_items=75, page_size=PAGE, cap=CAP
    )
    records = await multi.to_list()
    assert len(records) == 75 == len({r["id"] for r in records})
    assert {r["status"] for r in records} <= {"Open", "Won"}
    # Each search stops at 75 too: two pages each at most.
    assert server.stats["requests"] <= 2 * math.ceil(75 / PAGE)


# -- to_list and pages --------------------------------------------------------------------


async def test_to_list_holds_every_record_once_and_closes_the_search(
    served: tuple[FakeCopperServer, CopperClient],
) -> None:
    server, client = served
    before = page_requests()
    query = OpportunityFilter(statuses=["Lost"])
    async with client.opportunities.search(query, page_size=PAGE, cap=CAP) as search:
        records = await search.to_list()
    body = query.to_body()
    expected = list(server.dataset.search(parse_search_body(body)[0]))
    assert sorted(r.id for r in records) == sorted(expected)
    assert {r.status for r in records} == {"Lost"}
    assert page_requests() - before == set()
    assert await search.to_list() == []  # closed: nothing more


async def test_pages_yield_every_record_in_whole_pages(
    served: tuple[FakeCopperServer, CopperClient],
) -> None:
    server, client = served
    search = client.opportunities.search(raw=True, page_size=PAGE, cap=CAP)
    pages = [page async for page in search.pages()]
    ids = [record["id"] for page in pages for record in page.records]
    assert sorted(ids) == server.dataset.ids()
    assert all(len(page.records) <= PAGE for page in pages)
    assert search.stats.records == RECORDS


# -- count --------------------------------------------------------------------------------


async def test_count_is_the_total_from_one_request(
    served: tuple[FakeCopperServer, CopperClient],
) -> None:
    server, client = served
    assert await client.opportunities.count() == RECORDS
    query = OpportunityFilter(statuses=["Open"], minimum_monetary_value=10_000)
    expected = len(server.dataset.search(parse_search_body(query.to_body())[0]))
    assert 0 < expected < RECORDS
    assert await client.opportunities.count(query) == expected
    assert server.stats["requests"] == 2
    assert server.stats["records_served"] == 2  # one record a request


@pytest.mark.parametrize("served", [{"total_mode": "overcount"}], indirect=True)
async def test_count_is_an_upper_bound_when_copper_overcounts(
    served: tuple[FakeCopperServer, CopperClient],
) -> None:
    _server, client = served
    counted = await client.opportunities.count()
    assert counted is not None
    assert counted > RECORDS


@pytest.mark.parametrize("served", [{"total_mode": "absent"}], indirect=True)
async def test_count_is_none_without_a_total(
    served: tuple[FakeCopperServer, CopperClient],
) -> None:
    _server, client = served
    assert await client.opportunities.count() is None


async def test_count_refuses_what_is_not_a_filter(
    served: tuple[FakeCopperServer, CopperClient],
) -> None:
    server, client = served
    with pytest.raises(InvalidOptionError) as raised:
        await client.opportunities.count({"statuses": ["Open"]})  # type: ignore[arg-type]
    assert raised.value.option == "filter"
    assert server.stats["requests"] == 0
