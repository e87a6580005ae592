"""The engine against an API whose tie order changes from one request to the next.

Offset paging cannot be exact then: a run of equal sort values straddling a
page edge can show a record on both pages and hide another. The planner sees
the repeat, reads the window again (at most ``max_passes`` readings) and
delivers only unseen ids; what is still missing after the last reading lies
in a window it reported (``stats.count_mismatches`` and a warning). Never a
duplicate, never a silent loss.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio

from copper_async._planner._windows import Bound, inside
from copper_async.testing import Dataset, FakeCopperServer, HotSpot, parse_search_body
from copper_async.testing._options import TotalMode
from tests.integration.test_search import (
    CAP,
    PAGE,
    Harness,
    HarnessFactory,
    collect,
    harness_factory,
    options,
)

__all__ = ["harness_factory"]  # the fixture, shared with the module it comes from

pytestmark = pytest.mark.asyncio

SECOND = 1_600_000_000
AUTH = {
    "X-PW-AccessToken": "fake-token",
    "X-PW-Application": "developer_api",
    "X-PW-UserEmail": "fake@example.com",
}
FIELDS = ("date_created", "date_modified")  # the default split and secondary fields
MOVED = "records came twice in one reading"
# A draw whose first reading of the three-record tie repeats an id (two seeds in three do).
SEED_THAT_MOVES = 1


def one_hot_second() -> Dataset:
    """400 records and a bulk import of 120 in one created second: one window
    (under the cap), whose tie straddles two page edges."""
    return Dataset.generate(400, seed=6, hot_spots=[HotSpot(created=SECOND, count=120)])


def truth_ids(dataset: Dataset) -> list[int]:
    """Every id in date_created order, ties by id."""
    return list(dataset.search(parse_search_body({"sort_by": "date_created"})[0]))


def hot_ids(dataset: Dataset) -> set[int]:
    return {i for i in dataset.ids() if dataset.record(i)["date_created"] == SECOND}


def moved_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and MOVED in r.getMessage()]


def reported_bounds(caplog: pytest.LogCaptureFixture) -> list[tuple[Bound, ...]]:
    """The windows of the readings that moved and were not read again."""
    reported: list[tuple[Bound, ...]] = []
    for record in moved_warnings(caplog):
        if "reading it again" not in record.getMessage():
            assert isinstance(record.args, tuple)
            bounds = record.args[0]
            assert isinstance(bounds, tuple)
            reported.append(bounds)
    return reported


# -- the server -----------------------------------------------------------------------


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def read_pages(
    session: aiohttp.ClientSession, server: FakeCopperServer, pages: range
) -> list[list[dict[str, Any]]]:
    body = {"sort_by": "date_created", "page_size": PAGE}
    read = []
    for number in pages:
        async with session.post(
            f"{server.url}/opportunities/search",
            data=orjson.dumps({**body, "page_number": number}),
            headers=AUTH,
        ) as response:
            assert response.status == 200
            read.append(orjson.loads(await response.read()))
    return read


async def test_each_request_of_one_query_draws_its_own_tie_order(
    session: aiohttp.ClientSession,
) -> None:
    dataset = one_hot_second()
    async with FakeCopperServer(dataset, options=options(ties="per_request", seed=3)) as server:
        pages = range(1, 12)
        first, second = (
            await read_pages(session, server, pages),
            await read_pages(session, server, pages),
        )
    assert first != second
    for one, other in zip(first, second, strict=True):
        # Each position holds the same second either way: only ties moved.
        assert [r["date_created"] for r in one] == [r["date_created"] for r in other]
    ids = [record["id"] for page in first for record in page]
    assert len(ids) == len(dataset), "every position was read once"
    # So paging by offset shows some record twice and hides another, in the hot second.
    twice = {i for i, times in Counter(ids).items() if times > 1}
    hidden = set(dataset.ids()) - set(ids)
    assert twice
    assert len(hidden) == len(ids) - len(set(ids))
    assert twice | hidden <= hot_ids(dataset)


async def test_the_draws_repeat_for_a_seed_and_request_sequence(
    session: aiohttp.ClientSession,
) -> None:
    """Another server, or new options on the same one, draws the same again."""
    dataset = one_hot_second()
    read = []
    for seed in (3, 3, 4):
        async with FakeCopperServer(dataset, options=options(ties="per_request", seed=seed)) as s:
            read.append(await read_pages(session, s, range(1, 12)))
            if seed == 4:
                s.options = options(ties="per_request", seed=3)
                read.append(await read_pages(session, s, range(1, 12)))
    assert read[0] == read[1] == read[3]
    assert read[0] != read[2]


# -- the engine -----------------------------------------------------------------------


async def search_ids(harness: Harness, **search_options: Any) -> tuple[list[int], Any]:
    search = harness.client.opportunities.search(
        page_size=PAGE, cap=CAP, raw=True, **search_options
    )
    return [record["id"] for record in await collect(search)], search.stats


@pytest.mark.parametrize("total_mode", ["exact", "overcount", "absent"])
async def test_a_reading_that_repeats_an_id_is_read_again_and_what_stays_hidden_is_reported(
    harness_factory: HarnessFactory, caplog: pytest.LogCaptureFixture, total_mode: TotalMode
) -> None:
    """One page at a time, so that both searches' first readings get the same
    draws: the second search's re-reads only add what the first reading hid."""
    caplog.set_level(logging.WARNING, logger="copper_async")
    dataset = one_hot_second()
    server_options = options(ties="per_request", total_mode=total_mode, seed=2)
    once, once_stats = await search_ids(
        await harness_factory(dataset, server_options), max_passes=1, concurrency=1
    )
    assert len(once) == len(set(once))
    assert once_stats.shifted_reads > 0
    assert (once_stats.rereads, once_stats.count_mismatches) == (0, 1)
    hidden_once = set(dataset.ids()) - set(once)
    assert hidden_once, "the straddling tie hid a record from the one reading"
    assert hidden_once <= hot_ids(dataset)
    assert len(reported_bounds(caplog)) == 1
    caplog.clear()

    thrice, stats = await search_ids(
        await harness_factory(dataset, server_options), max_passes=3, concurrency=1
    )
    assert len(thrice) == len(set(thrice))
    assert set(once) <= set(thrice)
    assert stats.rereads >= 1
    assert len(moved_warnings(caplog)) == stats.count_mismatches
    hidden = set(dataset.ids()) - set(thrice)
    assert len(hidden) < len(hidden_once), "re-reads delivered records the first reading hid"
    if hidden:
        # Every reading moved: two were read again, the window is reported once.
        assert hidden <= hot_ids(dataset)
        assert (stats.rereads, stats.count_mismatches) == (2, 1)
        assert len(reported_bounds(caplog)) == 1
    else:
        assert stats.count_mismatches == 0
        assert reported_bounds(caplog) == []


async def test_re_reads_deliver_every_record_once_a_reading_comes_out_clean(
    harness_factory: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A tie of three straddles the first page edge (one on page 1, two on
    page 2): two readings in three repeat an id. The window is read again
    until one does not; that reading saw every record, so none is missing
    and nothing is reported."""
    caplog.set_level(logging.WARNING, logger="copper_async")
    base = Dataset.generate(400, seed=6)
    edge = sorted(base.record(i)["date_created"] for i in base.ids())[PAGE - 1]
    dataset = Dataset.generate(400, seed=6, hot_spots=[HotSpot(created=edge, count=2)])
    by_id = [i for i in truth_ids(dataset) if dataset.record(i)["date_created"] == edge]
    assert truth_ids(dataset)[PAGE - 1 : PAGE + 2] == by_id
    harness = await harness_factory(dataset, options(ties="per_request", seed=SEED_THAT_MOVES))
    ids, stats = await search_ids(harness, max_passes=10, concurrency=1)
    assert sorted(ids) == sorted(dataset.ids())
    assert stats.rereads >= 1
    assert stats.count_mismatches == 0 == len(moved_warnings(caplog))
    assert reported_bounds(caplog) == []


@pytest.mark.parametrize("total_mode", ["exact", "overcount", "capped", "absent"])
async def test_past_the_cap_no_record_comes_twice_and_none_is_lost_unreported(
    harness_factory: HarnessFactory, caplog: pytest.LogCaptureFixture, total_mode: TotalMode
) -> None:
    """Split windows, page 1 handed down, hot seconds split on the next
    field, pages in flight at once: every record the engine did not deliver
    lies in a window it reported."""
    caplog.set_level(logging.WARNING, logger="copper_async")
    dataset = Dataset.generate(
        2_500,
        seed=4,
        hot_spots=[
            HotSpot(created=1_000_000_000, count=120),
            HotSpot(created=1_300_000_000, count=75, modified_spread=0),
            HotSpot(created=SECOND, count=1_500),
        ],
    )
    harness = await harness_factory(
        dataset, options(ties="per_request", total_mode=total_mode, seed=7)
    )
    ids, stats = await search_ids(harness)
    assert len(ids) == len(set(ids))
    assert stats.windows_split > 0
    assert stats.shifted_reads > 0
    hidden = set(dataset.ids()) - set(ids)
    reported = reported_bounds(caplog)
    assert stats.count_mismatches >= len(reported)
    for record_id in hidden:
        record = dataset.record(record_id)
        assert any(inside(record, bounds, FIELDS) for bounds in reported), record


async def test_without_ties_in_the_sort_every_record_comes_once(
    harness_factory: HarnessFactory,
) -> None:
    """Split on date_modified, which the bulk imports spread over a day: no
    tie to reorder, so per-request draws change nothing."""
    dataset = Dataset.generate(2_500, seed=4, hot_spots=[HotSpot(created=SECOND, count=1_500)])
    harness = await harness_factory(dataset, options(ties="per_request", seed=7))
    ids, stats = await search_ids(harness, split_field="date_modified")
    assert sorted(ids) == sorted(dataset.ids())
    assert (stats.shifted_reads, stats.count_mismatches, stats.rereads) == (0, 0, 0)
    assert stats.windows_split > 0
