"""Peeks (page 1 of only the records a caller still wants) keep every id once.

A search with ``max_items`` peeks at a window when the records it still
needs fit in one page and nothing else is in flight. Usually that ends the
search; when it does not (ids dropped as delivered), the window is read as
usual, and the peeked ids must not come again nor any id go missing.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from copper_async._planner import Deliver, PageRequest, WindowPlanner
from copper_async.exceptions import CapExceededError
from tests.unit.planner_model import (
    FIELDS,
    ModelAPI,
    TotalMode,
    assert_partition,
    check_cap_error,
    datasets,
    leaves,
    make_records,
    max_per_second_pair,
)


def run_peeking(
    planner: WindowPlanner, api: ModelAPI, rng: random.Random, max_in_flight: int
) -> tuple[list[int], list[Any], int]:
    """Drive the planner to the end, often wanting a random few records;
    returns the ids, the events and the peeks made."""
    delivered: list[int] = []
    events: list[Any] = []
    pending: list[PageRequest] = []
    peeks = 0
    for _ in range(100_000):
        if planner.finished:
            break
        while len(pending) < max_in_flight:
            want = rng.randint(1, planner.page_size) if rng.random() < 0.5 else None
            request = planner.next_request(want=want, in_flight=bool(pending))
            if request is None:
                break
            peeks += request.peek
            pending.append(request)
        assert pending, "the planner is stuck: nothing in flight and nothing to ask"
        request = pending.pop(rng.randrange(len(pending)))
        for event in planner.feed(request, api.answer(request)):
            events.append(event)
            if isinstance(event, Deliver):
                delivered.extend(record["id"] for record in event.records)
    assert planner.finished, "the planner does not terminate"
    return delivered, events, peeks


@settings(max_examples=100)
@given(
    records=datasets(),
    page_size=st.sampled_from([1, 3, 5, 10]),
    cap_pages=st.integers(min_value=1, max_value=6),
    total_mode=st.sampled_from(["exact", "overcount", "capped", "absent"]),
    seed=st.integers(0, 1000),
    in_flight=st.integers(1, 4),
    ties=st.sampled_from(["id", "per_window"]),
)
def test_peeks_keep_every_id_once_and_the_leaves_a_partition(
    records: list[dict[str, Any]],
    page_size: int,
    cap_pages: int,
    total_mode: TotalMode,
    seed: int,
    in_flight: int,
    ties: Any,
) -> None:
    cap = page_size * cap_pages + (page_size // 2)
    api = ModelAPI(records, cap=cap, total_mode=total_mode, ties=ties)
    planner = WindowPlanner(cap=cap, page_size=page_size, split_fields=FIELDS)
    try:
        delivered, events, _ = run_peeking(planner, api, random.Random(seed), in_flight)
    except CapExceededError as error:
        check_cap_error(error, crowded=max_per_second_pair(records), cap=cap, total_mode=total_mode)
        return
    assert len(delivered) == len(set(delivered)), "an id was delivered twice"
    assert sorted(delivered) == [r["id"] for r in records]
    assert_partition(leaves(events), None, None)
    assert planner.stats.records_delivered == len(delivered)


def test_a_peek_asks_page_1_of_the_records_wanted_once_per_window() -> None:
    records = make_records(list(range(1_000, 1_040)), [0] * 40)
    api = ModelAPI(records, cap=100)
    planner = WindowPlanner(cap=100, page_size=10, split_fields=FIELDS)
    peek = planner.next_request(want=4)
    assert peek is not None
    assert (peek.page_number, peek.page_size, peek.peek) == (1, 4, True)
    assert planner.next_request(want=4) is None, "one window, one request at a time"
    assert planner.next_request(want=4, in_flight=True) is None
    events = planner.feed(peek, api.answer(peek))
    assert [r["id"] for e in events if isinstance(e, Deliver) for r in e.records] == [
        r["id"] for r in records[:4]
    ]
    # Not enough after all: the window's own first look, at the page size.
    look = planner.next_request(want=4)
    assert look is not None
    assert (look.page_number, look.page_size, look.peek) == (1, 10, False)
    fed = planner.feed(look, api.answer(look))
    delivered = [r["id"] for e in fed if isinstance(e, Deliver) for r in e.records]
    assert delivered == [r["id"] for r in records[4:10]]
    assert planner.stats.duplicates_dropped == 4
