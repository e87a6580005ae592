"""Every id exactly once, whatever the data, the totals and the cap."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from copper_async._planner import (
    READ_ON_REASON,
    Deliver,
    PageRequest,
    WindowPlanner,
    WindowSplit,
)
from copper_async.exceptions import CapExceededError
from tests.unit.planner_model import (
    FIELDS,
    ModelAPI,
    Ties,
    TotalMode,
    assert_partition,
    check_cap_error,
    datasets,
    leaves,
    max_per_second_pair,
    run,
    skewed_records,
)

READ_ON = READ_ON_REASON


# -- properties ----------------------------------------------------------------


@settings(max_examples=100)
@given(
    records=datasets(),
    page_size=st.sampled_from([1, 3, 5, 10]),
    cap_pages=st.integers(min_value=1, max_value=6),
    total_mode=st.sampled_from(["exact", "overcount", "capped", "absent"]),
    order_seed=st.integers(0, 1000),
    in_flight=st.integers(1, 6),
    ties=st.sampled_from(["id", "per_window"]),
    peek_chance=st.sampled_from([0.0, 0.5]),
)
def test_every_id_once_and_leaves_partition_the_range(
    records: list[dict[str, Any]],
    page_size: int,
    cap_pages: int,
    total_mode: TotalMode,
    order_seed: int,
    in_flight: int,
    ties: Ties,
    peek_chance: float,
) -> None:
    """Also with peeks (page 1 of only the records a caller still wants, as
    ``max_items`` asks): a peeked id never comes again, none goes missing."""
    cap = page_size * cap_pages + (page_size // 2)
    api = ModelAPI(records, cap=cap, total_mode=total_mode, ties=ties)
    planner = WindowPlanner(cap=cap, page_size=page_size, split_fields=FIELDS)
    crowded = max_per_second_pair(records)
    try:
        delivered, events = run(
            planner,
            api,
            rng=random.Random(order_seed),
            max_in_flight=in_flight,
            peek_chance=peek_chance,
        )
    except CapExceededError as error:
        check_cap_error(error, crowded=crowded, cap=cap, total_mode=total_mode)
        return
    assert crowded <= cap, "records beyond the cap were lost without an error"
    assert len(delivered) == len(set(delivered)), "an id was delivered twice"
    assert sorted(delivered) == [r["id"] for r in records]
    assert_partition(leaves(events), None, None)
    assert planner.stats.records_delivered == len(delivered)
    # Every leaf that was read fits under the cap.
    for window in leaves(events):
        probe = PageRequest(window, 1, page_size, FIELDS[window.level], 0)
        assert len(api.matches(probe)) <= cap


@settings(max_examples=80, deadline=None)
@given(
    records=datasets(),
    total_mode=st.sampled_from(["exact", "overcount", "capped", "absent"]),
    hidden=st.one_of(st.none(), st.integers(1, 25)),
    order_seed=st.integers(0, 1000),
    ties=st.sampled_from(["id", "per_window"]),
    peek_chance=st.sampled_from([0.0, 0.5]),
)
def test_a_server_that_sends_no_record_twice_has_no_duplicates_dropped(
    records: list[dict[str, Any]],
    total_mode: TotalMode,
    hidden: int | None,
    order_seed: int,
    ties: Ties,
    peek_chance: float,
) -> None:
    """Whatever the planner asks twice (reading on past a stop, a look after a
    peek, a window read again) counts as an overlap: duplicates are only what
    the server sent twice. Ties ordered per query are the one way a still
    server shows an id twice in one reading: a cut window's page 1, handed to
    its first piece, need not lead the piece's own order of ties."""
    api = ModelAPI(records, cap=25, total_mode=total_mode, hidden_cap=hidden, ties=ties)
    planner = WindowPlanner(cap=25, page_size=5, split_fields=FIELDS, on_cap="warn")
    rng = random.Random(order_seed)
    delivered, _ = run(planner, api, rng=rng, peek_chance=peek_chance)
    assert len(delivered) == len(set(delivered))
    assert planner.stats.duplicates_dropped == planner.stats.shifted_reads
    if ties == "id":
        assert planner.stats.duplicates_dropped == 0


@settings(max_examples=60)
@given(records=datasets(), total_mode=st.sampled_from(["exact", "overcount", "capped", "absent"]))
def test_a_window_is_only_read_once_it_is_known_to_fit(
    records: list[dict[str, Any]], total_mode: TotalMode
) -> None:
    """No record is delivered from a window that is later cut. (Reading on past
    a page boundary replaces a window that delivered, by design: see below.)"""
    api = ModelAPI(records, cap=20, total_mode=total_mode)
    planner = WindowPlanner(cap=20, page_size=5, split_fields=FIELDS, on_cap="warn")
    _, events = run(planner, api)
    delivering = {e.window.key for e in events if isinstance(e, Deliver)}
    cut = {e.window.key for e in events if isinstance(e, WindowSplit) and e.reason != READ_ON}
    assert not delivering & cut


@settings(max_examples=60)
@given(
    lo=st.integers(0, 200),
    width=st.integers(0, 200),
    records=datasets(),
    total_mode=st.sampled_from(["exact", "capped", "absent"]),
)
def test_user_bounds_are_split_inside(
    lo: int, width: int, records: list[dict[str, Any]], total_mode: TotalMode
) -> None:
    lo += 1_000_000
    hi = lo + width
    api = ModelAPI(records, cap=12, total_mode=total_mode)
    planner = WindowPlanner(
        cap=12,
        page_size=4,
        split_fields=FIELDS,
        bounds=[(lo, hi), (None, None)],
        on_cap="warn",
    )
    delivered, events = run(planner, api)
    for window in leaves(events):
        wlo, whi = window.bounds[0]
        assert wlo is not None
        assert whi is not None
        assert lo <= wlo <= whi <= hi
    assert_partition(leaves(events), lo, hi)
    if max_per_second_pair(records) <= 12:
        expected = sorted(r["id"] for r in records if lo <= r["date_created"] <= hi)
        assert sorted(delivered) == expected


# -- a cap lower than the planner was told -----------------------------------------------


# Any lower cap, on a page boundary or off it: test_planner_lower_cap.py.


def test_refused_pages_are_counted() -> None:
    records = skewed_records(400, seed=8)
    api = ModelAPI(records, cap=1_000, hidden_cap=100, refuse_past_cap=True)
    planner = WindowPlanner(cap=1_000, page_size=50)
    delivered, _ = run(planner, api, max_in_flight=1)
    assert sorted(delivered) == [r["id"] for r in records]
    assert planner.stats.pages_refused >= 1
    assert planner.stats.windows_continued >= 3
