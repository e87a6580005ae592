"""The window planner, driven against an in-memory model of the search API.

The model answers exactly like the search endpoint would (bounds inclusive,
sorted by the requested field with ties in id order, the cap, each total mode)
so the properties below hold for every data distribution hypothesis finds.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copper_async._planner import (
    READ_ON_REASON,
    CapLimited,
    CountMismatch,
    Deliver,
    PageRequest,
    PageResult,
    TotalsDistrusted,
    WindowDone,
    WindowPlanner,
    WindowSplit,
)
from copper_async.exceptions import CapExceededError, CheckpointError, CopperError, RecordError

TotalMode = Literal["exact", "overcount", "capped", "absent"]
FIELDS = ("date_created", "date_modified")
READ_ON = READ_ON_REASON


@attrs.define
class ModelAPI:
    """The search endpoint's paging, cap and total header, over plain records.

    ``hidden_cap`` plays an API whose real cap is lower than the planner was
    told: past it pages come back empty, or refused with ``refuse_past_cap``.
    """

    records: list[dict[str, Any]]
    cap: int
    total_mode: TotalMode = "exact"
    hidden_cap: int | None = None
    refuse_past_cap: bool = False
    # A total that ignores the count (an API that lies).
    fixed_total: int | None = None
    requests: list[PageRequest] = attrs.Factory(list)
    _cache: dict[Any, list[dict[str, Any]]] = attrs.Factory(dict)
    version: int = 0  # bumped by subclasses that change the records

    def answer(self, request: PageRequest) -> PageResult:
        self.requests.append(request)
        offset = (request.page_number - 1) * request.page_size
        assert offset < self.cap, "the planner asked for a page past the cap"
        matches = self.matches(request)
        real_cap = self.cap if self.hidden_cap is None else self.hidden_cap
        if offset >= real_cap and self.refuse_past_cap:
            return PageResult(records=[], total=None, refused=True)
        end = min(offset + request.page_size, real_cap)
        page = matches[offset:end]
        return PageResult(records=page, total=self.total(len(matches)))

    def matches(self, request: PageRequest) -> list[dict[str, Any]]:
        key = (request.window.bounds, request.sort_field, len(self.records), self.version)
        if key not in self._cache:
            self._cache[key] = self._scan(request)
        return self._cache[key]

    def _scan(self, request: PageRequest) -> list[dict[str, Any]]:
        def inside(record: dict[str, Any]) -> bool:
            for field, (lo, hi) in zip(FIELDS, request.window.bounds, strict=False):
                value = record[field]
                if (lo is not None and value < lo) or (hi is not None and value > hi):
                    return False
            return True

        found = [r for r in self.records if inside(r)]
        found.sort(key=lambda r: (r[request.sort_field], r["id"]))
        return found

    def total(self, count: int) -> int | None:
        if self.fixed_total is not None:
            return self.fixed_total
        if self.total_mode == "exact":
            return count
        if self.total_mode == "overcount":
            return count + count // 10 + 3
        if self.total_mode == "capped":
            return min(count, self.cap)
        return None


def make_records(created: Sequence[int], modified_offsets: Sequence[int]) -> list[dict[str, Any]]:
    return [
        {"id": i + 1, "date_created": c, "date_modified": c + m}
        for i, (c, m) in enumerate(zip(created, modified_offsets, strict=True))
    ]


def run(
    planner: WindowPlanner,
    api: ModelAPI,
    *,
    rng: random.Random | None = None,
    max_in_flight: int = 4,
) -> tuple[list[Any], list[Any]]:
    """Drive the planner to the end; answers come back in a random order."""
    rng = rng or random.Random(0)
    delivered: list[Any] = []
    events: list[Any] = []
    pending: list[PageRequest] = []
    steps = 0
    while not planner.finished:
        steps += 1
        assert steps < 100_000, "the planner does not terminate"
        while len(pending) < max_in_flight:
            request = planner.next_request()
            if request is None:
                break
            pending.append(request)
        assert pending, "the planner is stuck: nothing in flight and nothing to ask"
        request = pending.pop(rng.randrange(len(pending)))
        for event in planner.feed(request, api.answer(request)):
            events.append(event)
            if isinstance(event, Deliver):
                delivered.extend(record["id"] for record in event.records)
    assert planner.next_request() is None
    return delivered, events


def leaves(events: list[Any]) -> list[Any]:
    return [event.window for event in events if isinstance(event, WindowDone)]


def assert_partition(windows: list[Any], lo: int | None, hi: int | None) -> None:
    """Leaves on the first split field meet exactly: no gap, no overlap."""
    primary = sorted(
        {w.bounds[0] for w in windows},
        key=lambda b: (b[0] is not None, b[0] if b[0] is not None else 0),
    )
    assert primary[0][0] == lo
    assert primary[-1][1] == hi
    for before, after in itertools.pairwise(primary):
        assert before[1] is not None
        assert after[0] == before[1] + 1


# -- data distributions --------------------------------------------------------

spans = st.integers(min_value=1, max_value=400)


@st.composite
def datasets(draw: st.DrawFn) -> list[dict[str, Any]]:
    size = draw(st.integers(min_value=0, max_value=260))
    shape = draw(st.sampled_from(["uniform", "skewed", "hot", "clustered"]))
    span = draw(spans)
    rng = random.Random(draw(st.integers(0, 2**32)))
    if shape == "uniform":
        created = [rng.randrange(span) for _ in range(size)]
    elif shape == "skewed":
        created = [int(span * rng.random() ** 4) for _ in range(size)]
    elif shape == "hot":
        hot = rng.randrange(span)
        created = [hot if rng.random() < 0.6 else rng.randrange(span) for _ in range(size)]
    else:
        centres = [rng.randrange(span) for _ in range(3)]
        created = [rng.choice(centres) + rng.randrange(3) for _ in range(size)]
    offsets = [rng.randrange(0, 50) for _ in range(size)]
    return make_records([1_000_000 + c for c in created], offsets)


def max_per_second_pair(records: list[dict[str, Any]]) -> int:
    pairs = Counter((r["date_created"], r["date_modified"]) for r in records)
    return max(pairs.values(), default=0)


def check_cap_error(
    error: CapExceededError, *, crowded: int, cap: int, total_mode: TotalMode
) -> None:
    """Only a second pair holding the cap or more may stop the search, named and counted."""
    assert crowded >= cap
    assert set(error.window) == set(FIELDS)
    if crowded == cap or total_mode in ("capped", "absent"):
        # A total equal to the cap might itself be capped: only "at least" is known.
        assert error.count is None or error.count > cap
    else:
        assert error.count is not None
        assert error.count > cap


# -- properties ----------------------------------------------------------------


@settings(max_examples=100)
@given(
    records=datasets(),
    page_size=st.sampled_from([1, 3, 5, 10]),
    cap_pages=st.integers(min_value=1, max_value=6),
    total_mode=st.sampled_from(["exact", "overcount", "capped", "absent"]),
    order_seed=st.integers(0, 1000),
    in_flight=st.integers(1, 6),
)
def test_every_id_once_and_leaves_partition_the_range(
    records: list[dict[str, Any]],
    page_size: int,
    cap_pages: int,
    total_mode: TotalMode,
    order_seed: int,
    in_flight: int,
) -> None:
    cap = page_size * cap_pages + (page_size // 2)
    api = ModelAPI(records, cap=cap, total_mode=total_mode)
    planner = WindowPlanner(cap=cap, page_size=page_size, split_fields=FIELDS)
    crowded = max_per_second_pair(records)
    try:
        delivered, events = run(
            planner, api, rng=random.Random(order_seed), max_in_flight=in_flight
        )
    except CapExceededError as error:
        check_cap_error(error, crowded=crowded, cap=cap, total_mode=total_mode)
        return
    assert crowded <= cap, "records beyond the cap were lost without an error"
    assert len(delivered) == len(set(delivered)), "an id was delivered twice"
    assert sorted(delivered) == [r["id"] for r in records]
    assert_partition(leaves(events), None, None)
    # Every leaf that was read fits under the cap.
    for window in leaves(events):
        probe = PageRequest(window, 1, page_size, FIELDS[window.level], 0)
        assert len(api.matches(probe)) <= cap


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


# -- request efficiency ----------------------------------------------------------


def skewed_records(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    created = sorted(int(10_000_000 * rng.random() ** 3) for _ in range(count))
    return make_records(created, [rng.randrange(1000) for _ in range(count)])


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


# -- drift -----------------------------------------------------------------------


@attrs.define
class DriftingAPI(ModelAPI):
    """Deletes one record of the window before every few answers."""

    every: int = 3
    deleted: list[int] = attrs.Factory(list)

    def answer(self, request: PageRequest) -> PageResult:
        if len(self.requests) % self.every == self.every - 1 and len(self.records) > 40:
            victim = self.records.pop(len(self.records) // 3)
            self.deleted.append(victim["id"])
        return super().answer(request)


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


# -- checkpoints -------------------------------------------------------------------


@settings(max_examples=40)
@given(
    records=datasets(),
    stop_after=st.integers(1, 40),
    total_mode=st.sampled_from(["exact", "absent"]),
)
def test_a_restored_snapshot_delivers_the_rest_exactly_once(
    records: list[dict[str, Any]], stop_after: int, total_mode: TotalMode
) -> None:
    api = ModelAPI(records, cap=15, total_mode=total_mode)
    planner = WindowPlanner(cap=15, page_size=5, on_cap="warn")
    delivered: list[int] = []
    pending: list[PageRequest] = []
    for _ in range(stop_after):
        if planner.finished:
            break
        while len(pending) < 3 and (request := planner.next_request()) is not None:
            pending.append(request)
        request = pending.pop(0)
        for event in planner.feed(request, api.answer(request)):
            if isinstance(event, Deliver):
                delivered.extend(r["id"] for r in event.records)
    # The process dies with requests in flight; a new one resumes from the snapshot.
    restored = WindowPlanner.restore(planner.snapshot())
    rest, _ = run(restored, api)
    everything = delivered + rest
    assert len(everything) == len(set(everything))
    if max_per_second_pair(records) <= 15:
        assert sorted(everything) == [r["id"] for r in records]


def test_a_damaged_snapshot_is_refused() -> None:
    snapshot = WindowPlanner().snapshot()
    with pytest.raises(CheckpointError):
        WindowPlanner.restore({**snapshot, "version": 99})
    with pytest.raises(CheckpointError):
        WindowPlanner.restore({k: v for k, v in snapshot.items() if k != "windows"})


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


def test_a_snapshot_without_ids_is_completed_by_the_records_already_delivered() -> None:
    records = make_records(list(range(100, 160)), [0] * 60)
    api = DriftingAPI(records=list(records), cap=30, total_mode="exact", every=3)
    planner = WindowPlanner(cap=30, page_size=5)
    delivered: list[dict[str, Any]] = []
    for _ in range(7):
        request = planner.next_request()
        assert request is not None
        for event in planner.feed(request, api.answer(request)):
            if isinstance(event, Deliver):
                delivered.extend(event.records)
    snapshot = planner.snapshot(include_seen=False)
    assert all(window["seen"] is None for window in snapshot["windows"])
    restored = WindowPlanner.restore(snapshot, delivered=delivered)
    rest, _ = run(restored, api, max_in_flight=1)
    everything = [r["id"] for r in delivered] + rest
    # Deletions shift offsets, so some ids come again: the delivered records stop them.
    assert len(everything) == len(set(everything))
    stable = {r["id"] for r in records} - set(api.deleted)
    assert stable <= set(everything)


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
    kept while page k decides, so the window costs its 20 pages and one look."""
    records = skewed_records(990, seed=6)
    api = ModelAPI(records, cap=1_000, fixed_total=1_100)
    planner = WindowPlanner(cap=1_000, page_size=50)
    delivered, _ = run(planner, api)
    assert sorted(delivered) == [r["id"] for r in records]
    assert [r.page_number for r in api.requests][:2] == [1, 20]
    assert len(api.requests) == 20
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


# -- a cap lower than the planner was told -----------------------------------------------


@settings(max_examples=80)
@given(
    records=datasets(),
    total_mode=st.sampled_from(["exact", "overcount", "capped", "absent"]),
    refuse=st.booleans(),
    hidden_pages=st.integers(1, 3),
    order_seed=st.integers(0, 1000),
)
def test_an_api_that_caps_lower_than_configured_still_yields_every_id_once(
    records: list[dict[str, Any]],
    total_mode: TotalMode,
    refuse: bool,
    hidden_pages: int,
    order_seed: int,
) -> None:
    """Pages that stop at a page boundary short of the count are read on from the
    last value, so a wrong ``cap`` costs requests, not records."""
    page_size = 5
    hidden = page_size * hidden_pages
    api = ModelAPI(
        records, cap=100, total_mode=total_mode, hidden_cap=hidden, refuse_past_cap=refuse
    )
    planner = WindowPlanner(cap=100, page_size=page_size)
    delivered, events = run(planner, api, rng=random.Random(order_seed))
    assert len(delivered) == len(set(delivered)), "an id was delivered twice"
    if max_per_second_pair(records) < hidden:
        assert sorted(delivered) == [r["id"] for r in records]
    assert_partition(leaves(events), None, None)


def test_refused_pages_are_counted() -> None:
    records = skewed_records(400, seed=8)
    api = ModelAPI(records, cap=1_000, hidden_cap=100, refuse_past_cap=True)
    planner = WindowPlanner(cap=1_000, page_size=50)
    delivered, _ = run(planner, api, max_in_flight=1)
    assert sorted(delivered) == [r["id"] for r in records]
    assert planner.stats.pages_refused >= 1
    assert planner.stats.windows_continued >= 3


# -- hot seconds ------------------------------------------------------------------


def test_a_hot_second_costs_no_discarded_looks() -> None:
    """Page k showing one second to the end goes straight to the next field."""
    created = list(range(1, 801)) + [5_000] * 2_500
    records = make_records(created, [i % 900 for i in range(len(created))])
    api = ModelAPI(records, cap=1_000, total_mode="exact")
    planner = WindowPlanner(cap=1_000, page_size=50)
    delivered, events = run(planner, api)
    assert sorted(delivered) == [r["id"] for r in records]
    # Only the root's page 1 is thrown away (its total of 3,300 could over-count).
    assert planner.stats.pages_discarded == 1
    hot_looks = [r.page_number for r in api.requests if r.window.bounds[0] == (5_000, 5_000)]
    assert hot_looks[0] == 20, "the hot second's first look is its cut page"
    ideal = -(-len(records) // 50)
    assert len(api.requests) <= ideal + 2 * len(leaves(events)) + 2


@attrs.define
class EditingAPI(ModelAPI):
    """Edits records of one hot second while the search reads it: each edit sets
    ``date_modified`` to a later "now", as Copper does, moving the record to the
    end of the second's order. Edits stop after ``edits`` of them."""

    hot: int = 0
    edits: int = 0
    every: int = 2
    rng: random.Random = attrs.Factory(lambda: random.Random(3))
    now: int = 10_000_000

    def answer(self, request: PageRequest) -> PageResult:
        if self.edits and len(self.requests) % self.every == 0:
            hot = [r for r in self.records if r["date_created"] == self.hot]
            victim = self.rng.choice(hot)
            self.now += 1
            victim["date_modified"] = self.now
            self.edits -= 1
            self.version += 1
        return super().answer(request)


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


# -- checkpoints of windows that were being read again -------------------------------------


@settings(max_examples=40)
@given(stop_after=st.integers(1, 60), seed=st.integers(0, 1000))
def test_a_resume_right_after_a_reread_is_planned_delivers_nothing_twice(
    stop_after: int, seed: int
) -> None:
    """The snapshot leaves out delivered ids (as an export's does); a window
    waiting to be read again must still learn them from the records."""
    records = make_records(list(range(100, 400)), [0] * 300)
    api = DriftingAPI(records=list(records), cap=1_000, total_mode="exact", every=3)
    planner = WindowPlanner(cap=1_000, page_size=20, max_passes=4)
    rng = random.Random(seed)
    delivered: list[dict[str, Any]] = []
    pending: list[PageRequest] = []
    for _ in range(stop_after):
        if planner.finished:
            break
        while len(pending) < 3 and (request := planner.next_request()) is not None:
            pending.append(request)
        request = pending.pop(rng.randrange(len(pending)))
        for event in planner.feed(request, api.answer(request)):
            if isinstance(event, Deliver):
                delivered.extend(event.records)
    restored = WindowPlanner.restore(
        planner.snapshot(include_seen=False), delivered=delivered, max_passes=4
    )
    rest, _ = run(restored, api, max_in_flight=1)
    everything = [r["id"] for r in delivered] + rest
    assert len(everything) == len(set(everything))
    stable = {r["id"] for r in records} - set(api.deleted)
    assert stable <= set(everything)


def test_a_hot_second_remembers_restored_ids_across_its_windows() -> None:
    """Ids delivered from a hot second before a crash are remembered by the
    whole second, so an edit that moves one to another window drops it."""
    created = [5_000] * 2_600
    records = make_records(created, [i % 1_000 for i in range(len(created))])
    api = ModelAPI(records, cap=1_000, total_mode="exact")
    planner = WindowPlanner(cap=1_000, page_size=50)
    delivered: list[dict[str, Any]] = []
    while not any(planner._states[key].window.level == 1 for key in planner._order):
        request = planner.next_request()
        assert request is not None
        planner.feed(request, api.answer(request))
    for _ in range(25):
        request = planner.next_request()
        assert request is not None
        for event in planner.feed(request, api.answer(request)):
            if isinstance(event, Deliver):
                delivered.extend(event.records)
    assert delivered
    snapshot = planner.snapshot(include_seen=False)
    assert snapshot["groups"]
    assert all(group["seen"] is None for group in snapshot["groups"])
    restored = WindowPlanner.restore(snapshot, delivered=delivered)
    # Every record delivered so far now sits in the second's last window.
    for record in delivered:
        record["date_modified"] = 10_000_000 + record["id"]
    api.version += 1
    rest, _ = run(restored, api)
    everything = [r["id"] for r in delivered] + rest
    assert len(everything) == len(set(everything))
    assert sorted(everything) == [r["id"] for r in records]
