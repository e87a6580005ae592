"""The window planner: which page to fetch next, so every record arrives once.

Copper's search returns only the first ``cap`` (100,000) records of a query.
The planner splits the query's date range into *windows* small enough to be
read in full, and decides every request. It is a sans-I/O state machine in the
style of h11: no network, no clock, no randomness. The engine asks
:meth:`WindowPlanner.next_request` what to fetch, sends it, and hands the
answer back with :meth:`WindowPlanner.feed`, which returns :class:`Deliver`
events carrying the records to yield, plus events worth logging.

How a window is planned (``P`` = page size, ``C`` = cap, ``k = C // P``, the
last page whose records all lie inside the cap):

* **First look.** Page 1, sorted ascending by the window's split field. When
  the answer carries a total ``T < C``, the window fits: page 1 is delivered
  and pages ``2..ceil(T/P)`` follow, many in flight at once. Once the API has
  shown that it sends no total, first looks go to page ``k`` instead: a short
  page there proves the window fits and tells its exact size, and is itself
  delivered, so fitting windows cost nothing extra. A full page 1 whose total
  says the window may not fit is held, not delivered: page ``k`` decides (a
  total can over-count, and then the held page is not wasted).
* **Cut.** A window that may not fit (``T >= C``, or a full page ``k``) is
  never read. Page ``k`` of it, sorted by the split field, shows the value
  ``d`` found at position ``kP``: ``[lo, d - 1]`` holds fewer than ``kP``
  records and ``[d, hi]`` holds the rest, so each cut peels off a window that
  nearly fills the cap (sized from the data, not by halving). Both children
  get their own first look, which verifies the count before anything is read.
* **Hot spots.** When more than ``C`` records share one second of the split
  field, that second is split on the next split field (``date_modified`` by
  default). When the last field cannot split it either, the window is
  reported: :class:`~copper_async.exceptions.CapExceededError`, or with
  ``on_cap="warn"`` its reachable part is read and the loss is reported in a
  :class:`CapLimited` event. Records are never lost silently.
* **Cross-check.** Ids already delivered are dropped when seen again (offset
  paging shifts records when others are deleted). A window's records moved
  while it was read when a page's total differs from its first total, when
  pages end earlier than an exactly known size says, or when one id comes
  twice in one reading of it (an edit moved it inside the window, shifting
  the offsets of the rest); once its pages are in, such a window is read
  again from page 1 and only unseen ids are delivered (at most ``max_passes``
  reads). A stable total above the records a window held is what Copper
  documents (an upper bound): it is counted, not reported as drift.
* **Distrust.** A page that holds records past the position its own total
  allows proves the totals wrong: from then on totals are ignored (as if the
  API sent none) and windows being read on a total are looked at afresh.
* **Reading on.** When a window's pages stop at a page boundary (an empty
  page right after full ones) short of its count, or with no count at all,
  the API may cap results lower than ``cap`` says: the window is read on
  from the last value read, ``[d, hi]``, ids already delivered dropped. That
  costs one request when nothing more is there, and keeps a wrong ``cap``
  from losing records (unless the API also caps its total there: then
  nothing shows the loss).

Windows are inclusive ranges of whole seconds (``None`` for an open end) that
meet exactly: a cut at ``d`` gives ``[lo, d - 1]`` and ``[d, hi]``, so the
leaves partition the starting range with no gap and no overlap.

Which ids were delivered is kept per window (at most a cap's worth each,
dropped when the window is done). The windows that split one hot second on
the next field share one memory: an edit moves a record's ``date_modified``
between them, and it must still come once.

The planner's state is what a checkpoint saves: :meth:`WindowPlanner.snapshot`
returns plain JSON data, and :meth:`WindowPlanner.restore` rebuilds a planner
that re-issues only what had not been delivered.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs

from copper_async.exceptions import CapExceededError, CheckpointError, CopperError, RecordError

__all__ = [
    "READ_ON_REASON",
    "CapLimited",
    "CountMismatch",
    "Deliver",
    "PageRequest",
    "PageResult",
    "PlannerEvent",
    "PlannerStats",
    "TotalsDistrusted",
    "Window",
    "WindowDone",
    "WindowPlanner",
    "WindowSplit",
]

Bound = tuple[int | None, int | None]
OnCap = Literal["error", "warn"]
# Which reading of which window delivered an id: ``key << 8 | pass``.
Seen = dict[int, int]

# Guards against a sort order so broken that cuts stop shrinking windows. Only
# splits that should not have been needed count (see _cut), so a search of any
# size stays far below it.
_MAX_SPLIT_DEPTH = 200
_MAX_PASSES = 100  # a reading's code keeps the pass in 8 bits; restarts add one
_SNAPSHOT_VERSION = 2
READ_ON_REASON = "pages stopped at a page boundary short of the count: reading on"
# The reader of ids restored from a checkpoint: never the current reading, so
# an id read before a crash is dropped, not taken for an offset shift.
_REMEMBERED = -1


@attrs.frozen
class Window:
    """A slice of the search: inclusive bounds on each split field.

    ``bounds[i]`` bounds ``split_fields[i]``; ``level`` is the field this
    window is sorted and cut on (earlier fields are pinned to one second).
    """

    key: int
    bounds: tuple[Bound, ...]
    level: int
    depth: int = 0

    def describe(self, split_fields: Sequence[str]) -> dict[str, Any]:
        """The bounds as a readable mapping, for errors and logs."""
        return {field: [lo, hi] for field, (lo, hi) in zip(split_fields, self.bounds, strict=True)}

    @property
    def pin(self) -> tuple[Bound, ...]:
        """The bounds of the fields pinned to one second (empty at level 0)."""
        return self.bounds[: self.level]


@attrs.frozen
class PageRequest:
    """One page to fetch: the window's bounds, sorted ascending by ``sort_field``."""

    window: Window
    page_number: int
    page_size: int
    sort_field: str
    pass_number: int


@attrs.frozen
class PageResult:
    """What one page said: its records (JSON objects) and the total header.

    ``refused`` marks a page the API would not serve (an error status for a
    page past the first): it is taken as an empty page that says nothing of
    totals.
    """

    records: Sequence[Mapping[str, Any]]
    total: int | None
    refused: bool = False


@attrs.frozen
class Deliver:
    """Records to yield, already free of ids delivered before."""

    window: Window
    page_number: int
    records: list[Mapping[str, Any]]
    duplicates: int


@attrs.frozen
class WindowSplit:
    """A window that may not fit was replaced by ``children``."""

    window: Window
    children: tuple[Window, ...]
    total: int | None
    reason: str


@attrs.frozen
class WindowDone:
    """A window read in full."""

    window: Window
    delivered: int
    total: int | None


@attrs.frozen
class CountMismatch:
    """Records seen in a window differ from its count, or moved while it was read."""

    window: Window
    expected: int
    seen: int
    reread: bool
    reason: str = "records seen differ from the count"


@attrs.frozen
class CapLimited:
    """``on_cap="warn"``: a window read only up to the cap.

    ``unreachable`` is None when unknown; otherwise exact when ``exact``,
    else an upper bound (the API's total may over-count).
    """

    window: Window
    count: int | None
    unreachable: int | None
    exact: bool = True


@attrs.frozen
class TotalsDistrusted:
    """A page held records past the position its own total allows."""

    window: Window
    page_number: int
    total: int
    records_through: int


PlannerEvent = Deliver | WindowSplit | WindowDone | CountMismatch | CapLimited | TotalsDistrusted


@attrs.define
class PlannerStats:
    """Counters the planner keeps; the engine merges them into its own stats."""

    windows_planned: int = 0
    windows_split: int = 0
    windows_done: int = 0
    hot_spots: int = 0
    records_delivered: int = 0
    duplicates_dropped: int = 0
    count_mismatches: int = 0
    rereads: int = 0
    pages_discarded: int = 0
    cap_limited_windows: int = 0
    unreachable_records: int = 0
    # Windows whose stable total was above the records they held (an upper bound).
    overcounted_windows: int = 0
    # Ids read twice in one reading of one window: offsets moved under it.
    shifted_reads: int = 0
    # Windows whose pages stopped at a page boundary short of their count, read on.
    windows_continued: int = 0
    # Pages the API refused (taken as empty: a cap lower than configured).
    pages_refused: int = 0
    # A page contradicted its own total: totals are ignored since.
    totals_distrusted: bool = False


class _Phase(enum.Enum):
    NEW = "new"  # nothing known: a first look is due
    CUT = "cut"  # may not fit: page k is due to find the cut
    READ = "read"  # fits: reading pages
    EDGE = "edge"  # cannot be split further: the last page inside the cap decides


@attrs.define
class _WindowState:
    window: Window
    # Shared by the windows of one hot second; a window's own otherwise.
    seen: Seen
    phase: _Phase = _Phase.NEW
    # Counts can prove a new window overflows: then its first look is the cut page.
    look_at_cut_page: bool = False
    pass_number: int = 0
    first_total: int | None = None
    # Exactly known size (from a total, or from a short page k); None when unknown.
    expected: int | None = None
    # Pages to read; None means "until a short page", but never past page_limit.
    n_pages: int | None = None
    page_limit: int | None = None
    short_page: int | None = None
    short_count: int = 0  # records on short_page
    full_pages: int = 0  # highest page seen full, for reading without a size
    delivered_pages: set[int] = attrs.Factory(set)
    # A full first look at page 1 that may not fit: held until page k decides.
    held: list[Mapping[str, Any]] | None = None
    held_total: int | None = None
    unique: int = 0  # records this window delivered, over every pass
    count: int = 0  # distinct ids read in this pass, delivered here or before
    top_value: int | None = None  # highest split value read in this pass
    drift: bool = False
    drift_reason: str = ""
    size_from_total: bool = False
    cap_limited: bool = False
    # Its size came from a total that turned out wrong: look at it afresh.
    relook: bool = False
    issued: set[int] = attrs.Factory(set)

    @property
    def reader(self) -> int:
        """This reading's code in ``seen``."""
        return self.window.key << 8 | self.pass_number


@attrs.frozen
class _Spec:
    """A window to create in place of another."""

    bounds: tuple[Bound, ...]
    level: int
    depth: int
    look_at_cut_page: bool = False


class WindowPlanner:
    """Plans the requests that read one search completely, exactly once.

    ``split_fields`` are record keys of Unix-second fields that the API can
    both filter and sort on and that are never null (``date_created`` first:
    it never changes, so records cannot move between windows).
    ``bounds`` are the starting inclusive bounds for each of them (the user's
    own filter bounds, or ``(None, None)``).
    """

    def __init__(
        self,
        *,
        cap: int = 100_000,
        page_size: int = 200,
        split_fields: Sequence[str] = ("date_created", "date_modified"),
        bounds: Sequence[Bound] | None = None,
        on_cap: OnCap = "error",
        lookahead: int = 2,
        max_passes: int = 3,
        id_field: str = "id",
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if cap < page_size:
            raise ValueError("cap must be at least page_size")
        if not split_fields:
            raise ValueError("at least one split field is needed")
        if on_cap not in ("error", "warn"):
            raise ValueError("on_cap must be 'error' or 'warn'")
        if lookahead < 1 or max_passes < 1:
            raise ValueError("lookahead and max_passes must be at least 1")
        if max_passes > _MAX_PASSES:
            raise ValueError(f"max_passes must be at most {_MAX_PASSES}")
        start = tuple(bounds) if bounds is not None else ((None, None),) * len(split_fields)
        if len(start) != len(split_fields):
            raise ValueError("one bound pair per split field is needed")
        for lo, hi in start:
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"empty bounds {lo}..{hi}")
        self.cap = cap
        self.page_size = page_size
        self.split_fields = tuple(split_fields)
        self.on_cap: OnCap = on_cap
        self.lookahead = lookahead
        self.max_passes = max_passes
        self.id_field = id_field
        self.stats = PlannerStats()
        # The last page whose records all lie within the cap.
        self._cut_page = cap // page_size
        self._totals_absent = False
        # Once a total above the cap is seen, totals are not capped: T == cap then fits.
        self._totals_uncapped = False
        # What totals have shown: a window they counted exactly, or one they over-counted.
        self._totals_matched = False
        self._totals_overcount = False
        self._next_key = 0
        self._states: dict[int, _WindowState] = {}
        self._order: list[int] = []  # active windows, in range order
        # The shared memory of each hot second being split on a further field.
        self._groups: dict[tuple[Bound, ...], Seen] = {}
        # Events that arose outside feed() (a restored window already complete).
        self._pending_events: list[PlannerEvent] = []
        self._add_windows([_Spec(start, 0, 0)], seen_from=None)
        self.root = self._states[self._order[0]].window

    # -- asking -----------------------------------------------------------

    @property
    def finished(self) -> bool:
        """True once every window is read (or reported)."""
        return not self._order

    @property
    def in_flight(self) -> int:
        """Requests handed out and not yet fed back."""
        return sum(len(state.issued) for state in self._states.values())

    def next_request(self) -> PageRequest | None:
        """The next page worth fetching now, or None until an answer comes in."""
        for key in self._order:
            state = self._states[key]
            page = self._next_page(state)
            if page is not None:
                state.issued.add(page)
                return PageRequest(
                    window=state.window,
                    page_number=page,
                    page_size=self.page_size,
                    sort_field=self.split_fields[state.window.level],
                    pass_number=state.pass_number,
                )
        return None

    def _next_page(self, state: _WindowState) -> int | None:
        if state.phase is _Phase.NEW:
            if state.issued:
                return None
            look_at_cut_page = self._totals_absent or state.look_at_cut_page
            return self._cut_page if look_at_cut_page else 1
        if state.phase is _Phase.CUT:
            return None if state.issued else self._cut_page
        if state.phase is _Phase.EDGE:
            return None if state.issued else self._reachable_pages()
        if state.relook:
            return None
        # READ: every page up to the known end, or a few past the last full one.
        last = self._last_needed_page(state)
        limit = last if last is not None else state.full_pages + self.lookahead
        limit = min(limit, state.page_limit or self._reachable_pages())
        for page in range(1, limit + 1):
            if page not in state.delivered_pages and page not in state.issued:
                return page
        return None

    def _reachable_pages(self) -> int:
        return -(-self.cap // self.page_size)

    def _last_needed_page(self, state: _WindowState) -> int | None:
        ends = [p for p in (state.n_pages, state.short_page) if p is not None]
        return min(ends) if ends else None

    # -- feeding ----------------------------------------------------------

    def feed(self, request: PageRequest, result: PageResult) -> list[PlannerEvent]:
        """Take the answer to ``request``; return what follows from it.

        Raises :class:`CapExceededError` (``on_cap="error"``) when a window
        cannot be made to fit, and :class:`ValueError` for a request this
        planner did not hand out.
        """
        state = self._states.get(request.window.key)
        if (
            state is None
            or request.pass_number != state.pass_number
            or request.page_number not in state.issued
        ):
            raise ValueError(f"not an outstanding request of this planner: {request!r}")
        state.issued.discard(request.page_number)
        events, self._pending_events = self._pending_events, []
        if result.refused:
            self.stats.pages_refused += 1
        result = self._checked_total(state, request.page_number, result, events)
        if state.phase is _Phase.NEW:
            events += self._feed_first_look(state, request.page_number, result)
        elif state.phase is _Phase.CUT:
            events += self._feed_cut_page(state, result)
        elif state.phase is _Phase.EDGE:
            events += self._feed_edge_page(state, request.page_number, result)
        else:
            events += self._feed_read(state, request.page_number, result)
        self._restart_relooks()
        return events

    def _checked_total(
        self, state: _WindowState, page: int, result: PageResult, events: list[PlannerEvent]
    ) -> PageResult:
        """The result with its total dropped when totals cannot be trusted."""
        total = result.total
        if total is None:
            return result
        if not self._totals_distrusted:
            through = (page - 1) * self.page_size + len(result.records)
            if not result.records or through <= total:
                return result
            self._distrust_totals()
            events.append(TotalsDistrusted(state.window, page, total, through))
        return PageResult(result.records, None, result.refused)

    @property
    def _totals_distrusted(self) -> bool:
        return self.stats.totals_distrusted

    def _distrust_totals(self) -> None:
        self.stats.totals_distrusted = True
        self._totals_absent = True
        for key in self._order:
            state = self._states[key]
            state.first_total = None
            if state.phase is _Phase.READ and state.size_from_total:
                state.relook = True

    def _restart_relooks(self) -> None:
        """Windows whose size came from a wrong total start over, once their
        pages in flight are in; ids they delivered stay dropped."""
        if not self._totals_distrusted:
            return
        for key in list(self._order):
            state = self._states[key]
            if state.relook and not state.issued:
                self._states[key] = _WindowState(
                    window=state.window,
                    seen=state.seen,
                    pass_number=state.pass_number + 1,
                    unique=state.unique,
                )

    def _feed_first_look(
        self, state: _WindowState, page: int, result: PageResult
    ) -> list[PlannerEvent]:
        records, total = result.records, result.total
        if not result.refused:
            self._totals_absent = total is None
        if self._fits(total):
            state.first_total = total
            self._start_reading(state, expected=total, from_total=True)
            return self._feed_read(state, page, result)
        if page == self._cut_page:
            return self._feed_cut_page(state, result)
        state.first_total = total
        if len(records) < self.page_size:
            # A short page 1 proves the window ends inside it, whatever a total said.
            self._start_reading_short(state, page, len(records))
            return self._feed_read(state, page, result)
        # Full page 1 that may not fit: page k decides; keep page 1 for then.
        state.held = list(records)
        state.held_total = total
        state.phase = _Phase.CUT
        return []

    def _feed_cut_page(self, state: _WindowState, result: PageResult) -> list[PlannerEvent]:
        records, total = result.records, result.total
        if self._fits(total):
            state.first_total = total
            self._start_reading(state, expected=total, from_total=True)
        elif len(records) < self.page_size:
            # Fewer than k pages, whatever an (over-counting) total said.
            state.first_total = total
            self._start_reading_short(state, self._cut_page, len(records))
        else:
            if state.held is not None:
                self.stats.pages_discarded += 1
            state.held = None
            return self._cut(state, records, total if total is not None else state.first_total)
        events: list[PlannerEvent] = []
        if state.held is not None:
            held, state.held = state.held, None
            events.extend(self._deliver(state, 1, held, total=state.held_total))
        events.extend(self._feed_read(state, self._cut_page, result))
        return events

    def _start_reading(
        self, state: _WindowState, *, expected: int | None, from_total: bool
    ) -> None:
        state.phase = _Phase.READ
        state.expected = expected
        state.size_from_total = from_total
        state.n_pages = None if expected is None else -(-expected // self.page_size)

    def _fits(self, total: int | None) -> bool:
        if total is None:
            return False
        if total > self.cap:
            self._totals_uncapped = True
        return total < self.cap or (total == self.cap and self._totals_uncapped)

    def _start_reading_short(self, state: _WindowState, page: int, count: int) -> None:
        """A short ``page`` (no usable total) bounds the window's size."""
        if count or page == 1:
            self._start_reading(
                state, expected=(page - 1) * self.page_size + count, from_total=False
            )
        else:
            # Empty: the window ends somewhere before ``page``; read until a short page.
            self._start_reading(state, expected=None, from_total=False)
            state.page_limit = page - 1

    def _feed_read(self, state: _WindowState, page: int, result: PageResult) -> list[PlannerEvent]:
        events = self._deliver(state, page, result.records, total=result.total)
        if self._read_complete(state):
            events.extend(self._finish(state))
        return events

    def _deliver(
        self,
        state: _WindowState,
        page: int,
        records: Sequence[Mapping[str, Any]],
        *,
        total: int | None,
    ) -> list[PlannerEvent]:
        state.delivered_pages.add(page)
        if len(records) >= self.page_size:
            state.full_pages = max(state.full_pages, page)
        elif state.short_page is None or page < state.short_page:
            state.short_page = page
            state.short_count = len(records)
        if total is not None and state.first_total is not None and total != state.first_total:
            self._moved(state, "the window's total changed while it was read")
        fresh: list[Mapping[str, Any]] = []
        seen = state.seen
        reader = state.reader
        id_field = self.id_field
        shifted = 0
        for record in records:
            record_id = record.get(id_field)
            if record_id is None:
                raise RecordError(id_field, "missing", context={"page_number": page})
            # A non-int id would be dropped as a "duplicate" of an equal one (True == 1,
            # 1.0 == 1) or crash the set (a list): refuse it, as the typed schema does.
            if record_id.__class__ is not int or record_id <= 0:
                raise RecordError(
                    id_field,
                    f"expected a positive integer id, got {record_id!r:.80}",
                    context={"page_number": page},
                )
            earlier = seen.get(record_id)
            if earlier is None:
                fresh.append(record)
            elif earlier == reader:
                shifted += 1
                continue
            seen[record_id] = reader
        state.count += len(records) - shifted
        if records:
            value = _split_value(records[-1], self.split_fields[state.window.level])
            if value is not None and (state.top_value is None or value > state.top_value):
                state.top_value = value
        if shifted:
            self.stats.shifted_reads += shifted
            self._moved(state, "records came twice in one reading: offsets moved")
        duplicates = len(records) - len(fresh)
        state.unique += len(fresh)
        self.stats.duplicates_dropped += duplicates
        self.stats.records_delivered += len(fresh)
        if not fresh and not duplicates:
            return []
        return [Deliver(state.window, page, fresh, duplicates)]

    def _moved(self, state: _WindowState, reason: str) -> None:
        if not state.drift:
            state.drift = True
            state.drift_reason = reason

    def _read_complete(self, state: _WindowState) -> bool:
        if state.issued or state.relook:
            return False
        last = self._last_needed_page(state)
        if last is None:
            # Reading without a size: done once every allowed page came back full.
            limit = state.page_limit or self._reachable_pages()
            if state.full_pages < limit:
                return False
            last = limit
        return all(page in state.delivered_pages for page in range(1, last + 1))

    def _finish(self, state: _WindowState) -> list[PlannerEvent]:
        events: list[PlannerEvent] = []
        # Pages ending before an exactly known size means records moved away.
        if (
            not state.size_from_total
            and state.n_pages is not None
            and state.short_page is not None
            and state.short_page < state.n_pages
        ):
            self._moved(state, "pages ended before the window's known size")
        expected = state.expected
        if state.drift:
            reread = state.pass_number + 1 < self.max_passes
            self.stats.count_mismatches += 1
            shown = expected if expected is not None else state.count
            events.append(
                CountMismatch(state.window, shown, state.count, reread, state.drift_reason)
            )
            if reread:
                self.stats.rereads += 1
                self._states[state.window.key] = _WindowState(
                    window=state.window,
                    seen=state.seen,
                    pass_number=state.pass_number + 1,
                    unique=state.unique,
                )
                return events
        elif (
            not state.cap_limited
            and self._ended_on_page_boundary(state)
            and (expected is None or state.count < expected)
        ):
            read_on = self._read_on(state)
            if read_on is not None:
                return events + read_on
            self.stats.count_mismatches += 1
            reason = "pages stopped at a page boundary short of the count, in one second"
            shown = expected if expected is not None else state.count
            events.append(CountMismatch(state.window, shown, state.count, False, reason))
            expected = None  # reported: not an over-count
        if not state.drift and expected is not None and not state.cap_limited:
            if state.count == expected:
                # An empty window says nothing about how totals count.
                self._totals_matched |= state.size_from_total and expected > 0
            elif state.size_from_total and state.count < expected:
                self._totals_overcount = True
                self.stats.overcounted_windows += 1
            else:
                self.stats.count_mismatches += 1
                events.append(CountMismatch(state.window, expected, state.count, False))
        self.stats.windows_done += 1
        events.append(WindowDone(state.window, state.unique, state.first_total))
        self._remove(state)
        return events

    def _ended_on_page_boundary(self, state: _WindowState) -> bool:
        """An empty page right after full ones: an API capping lower than
        ``cap`` stops exactly so (a window whose size is a multiple of the page
        size too, when its total over-counts or is absent)."""
        return state.short_page is not None and state.short_page > 1 and state.short_count == 0

    def _read_on(self, state: _WindowState) -> list[PlannerEvent] | None:
        """Replace a window that stopped at a page boundary by ``[d, hi]``,
        ``d`` the last value read, as ``[lo, d - 1]`` was read in full; or
        None when the window cannot be narrowed."""
        window = state.window
        level = window.level
        lo, hi = window.bounds[level]
        top = state.top_value
        if top is None or (hi is not None and top > hi):
            return None
        reason = READ_ON_REASON
        if lo is None or top > lo:
            done = self._new_window(_Spec(_with(window.bounds, level, (lo, top - 1)), level, 0))
            rest = _Spec(_with(window.bounds, level, (top, hi)), level, window.depth)
            (child,) = self._replace_with(state, [rest])
            self.stats.windows_split += 1
            self.stats.windows_continued += 1
            self.stats.windows_done += 1
            return [
                WindowSplit(window, (done, child), state.first_total, reason),
                WindowDone(done, state.unique, state.first_total),
            ]
        # Every record read lies in second ``lo``: narrow that second on the next field.
        has_next = level + 1 < len(self.split_fields)
        second = _with(window.bounds, level, (lo, lo))
        if lo == hi:
            if not has_next:
                return None
            specs = [_Spec(second, level + 1, window.depth + 1)]
        else:
            specs = [
                _Spec(second, level + 1 if has_next else level, window.depth + 1),
                _Spec(_with(window.bounds, level, (lo + 1, hi)), level, window.depth),
            ]
        self.stats.hot_spots += has_next
        self.stats.windows_split += 1
        self.stats.windows_continued += 1
        children = self._replace_with(state, specs)
        return [WindowSplit(window, children, state.first_total, reason)]

    # -- splitting --------------------------------------------------------

    def _cut(
        self, state: _WindowState, records: Sequence[Mapping[str, Any]], total: int | None
    ) -> list[PlannerEvent]:
        window = state.window
        level = window.level
        field = self.split_fields[level]
        lo, hi = window.bounds[level]
        cut_value = _split_value(records[-1], field) if records else None
        if window.depth >= _MAX_SPLIT_DEPTH:
            raise CopperError(
                "the search's sort order is inconsistent: splitting does not converge",
                context={"window": window.describe(self.split_fields)},
            )
        if lo is not None and lo == hi:
            return self._hot_spot(state, total)
        specs: list[_Spec]
        reason = "cut at the cap position"
        deeper = window.depth + 1
        if (
            cut_value is not None
            and (lo is None or cut_value > lo)
            and (hi is None or cut_value <= hi)
        ):
            # The first piece holds fewer than k pages of records: a correct sort
            # makes it fit, so only its splitting again counts towards the guard.
            # The rest overflows for sure when the total says so.
            first_at_most = self._cut_page * self.page_size - 1
            overflowing_rest = total is not None and total - first_at_most > self.cap
            specs = [
                _Spec(_with(window.bounds, level, (lo, cut_value - 1)), level, deeper),
                _Spec(
                    _with(window.bounds, level, (cut_value, hi)),
                    level,
                    window.depth,
                    look_at_cut_page=overflowing_rest,
                ),
            ]
        elif cut_value is not None and cut_value == lo:
            # Pages 1..k all lie in second ``lo``: it holds k pages or more, so it
            # goes straight to the next field (or to its own cut page).
            reason = "one second holds a cap's worth of records"
            second = _with(window.bounds, level, (lo, lo))
            if level + 1 < len(self.split_fields):
                self.stats.hot_spots += 1
                hot = _Spec(second, level + 1, deeper, look_at_cut_page=True)
            else:
                hot = _Spec(second, level, deeper, look_at_cut_page=True)
            specs = [hot, _Spec(_with(window.bounds, level, (lo + 1, hi)), level, window.depth)]
        else:
            reason = "sort order disagrees with the bounds: bisecting"
            specs = [
                _Spec(_with(window.bounds, level, piece), level, deeper)
                for piece in self._fallback_pieces(records, field, lo, hi)
            ]
        children = self._replace_with(state, specs)
        self.stats.windows_split += 1
        return [WindowSplit(window, children, total, reason)]

    def _fallback_pieces(
        self, records: Sequence[Mapping[str, Any]], field: str, lo: int | None, hi: int | None
    ) -> list[Bound]:
        if lo is not None and hi is not None:
            middle = (lo + hi) // 2
            return [(lo, middle), (middle + 1, hi)]
        values = sorted(v for v in (_split_value(r, field) for r in records) if v is not None)
        if not values:
            raise CopperError(
                f"records carry no {field!r} value, so the window cannot be split",
                context={"field": field},
            )
        middle = values[len(values) // 2]
        if lo is not None:
            middle = max(middle, lo)
        if hi is not None:
            middle = min(middle, hi - 1)
        return [(lo, middle), (middle + 1, hi)]

    def _hot_spot(self, state: _WindowState, total: int | None) -> list[PlannerEvent]:
        window = state.window
        if window.level + 1 < len(self.split_fields):
            self.stats.hot_spots += 1
            self.stats.windows_split += 1
            # Its cut page came back full: the next field's first look is its cut page.
            spec = _Spec(window.bounds, window.level + 1, window.depth + 1, look_at_cut_page=True)
            child = self._replace_with(state, [spec])
            return [WindowSplit(window, child, total, "hot spot: splitting on the next field")]
        # Nothing left to split on. The last page inside the cap tells whether the
        # window really overflows (an over-counting total can claim it does).
        state.phase = _Phase.EDGE
        state.first_total = total
        return []

    def _feed_edge_page(
        self, state: _WindowState, page: int, result: PageResult
    ) -> list[PlannerEvent]:
        room = self.cap - (page - 1) * self.page_size
        if len(result.records) < room:
            self._start_reading_short(state, page, len(result.records))
            return self._feed_read(state, page, result)
        window, total = state.window, state.first_total
        if total is not None and total <= self.cap:
            total = None  # a total equal to the cap may itself be capped: "at least"
        # Totals are exact only once one matched a window and none over-counted.
        exact = self._totals_matched and not self._totals_overcount
        if self.on_cap == "error":
            raise CapExceededError(
                window=window.describe(self.split_fields), count=total, cap=self.cap, exact=exact
            )
        unreachable = None if total is None else max(total - self.cap, 0)
        self.stats.cap_limited_windows += 1
        self.stats.unreachable_records += unreachable or 0
        self._start_reading(state, expected=None, from_total=False)
        state.cap_limited = True
        state.n_pages = self._reachable_pages()
        events: list[PlannerEvent] = [CapLimited(window, total, unreachable, exact)]
        events.extend(self._feed_read(state, page, result))
        return events

    def _replace_with(self, state: _WindowState, specs: list[_Spec]) -> tuple[Window, ...]:
        # Children first: a hot second's memory outlives the window being replaced.
        position = self._order.index(state.window.key)
        keys = self._add_windows(specs, seen_from=state.seen, position=position)
        self._remove(state)
        return tuple(self._states[key].window for key in keys)

    def _new_window(self, spec: _Spec) -> Window:
        key = self._next_key
        self._next_key += 1
        self.stats.windows_planned += 1
        return Window(key, spec.bounds, spec.level, spec.depth)

    def _add_windows(
        self, specs: Sequence[_Spec], *, seen_from: Seen | None, position: int | None = None
    ) -> list[int]:
        """Create windows; ids delivered before (``seen_from``) stay dropped in them."""
        keys = []
        for spec in specs:
            window = self._new_window(spec)
            if spec.level > 0:
                seen = self._groups.setdefault(window.pin, {})
                if seen_from is not None and seen_from is not seen:
                    for record_id, reader in seen_from.items():
                        seen.setdefault(record_id, reader)
            elif len(specs) == 1 and seen_from is not None:
                seen = seen_from  # the one heir of a window being replaced
            else:
                seen = dict(seen_from) if seen_from else {}
            self._states[window.key] = _WindowState(
                window, seen=seen, look_at_cut_page=spec.look_at_cut_page
            )
            keys.append(window.key)
        at = len(self._order) if position is None else position
        self._order[at:at] = keys
        return keys

    def _remove(self, state: _WindowState) -> None:
        self._order.remove(state.window.key)
        del self._states[state.window.key]
        pin = state.window.pin
        if pin and not any(self._states[key].window.pin == pin for key in self._order):
            del self._groups[pin]

    # -- checkpoints ------------------------------------------------------

    def _remember(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Mark ids delivered before a restore, in whatever window or hot second
        now holds them, so that none is delivered again."""
        fields = self.split_fields
        groups = [(pin, seen) for pin, seen in self._groups.items()]
        windows = [self._states[key] for key in self._order if self._states[key].window.level == 0]
        for record in records:
            record_id = record[self.id_field]
            for pin, seen in groups:
                if _inside(record, pin, fields):
                    seen.setdefault(record_id, _REMEMBERED)
                    break
            else:
                for state in windows:
                    if _inside(record, state.window.bounds, fields):
                        state.seen.setdefault(record_id, _REMEMBERED)
                        break

    def snapshot(self, *, include_seen: bool = True) -> dict[str, Any]:
        """The planner's state as JSON data (requests in flight are not in it:
        after :meth:`restore` they are asked for again).

        ``include_seen=False`` leaves out the ids delivered from windows still
        being read (up to a cap's worth each): a caller that kept the records
        themselves (an export file) hands them back to :meth:`restore`.
        """
        windows = []
        for key in self._order:
            state = self._states[key]
            entry: dict[str, Any] = {
                "key": key,
                "bounds": [list(bound) for bound in state.window.bounds],
                "level": state.window.level,
                "depth": state.window.depth,
                "pass": state.pass_number,
            }
            if state.phase is _Phase.READ and not state.relook:
                entry.update(
                    phase="read",
                    first_total=state.first_total,
                    expected=state.expected,
                    n_pages=state.n_pages,
                    page_limit=state.page_limit,
                    short_page=state.short_page,
                    short_count=state.short_count,
                    full_pages=state.full_pages,
                    delivered=sorted(state.delivered_pages),
                    count=state.count,
                    top_value=state.top_value,
                    drift=state.drift,
                    drift_reason=state.drift_reason,
                    size_from_total=state.size_from_total,
                    cap_limited=state.cap_limited,
                )
            else:
                # Nothing was delivered in this reading of a NEW or CUT window (nor
                # should a relooked one go on): look at it afresh.
                entry["phase"] = "new"
                entry["look_at_cut_page"] = state.look_at_cut_page
                if state.relook:
                    entry["pass"] = state.pass_number + 1
            level_zero = state.window.level == 0
            entry["seen"] = sorted(state.seen) if include_seen and level_zero else None
            entry["unique"] = state.unique
            windows.append(entry)
        groups = [
            {
                "pin": [list(bound) for bound in pin],
                "seen": sorted(seen) if include_seen else None,
            }
            for pin, seen in self._groups.items()
        ]
        return {
            "version": _SNAPSHOT_VERSION,
            "cap": self.cap,
            "page_size": self.page_size,
            "split_fields": list(self.split_fields),
            "root": [list(bound) for bound in self.root.bounds],
            "on_cap": self.on_cap,
            "totals_absent": self._totals_absent,
            "totals_uncapped": self._totals_uncapped,
            "totals_matched": self._totals_matched,
            "totals_overcount": self._totals_overcount,
            "next_key": self._next_key,
            "windows": windows,
            "groups": groups,
            "stats": attrs.asdict(self.stats),
        }

    @classmethod
    def restore(
        cls,
        snapshot: Mapping[str, Any],
        *,
        lookahead: int = 2,
        max_passes: int = 3,
        id_field: str = "id",
        delivered: Iterable[Mapping[str, Any]] = (),
    ) -> WindowPlanner:
        """Rebuild a planner from :meth:`snapshot` data.

        ``delivered`` are records delivered before the snapshot, when it was
        taken without ``include_seen``: each one's id is remembered by the
        window (or hot second) whose bounds hold it, so it is not delivered
        again.
        """
        try:
            if snapshot["version"] != _SNAPSHOT_VERSION:
                raise CheckpointError(f"unknown planner snapshot version {snapshot['version']!r}")
            planner = cls(
                cap=int(snapshot["cap"]),
                page_size=int(snapshot["page_size"]),
                split_fields=[str(f) for f in snapshot["split_fields"]],
                bounds=[_bound(b) for b in snapshot["root"]],
                on_cap=snapshot["on_cap"],
                lookahead=lookahead,
                max_passes=max_passes,
                id_field=id_field,
            )
            planner._states.clear()
            planner._order.clear()
            planner._groups.clear()
            planner._totals_absent = bool(snapshot["totals_absent"])
            planner._totals_uncapped = bool(snapshot["totals_uncapped"])
            planner._totals_matched = bool(snapshot["totals_matched"])
            planner._totals_overcount = bool(snapshot["totals_overcount"])
            planner._next_key = int(snapshot["next_key"])
            planner.stats = PlannerStats(**snapshot["stats"])
            for group in snapshot["groups"]:
                pin = tuple(_bound(b) for b in group["pin"])
                planner._groups[pin] = dict.fromkeys(map(int, group["seen"] or ()), _REMEMBERED)
            for entry in snapshot["windows"]:
                window = Window(
                    key=int(entry["key"]),
                    bounds=tuple(_bound(b) for b in entry["bounds"]),
                    level=int(entry["level"]),
                    depth=int(entry["depth"]),
                )
                if window.level > 0:
                    seen = planner._groups.setdefault(window.pin, {})
                else:
                    seen = dict.fromkeys(map(int, entry["seen"] or ()), _REMEMBERED)
                state = _WindowState(window, seen=seen, pass_number=int(entry["pass"]))
                state.unique = int(entry["unique"])
                state.look_at_cut_page = bool(entry.get("look_at_cut_page", False))
                if entry["phase"] == "read":
                    state.phase = _Phase.READ
                    state.first_total = entry["first_total"]
                    state.expected = entry["expected"]
                    state.n_pages = entry["n_pages"]
                    state.page_limit = entry["page_limit"]
                    state.short_page = entry["short_page"]
                    state.short_count = int(entry["short_count"])
                    state.full_pages = int(entry["full_pages"])
                    state.delivered_pages = {int(p) for p in entry["delivered"]}
                    state.count = int(entry["count"])
                    state.top_value = entry["top_value"]
                    state.drift = bool(entry["drift"])
                    state.drift_reason = str(entry["drift_reason"])
                    state.size_from_total = bool(entry["size_from_total"])
                    state.cap_limited = bool(entry["cap_limited"])
                planner._states[window.key] = state
                planner._order.append(window.key)
            planner._remember(delivered)
            # Pages that were in flight may have been all a window still waited for.
            for key in list(planner._order):
                state = planner._states[key]
                if state.phase is _Phase.READ and planner._read_complete(state):
                    planner._pending_events += planner._finish(state)
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"planner snapshot is damaged: {error!r}") from error
        return planner


def _with(bounds: tuple[Bound, ...], level: int, piece: Bound) -> tuple[Bound, ...]:
    """``bounds`` with the bound on ``level`` replaced."""
    return (*bounds[:level], piece, *bounds[level + 1 :])


def _inside(record: Mapping[str, Any], bounds: Sequence[Bound], fields: Sequence[str]) -> bool:
    """Whether ``record`` lies within ``bounds`` on the first ``len(bounds)`` fields."""
    for field, (lo, hi) in zip(fields, bounds, strict=False):
        value = _split_value(record, field)
        if value is None or (lo is not None and value < lo) or (hi is not None and value > hi):
            return False
    return True


def _bound(value: Any) -> Bound:
    lo, hi = value
    return (None if lo is None else int(lo), None if hi is None else int(hi))


def _split_value(record: Mapping[str, Any], field: str) -> int | None:
    value = record.get(field)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value
