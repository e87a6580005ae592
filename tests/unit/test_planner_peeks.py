"""Peeks (page 1 of only the records a caller still wants) keep every id once.

A search with ``max_items`` peeks at a window when the records it still
needs fit in one page and nothing else is in flight. Usually that ends the
search; when it does not (ids dropped as delivered), the window is read as
usual, and the peeked ids must not come again nor any id go missing (the
property over random searches is ``test_planner_properties.py``'s, with peeks).
"""

from __future__ import annotations

from copper_async._planner import CapObserved, Deliver, WindowPlanner
from tests.unit.planner_model import (
    FIELDS,
    ModelAPI,
    make_records,
    stopped_short_of_a_hidden_cap,
)


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
    # Asked for twice, by the peek and the look: not duplicates the server sent.
    assert (planner.stats.duplicates_dropped, planner.stats.overlaps_dropped) == (0, 4)


def test_a_restored_planner_does_not_peek_at_a_window_again() -> None:
    """The peek is part of the window's state: a snapshot keeps it, and the
    restored planner goes on with the window's own first look."""
    records = make_records(list(range(1_000, 1_040)), [0] * 40)
    api = ModelAPI(records, cap=100)
    planner = WindowPlanner(cap=100, page_size=10, split_fields=FIELDS)
    peek = planner.next_request(want=4)
    assert peek is not None
    assert peek.peek
    planner.feed(peek, api.answer(peek))
    restored, _ = WindowPlanner.restore(planner.snapshot())
    look = restored.next_request(want=4)
    assert look is not None
    assert (look.page_number, look.page_size, look.peek) == (1, 10, False)


def test_a_peek_that_finds_records_past_a_stop_names_the_api_cap() -> None:
    """A window reading on from one that stopped at 493 records: the fresh
    records a peek at it brings prove the API's cap, as its first look's would."""
    planner, api = stopped_short_of_a_hidden_cap()
    peek = planner.next_request(want=50)
    assert peek is not None
    assert peek.peek
    events = planner.feed(peek, api.answer(peek))
    assert any(isinstance(e, Deliver) and e.records for e in events)
    assert [e.observed_cap for e in events if isinstance(e, CapObserved)] == [493]
    assert planner.snapshot()["reach"]["observed_cap"] == 493
