"""An API whose real cap is below the planner's ``cap``: off a page boundary
the page at its cap comes back short, as a window's last would; on one, with
the total capped there too, a window holds just what its total says."""

from __future__ import annotations

import random
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from copper_async._planner import CapObserved, WindowPlanner
from copper_async._planner._reach import Reach
from tests.unit.planner_model import (
    ModelAPI,
    TotalMode,
    assert_partition,
    datasets,
    leaves,
    max_per_second_pair,
    run,
    skewed_records,
    stopped_short_of_a_hidden_cap,
)


@settings(max_examples=120, deadline=None)
@given(
    records=datasets(),
    total_mode=st.sampled_from(["exact", "overcount", "capped", "absent"]),
    refuse=st.booleans(),
    # Small whole numbers of pages (5 a page) as often as anything else up to 99.
    hidden=st.one_of(st.integers(1, 3).map(lambda pages: 5 * pages), st.integers(6, 99)),
    order_seed=st.integers(0, 1000),
)
def test_a_lower_cap_still_yields_every_id_once(
    records: list[dict[str, Any]],
    total_mode: TotalMode,
    refuse: bool,
    hidden: int,
    order_seed: int,
) -> None:
    api = ModelAPI(
        records, cap=100, total_mode=total_mode, hidden_cap=hidden, refuse_past_cap=refuse
    )
    planner = WindowPlanner(cap=100, page_size=5)
    delivered, events = run(planner, api, rng=random.Random(order_seed))
    assert len(delivered) == len(set(delivered)), "an id was delivered twice"
    # A total capped off a page boundary reads as a window of just that size:
    # the one loss no answer shows (README, guarantees).
    unseen = total_mode == "capped" and hidden % 5 != 0
    if max_per_second_pair(records) < hidden and not unseen:
        assert sorted(delivered) == [r["id"] for r in records]
    assert_partition(leaves(events), None, None)
    observed = [e.observed_cap for e in events if isinstance(e, CapObserved)]
    # Only ever the real cap, or a record count at a page boundary past it.
    assert all(hidden <= cap < 100 for cap in observed)


def test_records_past_a_short_page_name_the_api_cap_once() -> None:
    records = skewed_records(1_500, seed=3)
    api = ModelAPI(records, cap=500, total_mode="absent", hidden_cap=493)
    planner = WindowPlanner(cap=500, page_size=50)
    delivered, events = run(planner, api, max_in_flight=1)
    assert sorted(delivered) == [r["id"] for r in records]
    observed = [e for e in events if isinstance(e, CapObserved)]
    assert [(e.observed_cap, e.cap) for e in observed] == [(493, 500)]
    assert planner.stats.windows_continued >= 2


def test_with_the_cap_right_a_short_page_costs_no_request_past_the_first_cut() -> None:
    """Once a cut page came back full, a short page ends its window for sure:
    the same requests as before, and no cap is reported."""
    records = skewed_records(5_000, seed=5)
    for total_mode in ("exact", "overcount", "capped", "absent"):
        api = ModelAPI(records, cap=1_000, total_mode=total_mode)
        planner = WindowPlanner(cap=1_000, page_size=50)
        delivered, events = run(planner, api)
        assert sorted(delivered) == [r["id"] for r in records]
        assert not [e for e in events if isinstance(e, CapObserved)]
        assert planner.stats.windows_continued == 0, total_mode


def test_what_was_served_and_the_stop_position_survive_a_snapshot() -> None:
    """Stopped right after the first window read on: the restored planner
    names the cap when the continuing window delivers, as the original would."""
    planner, api = stopped_short_of_a_hidden_cap()
    assert planner.in_flight == 0
    snapshot = orjson.loads(orjson.dumps(planner.snapshot()))
    assert snapshot["reach"] == {"served": 493, "observed_cap": None, "top_total": 1_500}
    assert [w["stopped_at"] for w in snapshot["windows"]] == [493]
    restored, _ = WindowPlanner.restore(snapshot)
    assert restored.snapshot() == planner.snapshot()
    _, events = run(restored, api, max_in_flight=1)
    assert [e.observed_cap for e in events if isinstance(e, CapObserved)] == [493]
    assert restored.snapshot()["reach"]["observed_cap"] == 493


def test_a_total_capped_at_whole_pages_is_read_on_and_names_the_cap() -> None:
    records = skewed_records(1_500, seed=3)
    api = ModelAPI(records, cap=1_000, total_mode="capped", hidden_cap=500)
    planner = WindowPlanner(cap=1_000, page_size=50)
    delivered, events = run(planner, api, max_in_flight=1)
    assert sorted(delivered) == [r["id"] for r in records]
    assert [e.observed_cap for e in events if isinstance(e, CapObserved)] == [500]


def test_only_a_total_at_or_above_all_seen_and_of_whole_pages_may_be_capped() -> None:
    reach = Reach()
    reach.note(1, 50, 50, total=400)
    assert reach.may_cap_total_at(400, 50, 1_000)
    assert not reach.may_cap_total_at(399, 50, 1_000)  # the last page was short
    assert not reach.may_cap_total_at(350, 50, 1_000)  # a total of 400 was seen
    assert not reach.may_cap_total_at(1_000, 50, 1_000)  # the configured cap itself
    assert not reach.may_cap_total_at(0, 50, 1_000)  # nothing
    reach.note(9, 50, 50)  # a query served through record 450
    assert not reach.may_cap_total_at(400, 50, 1_000)
    reach.note(1, 50, 10, total=2_000)  # a total above every window: not capped
    assert not reach.may_cap_total_at(500, 50, 1_000)
