"""Checkpoints: a restored planner goes on as the original would have."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs
import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from copper_async._engine import Search
from copper_async._pages import RawPage
from copper_async._planner import (
    READ_ON_REASON,
    Deliver,
    PageRequest,
    PageResult,
    PlannerStats,
    WindowDone,
    WindowPlanner,
    WindowSplit,
)
from copper_async._planner._state import Basis, PageIds, Reading, Size
from copper_async._resources import OPPORTUNITIES
from copper_async._stats import SearchStats
from copper_async.exceptions import CapExceededError, CheckpointError
from tests.unit.planner_model import (
    TOTAL_MODES,
    DriftingAPI,
    ModelAPI,
    TotalMode,
    datasets,
    make_records,
    max_per_second_pair,
    run,
    skewed_records,
)

# -- checkpoints -------------------------------------------------------------------


def run_partly(planner: WindowPlanner, api: ModelAPI, answers: int) -> tuple[list[int], set[int]]:
    """Feed ``answers`` answers, three requests in flight; the ids delivered
    and the keys of the windows finished. Requests left in flight are lost."""
    delivered: list[int] = []
    finished: set[int] = set()
    pending: list[PageRequest] = []
    for _ in range(answers):
        if planner.finished:
            break
        while len(pending) < 3 and (request := planner.next_request()) is not None:
            pending.append(request)
        request = pending.pop(0)
        for event in planner.feed(request, api.answer(request)):
            if isinstance(event, Deliver):
                delivered.extend(r["id"] for r in event.records)
            elif isinstance(event, WindowDone):
                finished.add(event.window.key)
    return delivered, finished


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
    delivered, _finished = run_partly(planner, api, stop_after)
    # The process dies with requests in flight; a new one resumes from the snapshot.
    restored, _ = WindowPlanner.restore(planner.snapshot())
    rest, _ = run(restored, api)
    everything = delivered + rest
    assert len(everything) == len(set(everything))
    if max_per_second_pair(records) <= 15:
        assert sorted(everything) == [r["id"] for r in records]


# Each query orders its ties its own way: a page 1 handed down from a parent's
# query, delivered before a restore, differs from the child's own page 1, which
# only a repeated id on the child's page 2, read after the restore, shows.
_HANDED_DOWN = [
    (1, 1000002, 1000029),
    (2, 1000001, 1000021),
    (3, 1000001, 1000040),
    (4, 1000002, 1000042),
    (5, 1000002, 1000015),
    (6, 1000001, 1000036),
    (7, 1000000, 1000030),
    (8, 1000001, 1000029),
    (9, 1000002, 1000035),
    (10, 1000000, 1000016),
    (11, 1000000, 1000003),
    (12, 1000000, 1000035),
    (13, 1000001, 1000001),
    (14, 1000002, 1000007),
    (15, 1000001, 1000047),
]


@settings(max_examples=100)
@given(
    records=datasets(),
    stop_after=st.integers(1, 40),
    total_mode=st.sampled_from(["exact", "overcount", "absent"]),
    restores=st.integers(1, 4),
    hand_back=st.booleans(),
)
@example(
    records=[{"id": i, "date_created": c, "date_modified": m} for i, c, m in _HANDED_DOWN],
    stop_after=1,
    total_mode="absent",
    restores=3,
    hand_back=False,
).via("a held page read before a restore")
def test_restores_mid_reading_lose_nothing_when_each_query_orders_ties_its_own_way(
    records: list[dict[str, Any]],
    stop_after: int,
    total_mode: TotalMode,
    restores: int,
    hand_back: bool,
) -> None:
    """An id a restored reading delivered before the restore and sees again
    is an offset shift, as it is without the restore: the window is read again."""
    api = ModelAPI(records, cap=15, total_mode=total_mode, ties="per_window")
    planner = WindowPlanner(cap=15, page_size=5, on_cap="warn")
    by_id = {record["id"]: record for record in records}
    everything: list[int] = []
    for _ in range(restores):
        delivered, _finished = run_partly(planner, api, stop_after)
        everything += delivered
        if hand_back:  # as the export and the sync do: ids from what they stored
            snapshot = planner.snapshot(include_seen=False)
            handed = [by_id[i] for i in everything]
            planner, _ = WindowPlanner.restore(snapshot, delivered=handed)
        else:
            planner, _ = WindowPlanner.restore(planner.snapshot())
    rest, _ = run(planner, api)
    everything += rest
    assert len(everything) == len(set(everything))
    if max_per_second_pair(records) <= 15:
        assert sorted(everything) == [r["id"] for r in records]


# One second of ties fills all three pages of a window cut from its parent: the
# parent's page 1, handed down, holds ids the child's own order puts on page 3.
_TIED_PAST_PAGE_2 = [
    (1, 1000110, 1000132),
    (2, 1000007, 1000040),
    (3, 1000107, 1000111),
    (4, 1000035, 1000072),
    (5, 1000022, 1000030),
    (6, 1000100, 1000146),
    (7, 1000007, 1000007),
    (8, 1000007, 1000026),
    (9, 1000007, 1000056),
    (10, 1000007, 1000047),
    (11, 1000007, 1000028),
    (12, 1000007, 1000056),
    (13, 1000005, 1000035),
    (14, 1000175, 1000186),
    (15, 1000007, 1000034),
    (16, 1000007, 1000020),
    (17, 1000007, 1000044),
    (18, 1000085, 1000100),
    (19, 1000007, 1000032),
    (20, 1000171, 1000195),
    (21, 1000007, 1000030),
    (22, 1000007, 1000048),
    (23, 1000007, 1000019),
]


def test_a_restore_keeps_the_ids_of_pages_tied_to_pages_still_to_come() -> None:
    """Ties may reorder an id onto any later page of their second, not only
    the next one: a page that ties one still to come keeps its ids across a
    restore, and the id seen again there is an offset shift, not a duplicate."""
    records = [{"id": i, "date_created": c, "date_modified": m} for i, c, m in _TIED_PAST_PAGE_2]
    api = ModelAPI(records, cap=15, total_mode="exact", ties="per_window")
    planner = WindowPlanner(cap=15, page_size=5, on_cap="warn")
    everything: list[int] = []
    while not planner.finished:  # a restore after every answer
        delivered, _finished = run_partly(planner, api, 1)
        everything += delivered
        planner, _ = WindowPlanner.restore(planner.snapshot())
    assert sorted(everything) == [r["id"] for r in records]
    assert planner.stats.shifted_reads == 1


def test_a_reading_keeps_of_pages_between_delivered_ones_only_the_ids_ties_can_move() -> None:
    """Pages 1 to 3 of 4 are in: page 1 shares no value with page 2 and is let
    go; page 2 ties page 3 on 20, so its ids on 20 (or on its first value)
    could sit on page 3 in another order; page 3 is beside page 4, still to come."""
    reading = Reading(Size.exact(12, 3, Basis.TOTAL), first_total=12)
    pages = [
        PageIds(1, (1, 2, 3), 5, 6, (1, 2, 3)),
        PageIds(2, (4, 5, 6), 10, 20, (4, 6)),
        PageIds(3, (7, 8, 9), 20, 30, (7, 9)),
    ]
    for page in pages:
        reading.delivered_pages.add(page.page)
        reading.keep_edge(page)
    assert [(edge.page, edge.ids) for edge in reading.edge_pages] == [(2, (4, 6)), (3, (7, 8, 9))]


@settings(max_examples=60)
@given(
    records=datasets(),
    stop_after=st.integers(1, 40),
    total_mode=st.sampled_from(["exact", "overcount", "absent"]),
)
def test_a_restart_snapshot_delivers_every_record_and_reads_no_finished_window_again(
    records: list[dict[str, Any]], stop_after: int, total_mode: TotalMode
) -> None:
    """For a caller that kept neither the records nor their ids (a Singer
    tap): windows not finished start over, finished ones are never asked again."""
    api = ModelAPI(records, cap=15, total_mode=total_mode)
    planner = WindowPlanner(cap=15, page_size=5, on_cap="warn")
    delivered, finished = run_partly(planner, api, stop_after)
    snapshot = planner.snapshot(restart_open=True)
    assert snapshot["seen"] is None
    stages = [window["stage"] for window in snapshot["windows"]]
    assert all(stage["phase"] == "look" and stage.get("held") is None for stage in stages)
    restored, _ = WindowPlanner.restore(snapshot)
    asked_before = len(api.requests)
    rest, _ = run(restored, api)
    assert not {r.window.key for r in api.requests[asked_before:]} & finished
    if max_per_second_pair(records) <= 15:
        assert set(delivered) | set(rest) == {r["id"] for r in records}
    assert len(rest) == len(set(rest))


def test_a_damaged_snapshot_is_refused() -> None:
    snapshot = WindowPlanner().snapshot()
    with pytest.raises(CheckpointError):
        WindowPlanner.restore({**snapshot, "version": 99})
    with pytest.raises(CheckpointError):
        WindowPlanner.restore({k: v for k, v in snapshot.items() if k != "windows"})


def test_a_snapshot_without_ids_is_completed_by_the_records_already_delivered() -> None:
    records = make_records(list(range(100, 160)), [0] * 60)
    api = DriftingAPI(records=list(records), cap=30, total_mode="exact", every=3)
    planner = WindowPlanner(cap=30, page_size=5)
    delivered: list[Mapping[str, Any]] = []
    for _ in range(7):
        request = planner.next_request()
        assert request is not None
        for event in planner.feed(request, api.answer(request)):
            if isinstance(event, Deliver):
                delivered.extend(event.records)
    snapshot = planner.snapshot(include_seen=False)
    assert snapshot["seen"] is None
    restored, _ = WindowPlanner.restore(snapshot, delivered=delivered)
    rest, _ = run(restored, api, max_in_flight=1)
    everything = [r["id"] for r in delivered] + rest
    # Deletions shift offsets, so some ids come again: the delivered records stop them.
    assert len(everything) == len(set(everything))
    stable = {r["id"] for r in records} - set(api.deleted)
    assert stable <= set(everything)


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
    delivered: list[Mapping[str, Any]] = []
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
    restored, _ = WindowPlanner.restore(
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
    delivered: list[Mapping[str, Any]] = []
    while not any(window.level == 1 for window in planner.windows):
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
    assert any(window["window"]["level"] == 1 for window in snapshot["windows"])
    assert snapshot["seen"] is None
    restored, _ = WindowPlanner.restore(snapshot, delivered=delivered)
    # Every record delivered so far now sits in the second's last window.
    for record in delivered:
        assert isinstance(record, dict)  # the model's own record, edited in place
        record["date_modified"] = 10_000_000 + record["id"]
    api.version += 1
    rest, _ = run(restored, api)
    everything = [r["id"] for r in delivered] + rest
    assert len(everything) == len(set(everything))
    assert sorted(everything) == [r["id"] for r in records]


# -- a restored planner goes on exactly as the original ---------------------------------


@attrs.frozen
class Checkpointed:
    step: int  # steps of the original run taken before it
    snapshot: dict[str, Any]
    delivered: list[Mapping[str, Any]]  # records delivered before it


@attrs.define
class Trace:
    """Each step of a run: the request answered and the events it gave, then
    how the run ended (the counters, or the cap error)."""

    steps: list[tuple[PageRequest, list[Any]]] = attrs.Factory(list)
    end: Any = None


def drive(
    planner: WindowPlanner,
    api: ModelAPI,
    in_flight: int,
    *,
    checkpoint: Callable[[int, list[Mapping[str, Any]]], None] | None = None,
) -> Trace:
    """Run to the end, answering the oldest request first; ``checkpoint``
    is called whenever nothing is in flight."""
    trace = Trace()
    delivered: list[Mapping[str, Any]] = []
    pending: list[PageRequest] = []
    try:
        while not planner.finished:
            if not pending and checkpoint is not None:
                checkpoint(len(trace.steps), list(delivered))
            while len(pending) < in_flight and (request := planner.next_request()) is not None:
                pending.append(request)
            request = pending.pop(0)
            events = planner.feed(request, api.answer(request))
            delivered += [r for e in events if isinstance(e, Deliver) for r in e.records]
            trace.steps.append((request, events))
    except CapExceededError as error:
        trace.end = ("cap error", str(error))
        return trace
    trace.end = attrs.asdict(planner.stats)
    return trace


@settings(max_examples=60, deadline=None)
@given(
    records=datasets(max_size=60),
    total_mode=st.sampled_from(TOTAL_MODES),
    page_size=st.sampled_from([2, 3, 5]),
    cap_pages=st.integers(1, 4),
    hidden_pages=st.one_of(st.none(), st.integers(1, 3)),
    refuse=st.booleans(),
    on_cap=st.sampled_from(["error", "warn"]),
    in_flight=st.integers(1, 3),
    include_seen=st.booleans(),
)
def test_a_restored_planner_makes_the_same_requests_and_deliveries(
    records: list[dict[str, Any]],
    total_mode: TotalMode,
    page_size: int,
    cap_pages: int,
    hidden_pages: int | None,
    refuse: bool,
    on_cap: Literal["error", "warn"],
    in_flight: int,
    include_seen: bool,
) -> None:
    """Snapshot at every step with nothing in flight (through JSON, as a
    checkpoint file does), restore, and the restored planner asks for the same
    pages and delivers the same records as the original did from there on."""
    cap = page_size * cap_pages + page_size // 2
    hidden = None if hidden_pages is None else page_size * hidden_pages
    api = ModelAPI(
        records, cap=cap, total_mode=total_mode, hidden_cap=hidden, refuse_past_cap=refuse
    )
    options: dict[str, Any] = {"cap": cap, "page_size": page_size, "on_cap": on_cap}
    checkpoints: list[Checkpointed] = []

    def save(step: int, delivered: list[Mapping[str, Any]]) -> None:
        snapshot = orjson.loads(orjson.dumps(planner.snapshot(include_seen=include_seen)))
        checkpoints.append(Checkpointed(step, snapshot, delivered))

    planner = WindowPlanner(**options)
    original = drive(planner, api, in_flight, checkpoint=save)
    assert checkpoints
    for saved in checkpoints:
        handed_back = () if include_seen else saved.delivered
        restored, events = WindowPlanner.restore(saved.snapshot, delivered=handed_back)
        assert events == [], "nothing was in flight, so nothing was left to settle"
        assert (restored.cap, restored.page_size, restored.on_cap) == (cap, page_size, on_cap)
        again = drive(restored, api, in_flight)
        assert again.steps == original.steps[saved.step :]
        assert again.end == original.end


def planner_waiting_on_a_page_it_no_longer_needs() -> tuple[WindowPlanner, PageRequest]:
    """Reading without a size, page 2 came back empty while page 3 is in flight."""
    records = [{"id": i, "date_created": i, "date_modified": i} for i in range(1, 11)]
    planner = WindowPlanner(cap=100, page_size=10)
    first = planner.next_request()
    assert first is not None
    planner.feed(first, PageResult(records, total=None))  # full page 1, no total: held
    cut = planner.next_request()
    assert cut is not None
    assert cut.page_number == 10
    planner.feed(cut, PageResult([], total=None))  # empty: fewer than 10 pages, size unknown
    second, third = planner.next_request(), planner.next_request()
    assert second is not None
    assert third is not None
    assert (second.page_number, third.page_number) == (2, 3)
    planner.feed(second, PageResult([], total=None))
    return planner, third


def test_restore_settles_a_window_whose_last_page_was_in_before_the_snapshot() -> None:
    """The restored planner ends the window (reading on) at once, as the
    original does when its page in flight comes back."""
    planner, in_flight = planner_waiting_on_a_page_it_no_longer_needs()
    restored, settled = WindowPlanner.restore(planner.snapshot())
    assert any(isinstance(e, WindowSplit) and e.reason == READ_ON_REASON for e in settled)
    assert settled == planner.feed(in_flight, PageResult([], total=None))
    assert restored.windows == planner.windows


def test_a_snapshot_of_an_older_version_is_refused_as_such() -> None:
    snapshot = WindowPlanner().snapshot()
    with pytest.raises(CheckpointError, match="older version"):
        WindowPlanner.restore({**snapshot, "version": 2})
    with pytest.raises(CheckpointError, match="unknown planner snapshot version"):
        WindowPlanner.restore({**snapshot, "version": "3"})


def test_a_snapshot_with_illegal_state_is_refused() -> None:
    records = skewed_records(500, seed=11)
    api = ModelAPI(records, cap=1_000)
    planner = WindowPlanner(cap=1_000, page_size=50)
    request = planner.next_request()
    assert request is not None
    planner.feed(request, api.answer(request))
    snapshot = planner.snapshot()
    (window,) = snapshot["windows"]
    assert window["stage"]["phase"] == "read"
    damaged = orjson.loads(orjson.dumps(snapshot))
    damaged["windows"][0]["stage"]["size"]["expected"] = None  # a total's size without a count
    with pytest.raises(CheckpointError, match="damaged"):
        WindowPlanner.restore(damaged)
    damaged = orjson.loads(orjson.dumps(snapshot))
    damaged["windows"][0]["stage"]["phase"] = "lost"
    with pytest.raises(CheckpointError, match="damaged"):
        WindowPlanner.restore(damaged)
    damaged = orjson.loads(orjson.dumps(snapshot))
    damaged["seen"]["windows"][0]["key"] = 99  # ids of a window that is not there
    with pytest.raises(CheckpointError, match="damaged"):
        WindowPlanner.restore(damaged)


# -- counting into the caller's stats -----------------------------------------------------


@attrs.define
class CallerStats(PlannerStats):
    requests: int = 0


def test_the_planner_counts_into_the_stats_it_is_given() -> None:
    stats = CallerStats(requests=7)
    records = skewed_records(3_000, seed=12)
    planner = WindowPlanner(cap=1_000, page_size=50, stats=stats)
    delivered, _ = run(planner, ModelAPI(records, cap=1_000))
    assert planner.stats is stats
    assert stats.requests == 7
    assert stats.records_delivered == len(delivered) == 3_000
    assert stats.windows_split >= 1


def test_restore_fills_the_stats_it_is_given_and_counts_on() -> None:
    records = skewed_records(3_000, seed=13)
    api = ModelAPI(records, cap=1_000)
    planner = WindowPlanner(cap=1_000, page_size=50)
    for _ in range(10):
        request = planner.next_request()
        assert request is not None
        planner.feed(request, api.answer(request))
    snapshot = planner.snapshot()
    assert set(snapshot["stats"]) == {field.name for field in attrs.fields(PlannerStats)}
    stats = CallerStats(requests=3)
    restored, _ = WindowPlanner.restore(snapshot, stats=stats)
    assert restored.stats is stats
    assert stats.requests == 3
    assert stats.windows_planned == planner.stats.windows_planned
    assert stats.records_delivered == planner.stats.records_delivered > 0
    run(restored, api)
    assert stats.records_delivered == 3_000


class Unreachable:
    """A page source for a search that is built and never iterated."""

    base_url = "http://127.0.0.1:9/developer_api/v1"
    user_email = "nobody@example.com"

    async def fetch_page(self, body: Any, **_: Any) -> RawPage:
        raise AssertionError("no page should be fetched")


def test_a_search_handles_the_events_a_restore_settled(caplog: pytest.LogCaptureFixture) -> None:
    planner, in_flight = planner_waiting_on_a_page_it_no_longer_needs()
    stats = SearchStats()
    restored, settled = WindowPlanner.restore(planner.snapshot(), stats=stats)
    assert settled
    with caplog.at_level(logging.DEBUG, logger="copper_async._engine"):
        search: Search[dict[str, Any]] = Search(
            Unreachable(),
            resource=OPPORTUNITIES,
            planner=restored,
            planner_events=settled,
            stats=stats,
        )
    assert "reading on" in caplog.text
    assert search.stats.windows_continued == restored.stats.windows_continued == 1
    assert in_flight.page_number == 3
