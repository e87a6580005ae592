"""How ``cap``, ``page_size`` and ``max_items`` combine, over loopback.

A search that stops after ``max_items`` records asks for no bigger page than
those records; the planner's cuts need a page that lies wholly inside the
cap. So a search is served when ``min(page_size, max_items) <= cap`` and
refused before any request otherwise.
"""

from __future__ import annotations

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
