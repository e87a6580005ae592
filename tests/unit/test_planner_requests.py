"""What a search costs in requests: close to one per page of data."""

from __future__ import annotations

import subprocess
import sys

import pytest

from copper_async._planner import (
    WindowPlanner,
    WindowSplit,
)
from tests.unit.planner_model import (
    FIELDS,
    ModelAPI,
    TotalMode,
    leaves,
    make_records,
    run,
    skewed_records,
)

# -- request efficiency ----------------------------------------------------------


@pytest.mark.parametrize("total_mode", ["exact", "capped", "overcount"])
def test_requests_stay_near_the_ideal_when_a_total_is_sent(total_mode: TotalMode) -> None:
    records = skewed_records(25_000, seed=1)
    cap, page_size = 1_000, 50
    api = ModelAPI(records, cap=cap, total_mode=total_mode)
    planner = WindowPlanner(cap=cap, page_size=page_size, split_fields=FIELDS)
    delivered, events = run(planner, api, max_in_flight=8)
    assert sorted(delivered) == [r["id"] for r in records]
    ideal = -(-len(records) // page_size)
    leaf_count = len(leaves(events))
    assert len(api.requests) <= 1.01 * ideal + 3 * leaf_count
    # Cuts are sized from the data, so leaves are few: about N / cap.
    assert leaf_count <= 2 * len(records) / cap + 2
    if total_mode == "exact":
        # One cut page per split; the rest of a cut is known to overflow without a look.
        assert len(api.requests) <= ideal + leaf_count + 2


def test_requests_without_a_total_are_still_close_to_the_ideal() -> None:
    records = skewed_records(25_000, seed=2)
    api = ModelAPI(records, cap=1_000, total_mode="absent")
    planner = WindowPlanner(cap=1_000, page_size=50, split_fields=FIELDS)
    delivered, events = run(planner, api, max_in_flight=8)
    assert sorted(delivered) == [r["id"] for r in records]
    ideal = -(-len(records) // 50)
    assert len(api.requests) <= 1.2 * ideal + 3 * len(leaves(events))


def test_a_cut_hands_its_page_1_to_its_first_window() -> None:
    """The root's page 1, held while its cut page decided, is also page 1 of
    the first window cut from it: that window starts at page 2."""
    records = make_records(list(range(1, 1_501)), [0] * 1_500)
    api = ModelAPI(records, cap=1_000, total_mode="exact")
    planner = WindowPlanner(cap=1_000, page_size=50)
    delivered, events = run(planner, api, max_in_flight=1)
    assert sorted(delivered) == [r["id"] for r in records]
    first, _second = leaves(events)
    looks = [r.page_number for r in api.requests if r.window == first]
    assert looks[0] == 2
    assert 1 not in looks
    assert planner.stats.pages_discarded == 0
    # The root's page 1 and cut page, then 1,500 records' pages, one short page
    # of the first window (it ends before the cut page's last record) included.
    assert len(api.requests) == 2 + 30


def test_a_handed_down_page_in_another_tie_order_is_caught_and_read_again() -> None:
    """An API may order one second's records differently in the narrower
    query: the held page is then not the window's page 1, an id of it comes
    again on a later page, and the window is read afresh from page 1."""
    created = [1] * 30 + [2] * 40 + list(range(3, 1_433))
    records = make_records(created, [0] * len(created))
    api = ModelAPI(records, cap=1_000, total_mode="exact", ties="per_window")
    planner = WindowPlanner(cap=1_000, page_size=50)
    delivered, _events = run(planner, api, max_in_flight=1)
    assert sorted(delivered) == [r["id"] for r in records]
    assert len(delivered) == len(set(delivered))
    assert planner.stats.shifted_reads > 0
    assert planner.stats.rereads == 1


TIE_ORDER = """
from copper_async._planner import PageRequest, Window
from tests.unit.planner_model import ModelAPI, make_records

api = ModelAPI(make_records([1] * 20, [0] * 20), cap=100, ties="per_window")
window = Window(0, ((None, None), (None, None)), 0, 0)
print([r["id"] for r in api.answer(PageRequest(window, 1, 20, "date_created", 0)).records])
"""


def test_the_models_own_tie_order_is_the_same_in_every_process() -> None:
    """A failing example hypothesis replays must see the same orders."""
    orders = {
        subprocess.run(
            [sys.executable, "-c", TIE_ORDER], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(3)
    }
    assert len(orders) == 1


def test_a_query_that_fits_costs_exactly_its_pages() -> None:
    records = skewed_records(990, seed=3)
    api = ModelAPI(records, cap=1_000, total_mode="exact")
    planner = WindowPlanner(cap=1_000, page_size=50)
    delivered, events = run(planner, api)
    assert len(api.requests) == 20
    assert len(delivered) == 990
    assert not any(isinstance(e, WindowSplit) for e in events)


def test_without_a_total_a_fitting_query_costs_no_extra_page_once_learned() -> None:
    records = skewed_records(2_490, seed=4)
    api = ModelAPI(records, cap=1_000, total_mode="absent")
    planner = WindowPlanner(cap=1_000, page_size=50)
    delivered, _ = run(planner, api, max_in_flight=1)
    assert sorted(delivered) == [r["id"] for r in records]
    # 50 pages of data; the root's first look and cut pages are the only waste.
    assert len(api.requests) <= 50 + 4 + 3


# -- searches of any size ----------------------------------------------------------


def test_a_search_of_hundreds_of_windows_does_not_trip_the_convergence_guard() -> None:
    """Only splits a correct sort makes needless count towards the guard: the
    chain of "rest" windows a long search cuts off one by one does not."""
    records = make_records([i // 3 for i in range(30_000)], [0] * 30_000)
    api = ModelAPI(records, cap=100, total_mode="exact")
    planner = WindowPlanner(cap=100, page_size=10)
    delivered, events = run(planner, api, max_in_flight=4)
    assert len(leaves(events)) > 300
    assert sorted(delivered) == [r["id"] for r in records]
    assert max(w.depth for w in leaves(events)) <= 2
