"""How ``cap``, ``page_size`` and ``max_items`` combine, over loopback.

A search that stops after ``max_items`` records asks for no bigger page than
those records; the planner's cuts need a page that lies wholly inside the
cap. So a search is served when ``min(page_size, max_items) <= cap`` and
refused before any request otherwise.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from copper_async.client import CopperClient
from copper_async.exceptions import InvalidOptionError
from copper_async.testing import FakeCopperServer
from tests.fakes import Account, generated_records

pytestmark = pytest.mark.asyncio

ACCOUNT = Account("limits-token", "limits@example.com")
CAP = 10
RECORDS = 45  # past the cap: the date range is split


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[FakeCopperServer, CopperClient]]:
    records = generated_records(RECORDS, seed=31)
    async with ACCOUNT.server(records, cap=CAP) as server, ACCOUNT.client(server) as client:
        yield server, client


def ids_of(records: list[dict[str, Any]]) -> list[int]:
    return [record["id"] for record in records]


@pytest.mark.parametrize(
    ("options", "max_items", "page_size"),
    [
        ({}, 5, 5),  # the default page size shrinks to max_items, inside the cap
        ({}, CAP, CAP),
        ({"page_size": 4}, 25, 4),  # a page inside the cap, max_items past it
        ({"page_size": 50}, 7, 7),
    ],
)
async def test_a_page_that_max_items_brings_inside_the_cap_is_served_exactly_once(
    served: tuple[FakeCopperServer, CopperClient],
    options: dict[str, Any],
    max_items: int,
    page_size: int,
) -> None:
    server, client = served
    search = client.opportunities.search(raw=True, cap=CAP, max_items=max_items, **options)
    assert search.options.page_size == page_size
    ids = ids_of(await search.to_list())
    assert len(ids) == max_items == len(set(ids))
    assert set(ids) <= set(server.dataset.ids())


async def test_search_many_takes_the_same_combinations(
    served: tuple[FakeCopperServer, CopperClient],
) -> None:
    server, client = served
    multi = client.opportunities.search_many([None, None], raw=True, cap=CAP, max_items=6)
    assert [search.options.page_size for search in multi.searches] == [6, 6]
    records = await multi.to_list()
    assert len(records) == 6
    assert set(ids_of(records)) <= set(server.dataset.ids())


@pytest.mark.parametrize(
    ("options", "max_items"),
    [
        ({}, CAP + 1),  # default page 200, max_items past the cap
        ({"page_size": CAP + 1}, None),
        ({"page_size": 50}, 20),
    ],
)
async def test_a_page_bigger_than_the_cap_is_refused_naming_the_options_before_any_request(
    served: tuple[FakeCopperServer, CopperClient], options: dict[str, Any], max_items: int | None
) -> None:
    server, client = served
    api = client.opportunities
    with pytest.raises(InvalidOptionError) as raised:
        api.search(cap=CAP, max_items=max_items, **options)
    with pytest.raises(InvalidOptionError) as raised_many:
        api.search_many([None, None], cap=CAP, max_items=max_items, **options)
    for error in (raised.value, raised_many.value):
        assert error.option == "cap"
        assert "page_size" in error.reason
        if max_items is not None:
            assert "max_items" in error.reason
    assert server.stats["requests"] == 0


@pytest.mark.parametrize(
    ("options", "option"),
    [({"page_size": 0}, "page_size"), ({"page_size": 500}, "page_size"), ({"cap": 0}, "cap")],
)
async def test_each_option_is_still_checked_on_its_own_before_max_items_shrinks_the_page(
    served: tuple[FakeCopperServer, CopperClient], options: dict[str, Any], option: str
) -> None:
    server, client = served
    with pytest.raises(InvalidOptionError) as raised:
        client.opportunities.search(max_items=5, **{"cap": CAP, **options})
    assert raised.value.option == option
    assert server.stats["requests"] == 0


# -- the last request of a search that stops in a later window ------------------------

PAGE = 50
BIG_CAP = 1_000


def first_window_size(server: FakeCopperServer) -> int:
    """Records of the first window cut from the whole range: those created
    before the value at the cap's last whole page (position kP)."""
    created = sorted(server.dataset.record(i)["date_created"] for i in server.dataset.ids())
    return sum(1 for value in created if value < created[BIG_CAP - 1])


@pytest.mark.parametrize(
    "records",
    [
        1_800,  # the second window fits: its page 1 is the last request
        3_000,  # the second window is over the cap too: it need not be cut
    ],
)
async def test_a_search_stopping_in_a_later_window_asks_only_for_the_records_left(
    records: int,
) -> None:
    served = generated_records(records, seed=37)
    async with (
        ACCOUNT.server(served, cap=BIG_CAP) as server,
        ACCOUNT.client(server) as client,
    ):
        first = first_window_size(server)
        left = PAGE - 19  # fewer than a page from the second window
        search = client.opportunities.search(
            raw=True, max_items=first + left, page_size=PAGE, cap=BIG_CAP, concurrency=1
        )
        ids = ids_of(await search.to_list())
        assert len(ids) == first + left == len(set(ids))
        assert set(ids) <= set(server.dataset.ids())
        # The whole range's page 1 (then the first window's page 1) and its cut
        # page, the first window's other pages, and one page of ``left`` records.
        assert server.stats["requests"] == 2 + (math.ceil(first / PAGE) - 1) + 1
        # Only the cut page's records were read and not yielded.
        assert server.stats["records_served"] == first + left + PAGE
        assert search.stats.requests == server.stats["requests"]


async def test_a_later_window_waits_for_the_pages_in_flight_that_may_bring_the_last_records() -> (
    None
):
    """Pages of 200 over 6,000 records: the range's page 1 (held) and its cut
    page, then the first window's page 2 bring 400 records, enough for 234.
    The second window's first look, which the planner may issue meanwhile,
    waits for that page instead, and is never needed."""
    served = generated_records(6_000, seed=37)
    async with (
        ACCOUNT.server(served, cap=BIG_CAP) as server,
        ACCOUNT.client(server) as client,
    ):
        assert first_window_size(server) >= 2 * 200
        search = client.opportunities.search(
            raw=True, max_items=234, page_size=200, cap=BIG_CAP, concurrency=4
        )
        ids = ids_of(await search.to_list())
        assert len(ids) == 234 == len(set(ids))
        assert server.stats["requests"] == 3
