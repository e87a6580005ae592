"""The engine searches whatever resource it is described, over loopback HTTP.

The fake server serves only opportunities: a page source in front of the real
client records the path each request was for and sends it to that endpoint,
so a "leads" resource with its own path, record class and id reads the
opportunities' records as leads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs
import pytest
import pytest_asyncio

from copper_async import Opportunity
from copper_async._clock import LoopClock
from copper_async._opportunities import ResourceAPI
from copper_async._pages import RawPage
from copper_async._resources import OPPORTUNITIES, Resource
from copper_async.client import CopperClient
from copper_async.exceptions import InvalidOptionError
from copper_async.filters import DateField, OpportunityFilter
from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions

pytestmark = pytest.mark.asyncio

CAP, PAGE = 1_000, 50
RECORDS = 2_400
WALL_TIME = 1_600_000_000.75


@attrs.frozen
class Lead:
    id: int
    name: str


def structure_leads(page: list[dict[str, Any]]) -> list[Lead]:
    return [Lead(record["id"], record["name"]) for record in page]


LEADS = Resource(
    name="leads",
    path="leads/search",
    record_class=Lead,
    structure_page=structure_leads,
    filter_class=OpportunityFilter,
)


@attrs.define
class Rerouted:
    """A page source that notes what it was asked for, then asks the client."""

    client: CopperClient
    base_url: str
    user_email: str
    paths: list[str] = attrs.Factory(list)
    bodies: list[dict[str, Any]] = attrs.Factory(list)

    async def fetch_page(
        self,
        body: Mapping[str, Any],
        *,
        path: str = "",
        context: Mapping[str, Any] | None = None,
    ) -> RawPage:
        self.paths.append(path)
        self.bodies.append(dict(body))
        return await self.client.fetch_page(body, context=context)


class FrozenWallClock(LoopClock):
    """The loop's clock, but a fixed wall time."""

    def time(self) -> float:
        return WALL_TIME


@pytest_asyncio.fixture
async def source() -> AsyncIterator[Rerouted]:
    options = FakeServerOptions(cap=CAP)
    async with (
        FakeCopperServer(Dataset.generate(RECORDS, seed=5), options=options) as server,
        CopperClient(
            access_token=options.access_token,
            user_email=options.user_email,
            base_url=server.url,
            rate_limit=None,
        ) as client,
    ):
        yield Rerouted(client, client.base_url, client.user_email)


async def test_a_resource_brings_its_path_and_record_class_to_the_engine(
    source: Rerouted,
) -> None:
    search = ResourceAPI(source, LEADS).search(page_size=PAGE, cap=CAP)
    leads = [lead async for lead in search]
    assert all(isinstance(lead, Lead) for lead in leads)
    assert len({lead.id for lead in leads}) == len(leads) == RECORDS
    # Past the cap, so windows were split, every request on the resource's path.
    assert search.stats.windows_split > 0
    assert set(source.paths) == {"leads/search"}
    assert len(source.paths) == search.stats.requests


async def test_a_union_of_searches_tells_records_apart_by_the_resources_id(
    source: Rerouted,
) -> None:
    everything, won = OpportunityFilter(), OpportunityFilter(statuses=["Won"])
    many = ResourceAPI[Lead, OpportunityFilter](source, LEADS).search_many(
        [everything, won], union=True, page_size=PAGE, cap=CAP
    )
    leads = [lead async for lead in many]
    assert len({lead.id for lead in leads}) == len(leads) == RECORDS
    assert many.duplicates_dropped > 0


async def test_a_split_field_the_resource_cannot_split_on_is_refused(source: Rerouted) -> None:
    created_only = attrs.evolve(LEADS, split_fields=(DateField.CREATED,))
    api = ResourceAPI[Lead, OpportunityFilter](source, created_only)
    with pytest.raises(InvalidOptionError) as raised:
        api.search(split_field="date_modified", secondary_field=None)
    assert raised.value.option == "split_field"
    assert "leads cannot be split on date_modified" in str(raised.value)
    with pytest.raises(InvalidOptionError):
        api.search()  # the secondary field, date_modified by default
    assert len(api.search(secondary_field=None).options.split_fields) == 1
    assert source.paths == []


async def test_a_search_ends_at_its_clocks_wall_time_and_counts_into_one_stats_object(
    source: Rerouted,
) -> None:
    clock = FrozenWallClock()
    api = ResourceAPI[Opportunity, OpportunityFilter](source, OPPORTUNITIES, clock=clock)
    search = api.search(page_size=PAGE, cap=CAP, raw=True)
    ids = {record["id"] async for record in search}
    # Records created after the start do not shift pages: the clock's now, plus skew.
    end_at = int(WALL_TIME) + 300
    assert source.bodies[0]["maximum_created_date"] == end_at
    bounded = ResourceAPI(source, OPPORTUNITIES).search(
        page_size=PAGE, cap=CAP, raw=True, end_at=end_at
    )
    assert ids == {record["id"] async for record in bounded}
    assert 0 < len(ids) < RECORDS
    assert search.planner.stats is search.stats
    assert search.stats.records_delivered == search.stats.records == len(ids)
    assert search.stats.windows_done > 0
