"""The fake server's tie orders: ``per_request`` draws another for every request."""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copper_async.testing import Dataset, HotSpot, parse_search_body
from copper_async.testing._command import build_options, fake_server
from copper_async.testing._options import FakeServerOptions
from copper_async.testing._store import _Ids
from copper_async.testing._ties import TiesPerRequest

SECOND = 1_600_000_000
# Three bulk imports of one second each, among 300 records of distinct seconds.
HOT_SPOTS = [HotSpot(SECOND + 100 * n, count=40 + 30 * n, modified_spread=0) for n in range(3)]


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    """Read-only: no test changes it."""
    return Dataset.generate(300, seed=8, hot_spots=HOT_SPOTS)


def query_of(body: dict[str, Any]) -> Any:
    return parse_search_body(body)[0]


BY_CREATED = {"sort_by": "date_created"}
# Bodies, and the record field each sorts on.
CASES = [
    (BY_CREATED, "date_created"),
    ({"sort_by": "date_created", "sort_direction": "desc"}, "date_created"),
    ({"sort_by": "date_modified", "minimum_created_date": SECOND}, "date_modified"),  # a range
    ({"sort_by": "status"}, "status"),  # few values: long runs
    ({"sort_by": "last_interaction"}, "date_last_contacted"),  # nulls last: a run of their own
]


def values_of(dataset: Dataset, ids: Sequence[int], field: str = "date_created") -> list[Any]:
    return [dataset.record(i).get(field) for i in ids]


def test_two_requests_of_one_query_order_their_ties_differently(dataset: Dataset) -> None:
    query = query_of(BY_CREATED)
    by_id = list(dataset.search(query))
    first = list(dataset.search(query, ties="per_request", draw=1))
    second = list(dataset.search(query, ties="per_request", draw=2))
    assert first != second
    assert sorted(first) == sorted(second) == sorted(by_id)
    # Only the ties moved: each position holds the same second as in id order.
    assert values_of(dataset, first) == values_of(dataset, second) == values_of(dataset, by_id)
    hot = [i for i in first if dataset.record(i)["date_created"] == SECOND]
    assert len(hot) == 40
    assert hot != sorted(hot), "ties are not in id order"


def test_one_draw_gives_one_order_every_time(dataset: Dataset) -> None:
    query = query_of(BY_CREATED)
    view = dataset.search(query, ties="per_request", draw=5)
    again = dataset.search(query, ties="per_request", draw=5)
    assert list(view) == list(view) == list(again)
    assert view[40:60] == list(again)[40:60]


def test_per_query_and_per_request_are_told_apart_in_the_cache(dataset: Dataset) -> None:
    """The per-query order is cached; a per-request view is drawn anew on the
    cached id order, so neither leaks into the other."""
    query = query_of(BY_CREATED)
    per_query = list(dataset.search(query, ties="per_query"))
    per_request = [list(dataset.search(query, ties="per_request", draw=d)) for d in (1, 2)]
    assert list(dataset.search(query, ties="per_query")) == per_query
    assert per_query not in per_request
    assert per_request[0] != per_request[1]


@settings(max_examples=60, deadline=None)
@given(
    case=st.sampled_from(CASES),
    draw=st.integers(-(2**70), 2**70),
    start=st.integers(-500, 500),
    stop=st.integers(-500, 500),
    step=st.sampled_from([None, 1, 2, -1, -3]),
)
def test_every_read_is_a_read_of_one_whole_order(
    dataset: Dataset,
    case: tuple[dict[str, Any], str],
    draw: int,
    start: int,
    stop: int,
    step: int | None,
) -> None:
    """A page, an index, a stride: all read the same order, which is the id
    order with each run of equal sort values permuted in place."""
    body, field = case
    query = query_of(body)
    by_id = dataset.search(query)
    view = dataset.search(query, ties="per_request", draw=draw)
    whole = list(view)
    assert len(view) == len(whole) == len(by_id)
    assert view[start:stop:step] == whole[start:stop:step]
    for index in (start, stop):
        if -len(whole) <= index < len(whole):
            assert view[index] == whole[index]
        else:
            with pytest.raises(IndexError):
                view[index]
    assert sorted(whole) == sorted(by_id)
    assert values_of(dataset, whole, field) == values_of(dataset, by_id, field)


class CountingColumn(Sequence[int]):
    """A column (or a result's slots) that counts the values it is asked for."""

    def __init__(self, values: list[int]) -> None:
        self.values = values
        self.reads = 0

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index: Any) -> Any:
        read = self.values[index]
        self.reads += len(read) if isinstance(index, slice) else 1
        return read

    def __iter__(self) -> Iterator[int]:
        raise AssertionError("a page must not walk the whole column")


def test_a_page_reads_only_the_runs_it_touches() -> None:
    """1,000,000 positions in runs of 3, and one run of 100,000: a page of 200
    reads a few hundred values, not the result nor the run."""
    size = 1_000_000
    values = [i // 3 for i in range(size)]
    values[400_000:500_000] = [values[400_000]] * 100_000
    column = CountingColumn(values)
    ids = array("q", range(1, size + 1))
    slots = CountingColumn(list(range(size)))
    view = TiesPerRequest(_Ids(slots, ids), column, draw=3)
    # Ids are positions + 1. The run [600_198, 600_201) straddles the page's end.
    page = view[600_000:600_200]
    assert sorted(page[:198]) == list(range(600_001, 600_199))
    assert set(page[198:]) <= {600_199, 600_200, 600_201}
    assert column.reads < 2_000
    column.reads = 0
    # The long run is [399_999, 500_000): found by galloping (log steps), read in part.
    straddling = view[499_900:500_100]
    assert len(set(straddling)) == 200
    assert {i - 1 for i in straddling[:100]} <= set(range(399_999, 500_000))
    assert sorted(straddling[100:]) == list(range(500_001, 500_101))
    assert column.reads < 2_000
    # Inside the long run, a page reads about a page of slots, not the run.
    column.reads = slots.reads = 0
    inside = view[450_000:450_200]
    assert len(set(inside)) == 200
    assert {i - 1 for i in inside} <= set(range(399_999, 500_000))
    assert not set(inside) & set(view[450_200:450_400]), "one view: one permutation"
    assert column.reads + slots.reads < 2_000


def test_the_flag_takes_per_request() -> None:
    params = dict(fake_server.make_context("fake-server", ["--ties", "per_request"]).params)
    assert build_options(params).ties == "per_request"
    assert FakeServerOptions(ties="per_request").ties == "per_request"
    with pytest.raises(Exception, match="per_request"):
        FakeServerOptions(ties="per_page")  # type: ignore[arg-type]
