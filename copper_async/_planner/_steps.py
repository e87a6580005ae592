"""What each phase of a window does with the page it gets.

:class:`PhaseSteps` holds the planner's state and its steps; every change of
a window's phase goes through the table in ``_state.py``.
:class:`~copper_async._planner._planner.WindowPlanner` adds the public side:
asking, feeding and checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from copper_async._planner._events import (
    CapLimited,
    CapObserved,
    CountMismatch,
    Deliver,
    PageResult,
    PlannerEvent,
    PlannerStats,
    WindowDone,
    WindowSplit,
)
from copper_async._planner._memory import Memory, Reader, Seen, Sifted, sift
from copper_async._planner._reach import Reach
from copper_async._planner._state import (
    AtEdge,
    Basis,
    Cutting,
    Happening,
    Looking,
    PageIds,
    Reading,
    Relooking,
    Size,
    WindowState,
)
from copper_async._planner._totals import Totals, Verdict
from copper_async._planner._windows import (
    Piece,
    Window,
    inside,
    plan_cut,
    plan_read_on,
    split_value,
)
from copper_async.exceptions import CapExceededError

__all__ = ["READ_ON_REASON", "PhaseSteps"]

OnCap = Literal["error", "warn"]
READ_ON_REASON = "pages stopped at a page boundary short of the count: reading on"
_H = Happening


class PhaseSteps:
    cap: int
    page_size: int
    split_fields: tuple[str, ...]
    on_cap: OnCap
    lookahead: int
    max_passes: int
    id_field: str
    stats: PlannerStats
    # The last page whose records all lie within the cap, and the last with any.
    _cut_page: int
    _reachable_pages: int
    _totals: Totals
    _reach: Reach
    _next_key: int
    _states: dict[int, WindowState]
    _order: list[int]  # active windows, in range order
    _memory: Memory

    @property
    def windows(self) -> tuple[Window, ...]:
        """The windows not yet done, in range order."""
        return tuple(self._states[key].window for key in self._order)

    # -- feeding ----------------------------------------------------------

    def _distrust_totals(self) -> None:
        """A page proved totals wrong: forget every total, and look afresh at
        windows being read on one."""
        self.stats.totals_distrusted = True
        for key in self._order:
            state = self._states[key]
            stage = state.stage
            if isinstance(stage, Cutting | AtEdge | Reading):
                stage.first_total = None
            if isinstance(stage, Reading) and stage.size.basis is Basis.TOTAL:
                state.move(_H.TOTAL_WRONG, Relooking(stage))

    def _restart_relooks(self) -> None:
        """Windows whose size came from a wrong total start over, once their
        pages in flight are in; ids they delivered stay dropped."""
        if not self._totals.distrusted:
            return
        for key in self._order:
            state = self._states[key]
            if isinstance(state.stage, Relooking) and not state.issued:
                state.look_again(_H.PAGES_IN)

    def _feed_first_look(
        self, state: WindowState, looking: Looking, page: int, result: PageResult
    ) -> list[PlannerEvent]:
        records, total, held = result.records, result.total, looking.held
        self._totals.note_first_look(result)
        if page == self._cut_page and not self._totals.fits(total, self.cap):
            return self._feed_cut_page(state, result, None, held)
        if self._totals.fits(total, self.cap):
            reading = self._read(state, _H.FITS, self._exact(total, Basis.TOTAL), total)
        elif len(records) < self.page_size:
            # A short first look proves the window ends inside it, whatever a total said.
            reading = self._read_short(state, page, len(records), total)
        elif held is None:
            # Full page 1 that may not fit: page k decides; keep page 1 for then.
            state.move(_H.FULL_FIRST_PAGE, Cutting(total, list(records)))
            return []
        else:
            # Full page 2 that may not fit: page k decides, as after a full page 1.
            self.stats.pages_discarded += 1
            state.move(_H.FULL_FIRST_PAGE, Cutting(total, held))
            return []
        events: list[PlannerEvent] = []
        if held is not None:
            events += self._deliver(state, reading, 1, held, reading.first_total)
        return events + self._feed_read(state, reading, page, result)

    def _feed_cut_page(
        self,
        state: WindowState,
        result: PageResult,
        first_total: int | None,
        held: list[Mapping[str, Any]] | None,
    ) -> list[PlannerEvent]:
        records, total = result.records, result.total
        if self._totals.fits(total, self.cap):
            reading = self._read(state, _H.FITS, self._exact(total, Basis.TOTAL), total)
        elif len(records) < self.page_size:
            # Fewer than k pages, whatever an (over-counting) total said.
            reading = self._read_short(state, self._cut_page, len(records), total)
        else:
            return self._cut(state, records, total if total is not None else first_total, held)
        events: list[PlannerEvent] = []
        if held is not None:
            # Its total is the first look's; totals once distrusted stay None.
            events += self._deliver(state, reading, 1, held, first_total)
        events += self._feed_read(state, reading, self._cut_page, result)
        return events

    def _feed_edge_page(
        self, state: WindowState, edge: AtEdge, page: int, result: PageResult
    ) -> list[PlannerEvent]:
        room = self.cap - (page - 1) * self.page_size
        if len(result.records) < room:
            reading = self._read_short(state, page, len(result.records), edge.first_total)
            return self._feed_read(state, reading, page, result)
        window, total = state.window, edge.first_total
        if total is not None and total <= self.cap:
            total = None  # a total equal to the cap may itself be capped: "at least"
        # Totals are exact only once one matched a window and none over-counted.
        exact = self._totals.exact
        if self.on_cap == "error":
            raise CapExceededError(
                window=window.describe(self.split_fields), count=total, cap=self.cap, exact=exact
            )
        unreachable = None if total is None else max(total - self.cap, 0)
        self.stats.cap_limited_windows += 1
        self.stats.unreachable_records += unreachable or 0
        size = Size(Basis.CAP, n_pages=self._reachable_pages)
        reading = self._read(state, _H.OVERFLOW, size, edge.first_total)
        events: list[PlannerEvent] = [CapLimited(window, total, unreachable, exact)]
        events += self._feed_read(state, reading, page, result)
        return events

    def _exact(self, expected: int | None, basis: Basis) -> Size:
        assert expected is not None
        return Size.exact(expected, self.page_size, basis)

    def _read(
        self, state: WindowState, happening: Happening, size: Size, first_total: int | None
    ) -> Reading:
        reading = Reading(size, first_total)
        state.move(happening, reading)
        return reading

    def _read_short(
        self, state: WindowState, page: int, count: int, first_total: int | None
    ) -> Reading:
        """A short ``page`` (no usable total) bounds the window's size."""
        if count or page == 1:
            size = self._exact((page - 1) * self.page_size + count, Basis.PAGES)
        else:
            # Empty: the window ends somewhere before ``page``; read until a short page.
            size = Size(Basis.UNKNOWN, page_limit=page - 1)
        return self._read(state, _H.SHORT_PAGE, size, first_total)

    def _feed_read(
        self, state: WindowState, reading: Reading, page: int, result: PageResult
    ) -> list[PlannerEvent]:
        state.move(_H.PAGE, reading)
        events = self._deliver(state, reading, page, result.records, result.total)
        if self._read_complete(state, reading):
            events += self._finish(state, reading)
        return events

    def _deliver(
        self,
        state: WindowState,
        reading: Reading,
        page: int,
        records: Sequence[Mapping[str, Any]],
        total: int | None,
    ) -> list[PlannerEvent]:
        reading.delivered_pages.add(page)
        if len(records) >= self.page_size:
            reading.full_pages = max(reading.full_pages, page)
        elif reading.short_page is None or page < reading.short_page:
            reading.short_page = page
            reading.short_count = len(records)
        if total is not None and reading.first_total is not None and total != reading.first_total:
            reading.note_moved("the window's total changed while it was read")
        window = state.window
        reader = (window.key, state.pass_number)
        sifted = self._sift(window, reader, page, records)
        reading.keep_edge(self._page_ids(page, records, self.split_fields[window.level]))
        reading.count += len(records) - sifted.shifted
        if records:
            value = split_value(records[-1], self.split_fields[window.level])
            if value is not None and (reading.top_value is None or value > reading.top_value):
                reading.top_value = value
        if sifted.shifted:
            self.stats.shifted_reads += sifted.shifted
            reading.note_moved("records came twice in one reading: offsets moved")
        return self._release(state, page, records, sifted)

    def _feed_peek(self, state: WindowState, result: PageResult) -> list[PlannerEvent]:
        """A full peek: its fresh records are delivered, yet it tells nothing
        of the window's size, so the window's first look is still to come;
        the ids delivered now are then dropped, like those of an earlier reading."""
        # A reader of its own, before any pass: ids it meets again are asked again.
        reader = (state.window.key, -1)
        sifted = self._sift(state.window, reader, 1, result.records)
        return self._release(state, 1, result.records, sifted)

    def _sift(
        self, window: Window, reader: Reader, page: int, records: Sequence[Mapping[str, Any]]
    ) -> Sifted:
        memory = self._memory
        return sift(
            records,
            memory.of(window),
            reader,
            self.id_field,
            page,
            lambda earlier: memory.asked_before(earlier, window),
        )

    def _release(
        self,
        state: WindowState,
        page: int,
        records: Sequence[Mapping[str, Any]],
        sifted: Sifted,
    ) -> list[PlannerEvent]:
        """Deliver a sifted page's fresh records. Every page that delivers,
        peeks included, counts here, so page accounting has one place."""
        window, fresh = state.window, sifted.fresh
        duplicates, overlaps = sifted.duplicates, sifted.overlaps
        state.unique += len(fresh)
        self.stats.duplicates_dropped += duplicates
        self.stats.overlaps_dropped += overlaps
        self.stats.records_delivered += len(fresh)
        if not fresh and not duplicates and not overlaps:
            return []
        events: list[PlannerEvent] = []
        # Fresh records past where the window this one continues stopped prove
        # the API's cap, whichever request brought them.
        if fresh and state.stopped_at is not None and self._reach.learn(state.stopped_at):
            events.append(CapObserved(window, state.stopped_at, self.cap))
        return [*events, Deliver(window, page, fresh, duplicates, overlaps)]

    def _page_ids(self, page: int, records: Sequence[Mapping[str, Any]], field: str) -> PageIds:
        ids = tuple(record[self.id_field] for record in records)
        if not records:
            return PageIds(page, ids)
        low, high = split_value(records[0], field), split_value(records[-1], field)
        if low is None or high is None:
            return PageIds(page, ids)
        ends = tuple(
            record[self.id_field] for record in records if split_value(record, field) in (low, high)
        )
        return PageIds(page, ids, low, high, ends)

    def _read_complete(self, state: WindowState, reading: Reading) -> bool:
        if state.issued:
            return False
        last = reading.last_needed_page()
        if last is None:
            # Reading without a size: done once every allowed page came back full.
            limit = reading.size.page_limit or self._reachable_pages
            if reading.full_pages < limit:
                return False
            last = limit
        return all(page in reading.delivered_pages for page in range(1, last + 1))

    # -- finishing --------------------------------------------------------

    def _finish(self, state: WindowState, reading: Reading) -> list[PlannerEvent]:
        events: list[PlannerEvent] = []
        window, size = state.window, reading.size
        # Pages ending before an exactly known size means records moved away.
        if (
            size.basis is not Basis.TOTAL
            and size.n_pages is not None
            and reading.short_page is not None
            and reading.short_page < size.n_pages
        ):
            reading.note_moved("pages ended before the window's known size")
        expected, count = size.expected, reading.count
        if reading.moved is not None:
            reread = state.pass_number + 1 < self.max_passes
            shown = expected if expected is not None else count
            events.append(CountMismatch(window, shown, count, reread, reading.moved))
            if reread:
                # Not a mismatch yet: the next reading may see every record.
                self.stats.rereads += 1
                state.look_again(_H.MOVED)
                return events
            self.stats.count_mismatches += 1
        elif self._may_have_stopped_at_cap(reading) or self._may_be_a_capped_total(reading):
            # A short page, or a total met on a full page, no query was ever
            # served past may be the API's cap.
            read_on = self._read_on(state, reading)
            if read_on is not None:
                return events + read_on
        elif (
            size.basis is not Basis.CAP
            and self._ended_on_page_boundary(reading)
            and (expected is None or count < expected)
            # An API that served some query further does not cap this one here.
            and not self._reach.served_past(count)
        ):
            read_on = self._read_on(state, reading)
            if read_on is not None:
                return events + read_on
            self.stats.count_mismatches += 1
            reason = (
                "pages stopped at a page boundary short of the count, in one second: "
                "the API may hold more records there than it serves"
            )
            shown = expected if expected is not None else count
            events.append(CountMismatch(window, shown, count, False, reason))
            expected = None  # reported: not an over-count
        if reading.moved is None and expected is not None:
            verdict = self._totals.judge(
                from_total=size.basis is Basis.TOTAL, expected=expected, count=count
            )
            if verdict is Verdict.OVERCOUNT:
                self.stats.overcounted_windows += 1
            elif verdict is Verdict.MISMATCH:
                self.stats.count_mismatches += 1
                events.append(CountMismatch(window, expected, count, False))
        self.stats.windows_done += 1
        events.append(WindowDone(window, state.unique, reading.first_total))
        state.leave(_H.READ_IN_FULL)
        self._remove(state)
        return events

    def _may_have_stopped_at_cap(self, reading: Reading) -> bool:
        """Pages that ended short where the API may cap results lower than
        ``cap``, and no total matched to show the window ends there."""
        size, short_page = reading.size, reading.short_page
        if size.basis is Basis.CAP or short_page is None or not reading.short_count:
            return False
        if size.basis is Basis.TOTAL and reading.count >= (size.expected or 0):
            return False
        through = self._stopped_at(reading)
        return through is not None and self._reach.may_stop_at(through, self.page_size, self.cap)

    def _may_be_a_capped_total(self, reading: Reading) -> bool:
        """Full pages that brought just what the total said: an API capping
        both its results and its total at a whole number of pages below
        ``cap`` answers exactly so."""
        size, count = reading.size, reading.count
        if size.basis is not Basis.TOTAL or reading.short_page is not None:
            return False
        return count == size.expected and self._reach.may_cap_total_at(
            count, self.page_size, self.cap
        )

    @staticmethod
    def _ended_on_page_boundary(reading: Reading) -> bool:
        """An empty page right after full ones: an API capping lower than
        ``cap`` stops exactly so (a window whose size is a multiple of the page
        size too, when its total over-counts or is absent)."""
        short_page = reading.short_page
        return short_page is not None and short_page > 1 and reading.short_count == 0

    def _read_on(self, state: WindowState, reading: Reading) -> list[PlannerEvent] | None:
        """Replace a window that stopped at a page boundary by ``[d, hi]``,
        ``d`` the last value read, as ``[lo, d - 1]`` was read in full; or
        None when the window cannot be narrowed."""
        window, first_total = state.window, reading.first_total
        plan = plan_read_on(window, reading.top_value, len(self.split_fields))
        if plan is None:
            return None
        done = self._new_window(plan.done) if plan.done is not None else None
        stopped_at = self._stopped_at(reading)
        rest = [attrs.evolve(piece, stopped_at=stopped_at) for piece in plan.rest]
        children = self._replace_with(state, rest, _H.STOPPED_SHORT)
        self.stats.hot_spots += plan.hot_spots
        self.stats.windows_split += 1
        self.stats.windows_continued += 1
        if done is None:
            return [WindowSplit(window, children, first_total, READ_ON_REASON)]
        self.stats.windows_done += 1
        return [
            WindowSplit(window, (done, *children), first_total, READ_ON_REASON),
            WindowDone(done, state.unique, first_total),
        ]

    def _stopped_at(self, reading: Reading) -> int | None:
        """How many records in a reading's pages stopped (None: no short page)."""
        if reading.short_page is None:
            return reading.full_pages * self.page_size or None
        return (reading.short_page - 1) * self.page_size + reading.short_count

    # -- splitting --------------------------------------------------------

    def _cut(
        self,
        state: WindowState,
        records: Sequence[Mapping[str, Any]],
        total: int | None,
        held: list[Mapping[str, Any]] | None,
    ) -> list[PlannerEvent]:
        """Split ``state``'s window at its full cut page ``records``; ``held``
        is its page 1, when read."""
        window = state.window
        cut = plan_cut(
            window,
            records,
            total,
            fields=self.split_fields,
            cap=self.cap,
            first_at_most=self._cut_page * self.page_size - 1,
        )
        pieces = self._hand_down(window, cut.pieces, held)
        if held is not None and (not pieces or pieces[0].held is None):
            self.stats.pages_discarded += 1
        if not pieces:
            return self._hot_spot(state, total)
        self.stats.hot_spots += cut.hot_spots
        children = self._replace_with(state, pieces, _H.FULL_CUT_PAGE)
        self.stats.windows_split += 1
        return [WindowSplit(window, children, total, cut.reason)]

    def _hand_down(
        self, window: Window, pieces: Sequence[Piece], held: list[Mapping[str, Any]] | None
    ) -> Sequence[Piece]:
        """``pieces`` with ``window``'s page 1 handed to the first when that is
        its page 1 too: a full page whose records all lie in it, sorted on the
        same field (the first records of ``window`` that lie in it lead it).
        If the API orders the piece otherwise, its page 2 repeats an id of the
        held page and the piece is read again, as for any offset shift."""
        if held is None or not pieces:
            return pieces
        first, level = pieces[0], window.level
        fields = self.split_fields[: level + 1]
        if (
            first.level != level
            or first.look_at_cut_page
            or len(held) < self.page_size
            or not all(inside(record, first.bounds[: level + 1], fields) for record in held)
        ):
            return pieces
        return (attrs.evolve(first, held=held), *pieces[1:])

    def _hot_spot(self, state: WindowState, total: int | None) -> list[PlannerEvent]:
        window = state.window
        if window.level + 1 < len(self.split_fields):
            self.stats.hot_spots += 1
            self.stats.windows_split += 1
            # Its cut page came back full: the next field's first look is its cut page.
            piece = Piece(window.bounds, window.level + 1, window.depth + 1, look_at_cut_page=True)
            children = self._replace_with(state, [piece], _H.FULL_CUT_PAGE)
            return [WindowSplit(window, children, total, "hot spot: splitting on the next field")]
        # Nothing left to split on. The last page inside the cap tells whether the
        # window really overflows (an over-counting total can claim it does).
        state.move(_H.NO_FIELD_LEFT, AtEdge(total))
        return []

    def _replace_with(
        self, state: WindowState, pieces: Sequence[Piece], happening: Happening
    ) -> tuple[Window, ...]:
        state.leave(happening)
        # Children first: a hot second's memory outlives the window being replaced.
        position = self._order.index(state.window.key)
        inherit = self._memory.of(state.window)
        keys = self._add_windows(pieces, inherit_from=inherit, position=position)
        self._remove(state)
        return tuple(self._states[key].window for key in keys)

    def _new_window(self, piece: Piece) -> Window:
        key = self._next_key
        self._next_key += 1
        self.stats.windows_planned += 1
        return Window(key, piece.bounds, piece.level, piece.depth)

    def _add_windows(
        self,
        pieces: Sequence[Piece],
        *,
        inherit_from: Seen | None,
        position: int | None = None,
    ) -> list[int]:
        windows = [self._new_window(piece) for piece in pieces]
        self._memory.add(windows, inherit_from)
        for window, piece in zip(windows, pieces, strict=True):
            stage = Looking(look_at_cut_page=piece.look_at_cut_page, held=piece.held)
            self._states[window.key] = WindowState(window, stage, stopped_at=piece.stopped_at)
        keys = [window.key for window in windows]
        at = len(self._order) if position is None else position
        self._order[at:at] = keys
        return keys

    def _remove(self, state: WindowState) -> None:
        self._order.remove(state.window.key)
        del self._states[state.window.key]
        self._memory.drop(state.window, (other.window for other in self._states.values()))
