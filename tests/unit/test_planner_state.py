"""The planner's table of phases, and what it refuses."""

from __future__ import annotations

import random
from typing import Any

import pytest

from copper_async._planner import (
    PageResult,
    Window,
    WindowPlanner,
    WindowSplit,
    _state,
)
from copper_async._planner._state import (
    TRANSITIONS,
    Basis,
    Happening,
    Phase,
    Reading,
    Size,
    WindowState,
    next_phase,
)
from copper_async.exceptions import CopperError, RecordError
from tests.unit.planner_model import (
    DriftingAPI,
    ModelAPI,
    make_records,
    run,
    skewed_records,
)

# -- misuse ------------------------------------------------------------------------


def test_answers_to_requests_it_did_not_make_are_refused() -> None:
    planner = WindowPlanner(cap=100, page_size=10)
    request = planner.next_request()
    assert request is not None
    planner.feed(request, PageResult([], total=0))
    with pytest.raises(ValueError, match="not an outstanding request"):
        planner.feed(request, PageResult([], total=0))


def test_a_record_without_an_id_is_a_record_error() -> None:
    planner = WindowPlanner(cap=100, page_size=10)
    request = planner.next_request()
    assert request is not None
    with pytest.raises(RecordError) as raised:
        planner.feed(request, PageResult([{"date_created": 1}], total=1))
    assert raised.value.path == "id"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"page_size": 0}, "page_size"),
        ({"cap": 10, "page_size": 20}, "cap"),
        ({"split_fields": ()}, "split field"),
        ({"on_cap": "ignore"}, "on_cap"),
        ({"lookahead": 0}, "lookahead"),
        ({"bounds": [(5, 1), (None, None)]}, "empty bounds"),
        ({"bounds": [(None, None)]}, "one bound pair"),
    ],
)
def test_invalid_planner_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WindowPlanner(**options)


def test_a_sort_that_contradicts_the_bounds_falls_back_to_bisecting() -> None:
    planner = WindowPlanner(cap=4, page_size=2, bounds=[(0, 99), (None, None)])
    first = planner.next_request()
    assert first is not None
    planner.feed(first, PageResult([{"id": 1, "date_created": 0}] * 2, total=9))
    cut = planner.next_request()
    assert cut is not None
    assert cut.page_number == 2
    # The last record claims a value outside the window: trust the bounds instead.
    events = planner.feed(cut, PageResult([{"id": 2}, {"id": 3, "date_created": 500}], total=9))
    split = [e for e in events if isinstance(e, WindowSplit)]
    assert [c.bounds[0] for c in split[0].children] == [(0, 49), (50, 99)]


def drive_against_an_api_that_always_overflows(planner: WindowPlanner) -> None:
    """Every window claims more records than the cap, its last one at the top."""
    for _ in range(5_000):
        request = planner.next_request()
        assert request is not None
        hi = request.window.bounds[0][1]
        value = 10**6 if hi is None else hi
        planner.feed(request, PageResult([{"id": 1, "date_created": value}], total=5))


def test_splitting_that_never_converges_stops_with_an_error() -> None:
    planner = WindowPlanner(cap=2, page_size=1, split_fields=("date_created",), on_cap="warn")
    with pytest.raises(CopperError, match="does not converge"):
        drive_against_an_api_that_always_overflows(planner)


# -- the table of phases ------------------------------------------------------------


def _scenarios() -> list[tuple[ModelAPI, WindowPlanner, int]]:
    """Runs that between them take every row of the table."""
    hot = make_records([7] * 1_300 + [8] * 10, [3] * 1_310)
    return [
        # Cuts on exact totals; reading on past a lower hidden cap.
        (ModelAPI(skewed_records(3_000, 1), cap=1_000), WindowPlanner(cap=1_000, page_size=50), 4),
        (
            ModelAPI(skewed_records(400, 8), cap=1_000, hidden_cap=100, refuse_past_cap=True),
            WindowPlanner(cap=1_000, page_size=50),
            1,
        ),
        # No totals at all; over-counting totals (page 1 held, then read).
        (
            ModelAPI(skewed_records(2_490, 4), cap=1_000, total_mode="absent"),
            WindowPlanner(cap=1_000, page_size=50),
            1,
        ),
        (
            ModelAPI(skewed_records(990, 6), cap=1_000, fixed_total=1_100),
            WindowPlanner(cap=1_000, page_size=50),
            1,
        ),
        # A window that fits by the time its cut page comes (records deleted).
        (
            DriftingAPI(skewed_records(1_001, 9), cap=1_000, every=1),
            WindowPlanner(cap=1_000, page_size=50),
            1,
        ),
        # A user's one-second range on the only split field, over the cap.
        (
            ModelAPI(hot, cap=1_000),
            WindowPlanner(
                cap=1_000,
                page_size=50,
                split_fields=("date_created",),
                bounds=[(7, 7)],
                on_cap="warn",
            ),
            1,
        ),
        # One second over the cap on the last field: read up to the cap.
        (ModelAPI(hot, cap=1_000), WindowPlanner(cap=1_000, page_size=50, on_cap="warn"), 1),
        # One second under the cap on the last field that an over-count says is over.
        (
            ModelAPI(make_records([5] * 22, [0] * 22), cap=25, total_mode="overcount"),
            WindowPlanner(cap=25, page_size=10, split_fields=("date_created",)),
            1,
        ),
        # A total that pages prove wrong, with pages in flight.
        (
            ModelAPI(skewed_records(3_000, 7), cap=1_000, fixed_total=999),
            WindowPlanner(cap=1_000, page_size=50),
            5,
        ),
        # Records that move while read.
        (
            DriftingAPI(make_records(list(range(1_000, 1_400)), [0] * 400), cap=1_000, every=4),
            WindowPlanner(cap=1_000, page_size=20, max_passes=5),
            1,
        ),
    ]


def test_every_transition_taken_is_in_the_table_and_every_row_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken: set[tuple[Phase, Happening]] = set()

    def recording(phase: Phase, happening: Happening) -> Phase:
        taken.add((phase, happening))
        return next_phase(phase, happening)  # raises for a move the table lacks

    monkeypatch.setattr(_state, "next_phase", recording)
    for api, planner, in_flight in _scenarios():
        run(planner, api, rng=random.Random(1), max_in_flight=in_flight)
    assert taken <= set(TRANSITIONS)
    assert set(TRANSITIONS) - taken == set(), "rows no run takes"


def test_a_move_the_table_lacks_is_refused() -> None:
    state = WindowState(Window(0, ((None, None),), 0))
    reading = Reading(Size.exact(5, 2, Basis.TOTAL), first_total=5)
    with pytest.raises(AssertionError, match="no transition from LOOK on PAGE"):
        state.move(Happening.PAGE, reading)
    with pytest.raises(AssertionError, match="leads from LOOK to CUT, not READ"):
        state.move(Happening.FULL_FIRST_PAGE, reading)
    with pytest.raises(AssertionError, match="does not end"):
        state.leave(Happening.FITS)
    state.move(Happening.FITS, reading)
    assert state.phase is Phase.READ


def test_every_phase_but_the_last_two_can_be_left_and_those_end_a_window() -> None:
    sources = {phase for phase, _ in TRANSITIONS}
    targets = set(TRANSITIONS.values())
    assert sources == set(Phase) - {Phase.DONE, Phase.REPLACED}
    assert targets == set(Phase)


@pytest.mark.parametrize(
    "fields",
    [
        {"basis": Basis.TOTAL},
        {"basis": Basis.PAGES, "n_pages": 2},
        {"basis": Basis.UNKNOWN, "expected": 4},
        {"basis": Basis.UNKNOWN, "n_pages": 3},
        {"basis": Basis.CAP},
        {"basis": Basis.CAP, "n_pages": 3, "page_limit": 2},
    ],
)
def test_a_size_whose_parts_disagree_cannot_be_built(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="size"):
        Size(**fields)
