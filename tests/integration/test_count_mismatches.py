"""``stats.count_mismatches`` counts windows a user should look at again.

A reading whose records moved is read again (``stats.rereads``); only a window
whose last reading still disagreed with its count may miss records, and only
those count as mismatches, each once, with one warning naming it.
"""

from __future__ import annotations

import logging

import pytest

from copper_async.testing import Dataset, HotSpot
from tests.integration.test_search import PAGE, HarnessFactory, harness_factory, options
from tests.integration.test_search_unstable_ties import (
    MOVED,
    SECOND,
    SEED_THAT_MOVES,
    moved_warnings,
    one_hot_second,
    reported_bounds,
    search_ids,
)

__all__ = ["harness_factory"]  # the fixture, shared with the module it comes from

pytestmark = pytest.mark.asyncio


async def test_a_window_read_again_until_clean_is_no_mismatch(
    harness_factory: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A tie straddling page 1's edge makes readings repeat an id until one
    does not: every record comes, so nothing is left to act on."""
    caplog.set_level(logging.INFO, logger="copper_async")
    base = Dataset.generate(400, seed=6)
    edge = sorted(base.record(i)["date_created"] for i in base.ids())[PAGE - 1]
    dataset = Dataset.generate(400, seed=6, hot_spots=[HotSpot(created=edge, count=2)])
    harness = await harness_factory(dataset, options(ties="per_request", seed=SEED_THAT_MOVES))
    ids, stats = await search_ids(harness, max_passes=10, concurrency=1)
    assert sorted(ids) == sorted(dataset.ids())
    assert stats.rereads >= 1
    assert stats.count_mismatches == 0
    assert moved_warnings(caplog) == []
    # The readings that were read again are still logged, below a warning.
    again = [r for r in caplog.records if MOVED in r.getMessage()]
    assert len(again) == stats.rereads
    assert all(r.levelno == logging.INFO for r in again)


@pytest.mark.parametrize("seed", [2, 5])
async def test_a_window_whose_every_reading_moved_counts_once(
    harness_factory: HarnessFactory, caplog: pytest.LogCaptureFixture, seed: int
) -> None:
    """Each of the three readings of the hot second moves: two are read again,
    the window is counted once, and what is missing lies in it."""
    caplog.set_level(logging.WARNING, logger="copper_async")
    dataset = one_hot_second()
    harness = await harness_factory(dataset, options(ties="per_request", seed=seed))
    ids, stats = await search_ids(harness, max_passes=3, concurrency=1)
    assert len(ids) == len(set(ids))
    hidden = set(dataset.ids()) - set(ids)
    assert hidden, "this draw hides a record from every reading"
    assert {dataset.record(i)["date_created"] for i in hidden} == {SECOND}
    assert stats.rereads == 2
    assert stats.count_mismatches == 1 == len(reported_bounds(caplog))
    assert len(moved_warnings(caplog)) == stats.count_mismatches
