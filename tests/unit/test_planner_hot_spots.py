"""Seconds that hold more than the cap, and what a cap error says."""

from __future__ import annotations

import random

import pytest

from copper_async._planner import (
    CapLimited,
    CountMismatch,
    Deliver,
    PageResult,
    WindowPlanner,
)
from copper_async.exceptions import CapExceededError
from tests.unit.planner_model import (
    EditingAPI,
    ModelAPI,
    leaves,
    make_records,
    run,
)

# -- hot spots and the cap -------------------------------------------------------


def test_a_hot_second_is_split_on_the_second_field() -> None:
    created = [5_000] * 2_500 + list(range(1, 500))
    records = make_records(created, [i % 700 for i in range(len(created))])
    api = ModelAPI(records, cap=1_000, total_mode="exact")
    planner = WindowPlanner(cap=1_000, page_size=50)
    delivered, events = run(planner, api)
    assert sorted(delivered) == [r["id"] for r in records]
    assert planner.stats.hot_spots == 1
    secondary = [w for w in leaves(events) if w.level == 1]
    assert secondary
    assert all(w.bounds[0] == (5_000, 5_000) for w in secondary)


def test_an_unsplittable_window_raises_naming_it_and_the_loss() -> None:
    # The ten records of second 1 are read first, and their total counts them
    # exactly: from then on a total is taken as a count, not an upper bound.
    records = make_records([1] * 10 + [7] * 1_300, [0] * 10 + [3] * 1_300)
    planner = WindowPlanner(cap=1_000, page_size=50)
    with pytest.raises(CapExceededError) as raised:
        run(planner, ModelAPI(records, cap=1_000), max_in_flight=1)
    assert raised.value.window == {"date_created": [7, 7], "date_modified": [10, 10]}
    assert raised.value.count == 1_300
    assert raised.value.unreachable == 300
    assert raised.value.exact
    assert "300 records are unreachable" in str(raised.value)


def test_warn_mode_reads_what_is_reachable_and_reports_the_loss() -> None:
    records = make_records([7] * 1_300 + [8] * 10, [3] * 1_310)
    planner = WindowPlanner(cap=1_000, page_size=50, on_cap="warn")
    delivered, events = run(planner, ModelAPI(records, cap=1_000))
    limited = [e for e in events if isinstance(e, CapLimited)]
    assert len(limited) == 1
    assert limited[0].unreachable == 300
    assert planner.stats.unreachable_records == 300
    assert len(delivered) == len(set(delivered)) == 1_010


def test_without_a_total_the_loss_is_reported_as_unknown() -> None:
    records = make_records([7] * 1_300, [3] * 1_300)
    planner = WindowPlanner(cap=1_000, page_size=50)
    with pytest.raises(CapExceededError) as raised:
        run(planner, ModelAPI(records, cap=1_000, total_mode="absent"))
    assert raised.value.count is None
    assert raised.value.unreachable is None
    assert "may be unreachable" in str(raised.value)


# -- hot seconds ------------------------------------------------------------------


def test_a_hot_second_costs_no_discarded_looks() -> None:
    """Page k showing one second to the end goes straight to the next field."""
    created = list(range(1, 801)) + [5_000] * 2_500
    records = make_records(created, [i % 900 for i in range(len(created))])
    api = ModelAPI(records, cap=1_000, total_mode="exact")
    planner = WindowPlanner(cap=1_000, page_size=50)
    delivered, events = run(planner, api)
    assert sorted(delivered) == [r["id"] for r in records]
    # Not even the root's page 1 is thrown away: it is its first window's page 1.
    assert planner.stats.pages_discarded == 0
    hot_looks = [r.page_number for r in api.requests if r.window.bounds[0] == (5_000, 5_000)]
    assert hot_looks[0] == 20, "the hot second's first look is its cut page"
    ideal = -(-len(records) // 50)
    assert len(api.requests) <= ideal + 2 * len(leaves(events)) + 2


@pytest.mark.parametrize("seed", range(6))
def test_edits_inside_a_hot_second_deliver_every_record_once(seed: int) -> None:
    """A hot second is split on date_modified, which an edit changes: the edited
    record moves to a window not yet read (it must not come twice) or to the end
    of the window being read (the rest shift back: the skipped one must be found)."""
    created = [5_000] * 2_600 + list(range(1, 400))
    records = make_records(created, [i % 1_000 for i in range(len(created))])
    api = EditingAPI([dict(r) for r in records], cap=1_000, total_mode="exact", hot=5_000, edits=60)
    api.rng = random.Random(seed)
    planner = WindowPlanner(cap=1_000, page_size=50, max_passes=5)
    delivered, _ = run(planner, api, rng=random.Random(seed), max_in_flight=3)
    assert len(delivered) == len(set(delivered)), "an edited record came twice"
    assert sorted(delivered) == [r["id"] for r in records]


def test_an_id_read_twice_in_one_reading_makes_the_window_read_again() -> None:
    planner = WindowPlanner(cap=100, page_size=2)
    a, b, c, d = ({"id": i, "date_created": i, "date_modified": i} for i in (1, 2, 3, 4))
    first = planner.next_request()
    assert first is not None
    planner.feed(first, PageResult([a, b], total=4))
    second = planner.next_request()
    assert second is not None
    # b was edited to the end of the order (the total is unchanged): c slid back
    # onto page 1, which was already read, and would be skipped.
    events = planner.feed(second, PageResult([d, b], total=4))
    assert planner.stats.shifted_reads == 1
    mismatch = [e for e in events if isinstance(e, CountMismatch)]
    assert mismatch
    assert mismatch[0].reread
    assert "twice" in mismatch[0].reason
    again = planner.next_request()
    assert again is not None
    assert (again.page_number, again.pass_number) == (1, 1)
    events = planner.feed(again, PageResult([a, c], total=4))
    assert [r["id"] for e in events if isinstance(e, Deliver) for r in e.records] == [3]


# -- the cap error says what is known ---------------------------------------------------


def test_a_cap_error_says_up_to_unless_totals_proved_exact() -> None:
    records = make_records([7] * 1_300, [3] * 1_300)
    api = ModelAPI(records, cap=1_000, total_mode="overcount")
    with pytest.raises(CapExceededError) as raised:
        run(WindowPlanner(cap=1_000, page_size=50), api)
    assert not raised.value.exact
    assert raised.value.count == 1_300 + 130 + 3
    assert "up to 433 records may be unreachable" in str(raised.value)
