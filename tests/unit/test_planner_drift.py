"""Records that move while a window is read, and totals that over-count or lie."""

from __future__ import annotations

import random

import pytest

from copper_async._planner import (
    CountMismatch,
    Deliver,
    PageResult,
    TotalsDistrusted,
    WindowPlanner,
)
from tests.unit.planner_model import (
    DriftingAPI,
    ModelAPI,
    make_records,
    run,
    skewed_records,
)

# -- drift -----------------------------------------------------------------------


def test_deletions_while_reading_are_noticed_and_nothing_stable_is_lost() -> None:
    records = make_records(list(range(1_000, 1_400)), [0] * 400)
    api = DriftingAPI(records=list(records), cap=1_000, total_mode="exact", every=4)
    planner = WindowPlanner(cap=1_000, page_size=20, max_passes=5)
    delivered, events = run(planner, api, max_in_flight=1)
    assert len(delivered) == len(set(delivered))
    stable = {r["id"] for r in records} - set(api.deleted)
    assert stable <= set(delivered)
    assert planner.stats.count_mismatches >= 1
    assert any(isinstance(e, CountMismatch) and e.reread for e in events)


def test_duplicates_from_shifted_offsets_are_dropped() -> None:
    planner = WindowPlanner(cap=100, page_size=2)
    first = planner.next_request()
    assert first is not None
    a, b, c = ({"id": i, "date_created": i, "date_modified": i} for i in (1, 2, 3))
    planner.feed(first, PageResult([a, b], total=3))
    second = planner.next_request()
    assert second is not None
    assert second.page_number == 2
    # A record inserted before the page moved b onto page 2.
    events = planner.feed(second, PageResult([b, c], total=3))
    deliveries = [e for e in events if isinstance(e, Deliver)]
    assert [r["id"] for r in deliveries[0].records] == [3]
    assert deliveries[0].duplicates == 1
    assert planner.stats.duplicates_dropped == 1


def test_reading_on_past_whole_pages_drops_an_overlap_not_a_duplicate() -> None:
    """400 records in 8 full pages, below the cap: the planner reads on from
    the last second (the API may cap there) and gets its one record again.
    The planner asked for it twice; the server sent nothing twice."""
    records = make_records(list(range(1_000, 1_400)), [0] * 400)
    api = ModelAPI(records, cap=1_000)
    planner = WindowPlanner(cap=1_000, page_size=50)
    delivered, _ = run(planner, api)
    assert sorted(delivered) == [r["id"] for r in records]
    assert (planner.stats.windows_continued, len(api.requests)) == (1, 9)
    assert planner.stats.duplicates_dropped == 0
    assert planner.stats.overlaps_dropped == 1


def test_an_edit_moving_a_record_between_a_hot_seconds_windows_is_a_duplicate() -> None:
    """Record 1 is delivered by the first window of a hot second, then edited
    to the end of its last window: the server sends it twice. The first
    window, shifted by the edit, is read again: those ids the planner asked
    for twice."""
    records = make_records([100] * 30, list(range(30)))
    api = ModelAPI(records, cap=10)
    planner = WindowPlanner(cap=10, page_size=5)
    delivered: list[int] = []
    while not planner.finished:
        request = planner.next_request()
        assert request is not None
        for event in planner.feed(request, api.answer(request)):
            if isinstance(event, Deliver):
                delivered += [record["id"] for record in event.records]
        if request.window.level == 1 and delivered and api.version == 0:
            api.records[0]["date_modified"] = 10_000
            api.version += 1
    assert sorted(delivered) == [r["id"] for r in records]
    assert planner.stats.rereads == 1
    assert planner.stats.duplicates_dropped == 1
    assert planner.stats.overlaps_dropped == 7


# -- totals that over-count, or lie ----------------------------------------------------


def test_a_stable_total_above_the_records_is_an_over_count_not_drift() -> None:
    records = skewed_records(5_000, seed=5)
    api = ModelAPI(records, cap=1_000, total_mode="overcount")
    planner = WindowPlanner(cap=1_000, page_size=50)
    delivered, events = run(planner, api)
    assert sorted(delivered) == [r["id"] for r in records]
    assert planner.stats.overcounted_windows >= 1
    assert planner.stats.count_mismatches == 0
    assert not [e for e in events if isinstance(e, CountMismatch)]


def test_a_full_page_1_that_may_not_fit_is_held_not_thrown_away() -> None:
    """An over-counting total says 1,100 of a window that holds 990: page 1 is
    kept while page k decides, so the window costs its 20 pages, and one look
    past its last record: no query was served further, and an API capping at
    990 would look the same."""
    records = skewed_records(990, seed=6)
    api = ModelAPI(records, cap=1_000, fixed_total=1_100)
    planner = WindowPlanner(cap=1_000, page_size=50)
    delivered, _ = run(planner, api)
    assert sorted(delivered) == [r["id"] for r in records]
    assert [r.page_number for r in api.requests][:2] == [1, 20]
    assert len(api.requests) == 21
    assert planner.stats.windows_continued == 1
    assert planner.stats.pages_discarded == 0


@pytest.mark.parametrize("lie", [0, 5, 60, 999])
def test_a_total_its_own_page_contradicts_is_ignored_from_then_on(lie: int) -> None:
    """A constant total below what the pages hold would end the search early:
    once a page proves it wrong, totals are ignored and nothing is lost."""
    records = skewed_records(3_000, seed=7)
    api = ModelAPI(records, cap=1_000, fixed_total=lie)
    planner = WindowPlanner(cap=1_000, page_size=50)
    delivered, events = run(planner, api, rng=random.Random(lie), max_in_flight=5)
    assert len(delivered) == len(set(delivered))
    assert sorted(delivered) == [r["id"] for r in records]
    assert planner.stats.totals_distrusted
    distrusted = [e for e in events if isinstance(e, TotalsDistrusted)]
    assert len(distrusted) == 1
    assert distrusted[0].total == lie
    assert distrusted[0].records_through > lie
