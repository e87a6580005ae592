"""An in-memory model of the search API, to drive the window planner against.

The model answers exactly like the search endpoint would (bounds inclusive,
sorted by the requested field with ties in id order, the cap, each total mode)
so the planner's properties hold for every data distribution hypothesis finds.
Records are kept sorted by ``date_created``: a window is a bisected slice.
"""

from __future__ import annotations

import bisect
import itertools
import random
import zlib
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

import attrs
from hypothesis import strategies as st

from copper_async._planner import (
    Deliver,
    PageRequest,
    PageResult,
    WindowDone,
    WindowPlanner,
)
from copper_async.exceptions import CapExceededError

TotalMode = Literal["exact", "overcount", "capped", "absent"]
Ties = Literal["id", "per_window"]
TOTAL_MODES: list[TotalMode] = ["exact", "overcount", "capped", "absent"]
FIELDS = ("date_created", "date_modified")


def _between(value: int, lo: int | None, hi: int | None) -> bool:
    return (lo is None or value >= lo) and (hi is None or value <= hi)


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
    # How records of one second are ordered: by id, or in an order of each
    # window's own (stable for one query, different between queries).
    ties: Ties = "id"
    requests: list[PageRequest] = attrs.Factory(list)
    _cache: dict[Any, list[dict[str, Any]]] = attrs.Factory(dict)
    version: int = 0  # bumped whenever records change in place
    _index_state: tuple[int, int] | None = None
    _by_created: list[dict[str, Any]] = attrs.Factory(list)
    _created: list[int] = attrs.Factory(list)

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
        """The records inside the request's window, in the requested order."""
        key = (request.window.bounds, request.sort_field, len(self.records), self.version)
        if key not in self._cache:
            self._cache[key] = self._scan(request)
        return self._cache[key]

    def _scan(self, request: PageRequest) -> list[dict[str, Any]]:
        # Records sorted by (date_created, id), rebuilt when they change: a window's
        # records are one bisected slice of it, filtered on the other field.
        state = (len(self.records), self.version)
        if self._index_state != state:
            self._by_created = sorted(self.records, key=lambda r: (r[FIELDS[0]], r["id"]))
            self._created = [r[FIELDS[0]] for r in self._by_created]
            self._index_state = state
        (lo, hi), *others = request.window.bounds
        start = 0 if lo is None else bisect.bisect_left(self._created, lo)
        end = len(self._created) if hi is None else bisect.bisect_right(self._created, hi)
        found = self._by_created[start:end]
        for field, (lo, hi) in zip(FIELDS[1:], others, strict=False):
            if lo is not None or hi is not None:
                found = [r for r in found if _between(r[field], lo, hi)]
        if self.ties == "per_window":
            # Not hash(): that of None differs between processes before Python 3.12,
            # and a failing example must replay in the same order.
            bounds = repr(request.window.bounds)
            return sorted(
                found,
                key=lambda r: (r[request.sort_field], zlib.crc32(f"{r['id']} {bounds}".encode())),
            )
        if request.sort_field != FIELDS[0]:
            found = sorted(found, key=lambda r: (r[request.sort_field], r["id"]))
        return found

    def total(self, count: int) -> int | None:
        if self.fixed_total is not None:
            return self.fixed_total
        if self.total_mode == "exact":
            return count
        if self.total_mode == "overcount":
            return count + count // 10 + 3
        if self.total_mode == "capped":  # at the API's own cap, as the fake server's
            return min(count, self.cap if self.hidden_cap is None else self.hidden_cap)
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
    peek_chance: float = 0.0,
) -> tuple[list[Any], list[Any]]:
    """Drive the planner to the end; answers come back in a random order.

    With ``peek_chance``, each request may want a random few records (as a
    search with ``max_items`` does), which lets the planner peek."""
    rng = rng or random.Random(0)
    delivered: list[Any] = []
    events: list[Any] = []
    pending: list[PageRequest] = []
    steps = 0
    while not planner.finished:
        steps += 1
        assert steps < 100_000, "the planner does not terminate"
        while len(pending) < max_in_flight:
            want = None
            if peek_chance and rng.random() < peek_chance:
                want = rng.randint(1, planner.page_size)
            request = planner.next_request(want=want, in_flight=bool(pending))
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
def datasets(draw: st.DrawFn, max_size: int = 260) -> list[dict[str, Any]]:
    size = draw(st.integers(min_value=0, max_value=max_size))
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


def skewed_records(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    created = sorted(int(10_000_000 * rng.random() ** 3) for _ in range(count))
    return make_records(created, [rng.randrange(1000) for _ in range(count)])


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


def stopped_short_of_a_hidden_cap() -> tuple[WindowPlanner, ModelAPI]:
    """A planner fed until its first window stopped at 493 records, an API cap
    below the 500 it was told, so that the next window continues it."""
    api = ModelAPI(skewed_records(1_500, seed=3), cap=500, total_mode="exact", hidden_cap=493)
    planner = WindowPlanner(cap=500, page_size=50)
    while planner.stats.windows_continued == 0:
        request = planner.next_request()
        assert request is not None
        planner.feed(request, api.answer(request))
    return planner, api
