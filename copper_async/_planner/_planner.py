"""The window planner: which page to fetch next, so every record arrives once.

See the package's docstring for how a window is planned; the steps of each
phase are in ``_steps.py``, the table of phases in ``_state.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import attrs

from copper_async._planner import _snapshot
from copper_async._planner._events import (
    PageRequest,
    PageResult,
    PlannerEvent,
    PlannerStats,
    TotalsDistrusted,
)
from copper_async._planner._memory import Memory
from copper_async._planner._reach import Reach
from copper_async._planner._state import (
    AtEdge,
    Cutting,
    Happening,
    Looking,
    Reading,
    Relooking,
    Stage,
    WindowState,
)
from copper_async._planner._steps import OnCap, PhaseSteps
from copper_async._planner._totals import Totals
from copper_async._planner._windows import Bound, Piece
from copper_async.exceptions import CheckpointError

__all__ = ["Restored", "WindowPlanner"]

_H = Happening


class Restored(NamedTuple):
    """A planner rebuilt from a snapshot, and what followed from it at once
    (windows whose last pages were in before the snapshot finish)."""

    planner: WindowPlanner
    events: list[PlannerEvent]


def _first_look(stage: Stage) -> Looking:
    """A window's first look again (a held page dropped: its records are not kept)."""
    if isinstance(stage, Looking):
        return Looking(look_at_cut_page=stage.look_at_cut_page)
    return Looking()


class WindowPlanner(PhaseSteps):
    """Plans the requests that read one search completely, exactly once.

    ``split_fields`` are record keys of Unix-second fields that the API can
    both filter and sort on and that are never null (``date_created`` first:
    it never changes, so records cannot move between windows).
    ``bounds`` are the starting inclusive bounds for each of them (the user's
    own filter bounds, or ``(None, None)``). The planner counts into
    ``stats`` when given one.
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
        stats: PlannerStats | None = None,
    ) -> None:
        # Only what the planner's own reasoning needs; option ranges are the caller's.
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
        self.stats = stats if stats is not None else PlannerStats()
        # The last page whose records all lie within the cap.
        self._cut_page = cap // page_size
        self._reachable_pages = -(-cap // page_size)
        self._totals = Totals()
        self._reach = Reach()
        self._next_key = 0
        self._states: dict[int, WindowState] = {}
        self._order: list[int] = []  # active windows, in range order
        self._memory = Memory()
        self._add_windows([Piece(start, 0, 0)], inherit_from=None)
        self.root = self._states[self._order[0]].window

    def __repr__(self) -> str:
        return (
            f"<WindowPlanner cap={self.cap} page_size={self.page_size} "
            f"windows={len(self._order)} in_flight={self.in_flight}>"
        )

    # -- asking -----------------------------------------------------------

    @property
    def finished(self) -> bool:
        """True once every window is read (or reported)."""
        return not self._order

    @property
    def in_flight(self) -> int:
        """Requests handed out and not yet fed back."""
        return sum(len(state.issued) for state in self._states.values())

    def next_request(
        self, want: int | None = None, *, in_flight: bool = False
    ) -> PageRequest | None:
        """The next page worth fetching now, or None until an answer comes in.

        ``want``: the records the caller will still take beyond those its
        requests in flight may bring. Up to a page, a window not yet looked
        at is then *peeked* at, once, instead of its first look: page 1 of
        ``want`` records, which offset 0 makes a prefix of its page 1 at any
        size. While the caller has requests ``in_flight`` (they may bring
        fewer records than it counted on), such a window waits for them.
        """
        for key in self._order:
            state = self._states[key]
            page = self._next_page(state)
            if page is not None:
                peek = self._may_peek(state, want)
                if peek and in_flight:
                    return None
                if peek:
                    # Whatever the first look would be (page 2 after a held page
                    # excepted): a prefix of page 1 may be all the caller takes.
                    page = 1
                    state.peeked = True
                state.issued.add(page)
                return PageRequest(
                    window=state.window,
                    page_number=page,
                    page_size=want if peek and want is not None else self.page_size,
                    sort_field=self.split_fields[state.window.level],
                    pass_number=state.pass_number,
                    peek=peek,
                )
        return None

    def _may_peek(self, state: WindowState, want: int | None) -> bool:
        stage = state.stage
        return (
            want is not None
            and 0 < want <= self.page_size
            and isinstance(stage, Looking)
            and stage.held is None
            and not state.peeked
        )

    def _next_page(self, state: WindowState) -> int | None:
        stage = state.stage
        if isinstance(stage, Reading):
            return self._next_read_page(state, stage)
        if state.issued or isinstance(stage, Relooking):
            return None
        if isinstance(stage, Looking):
            if self._totals.absent or stage.look_at_cut_page:
                return self._cut_page
            return 1 if stage.held is None else min(2, self._cut_page)
        if isinstance(stage, Cutting):
            return self._cut_page
        return self._reachable_pages  # AtEdge: the last page inside the cap

    def _next_read_page(self, state: WindowState, reading: Reading) -> int | None:
        # Every page up to the known end, or a few past the last full one.
        last = reading.last_needed_page()
        limit = last if last is not None else reading.full_pages + self.lookahead
        limit = min(limit, reading.size.page_limit or self._reachable_pages)
        for page in range(1, limit + 1):
            if page not in reading.delivered_pages and page not in state.issued:
                return page
        return None

    # -- feeding ----------------------------------------------------------

    def feed(self, request: PageRequest, result: PageResult) -> list[PlannerEvent]:
        """Take the answer to ``request``; return what follows from it.

        Raises :class:`CapExceededError` (``on_cap="error"``) when a window
        cannot be made to fit, and :class:`ValueError` for a request this
        planner did not hand out.
        """
        state = self._states.get(request.window.key)
        page = request.page_number
        if state is None or request.pass_number != state.pass_number or page not in state.issued:
            raise ValueError(f"not an outstanding request of this planner: {request!r}")
        state.issued.discard(page)
        if request.peek and len(result.records) >= request.page_size:
            return self._feed_peek(state, result)
        # A short peek holds the whole window, as a short page 1 of any size would.
        events: list[PlannerEvent] = []
        if result.refused:
            self.stats.pages_refused += 1
        claimed = result.total
        result, proved_wrong = self._totals.usable(page, self.page_size, result)
        self._reach.note(page, self.page_size, len(result.records), result.total)
        if proved_wrong and claimed is not None:
            through = (page - 1) * self.page_size + len(result.records)
            events.append(TotalsDistrusted(state.window, page, claimed, through))
            self._distrust_totals()
        stage = state.stage
        if isinstance(stage, Looking):
            events += self._feed_first_look(state, stage, page, result)
        elif isinstance(stage, Cutting):
            events += self._feed_cut_page(state, result, stage.first_total, stage.held)
        elif isinstance(stage, AtEdge):
            events += self._feed_edge_page(state, stage, page, result)
        elif isinstance(stage, Reading):
            events += self._feed_read(state, stage, page, result)
        else:
            state.move(_H.PAGE, stage)
            events += self._deliver(state, stage.reading, page, result.records, result.total)
        self._restart_relooks()
        return events

    # -- checkpoints ------------------------------------------------------

    def snapshot(self, *, include_seen: bool = True, restart_open: bool = False) -> dict[str, Any]:
        """The planner's state as JSON data (requests in flight are not in it:
        after :meth:`restore` they are asked for again).

        ``include_seen=False`` leaves out the ids delivered from windows still
        being read (up to a cap's worth each): a caller that kept the records
        themselves (an export file) hands them back to :meth:`restore`.
        ``restart_open=True`` (implies no ids) is for a caller that kept
        neither: every window not finished starts over from its first look,
        so after a restore each record is delivered at least once (those of
        windows begun before the snapshot may come twice), and finished windows
        are not read again.
        """
        settings = _snapshot.Settings(
            self.cap, self.page_size, self.split_fields, self.root.bounds, self.on_cap
        )
        windows = self.windows
        states = [self._states[window.key] for window in windows]
        if restart_open:
            include_seen = False
            states = [
                WindowState(
                    state.window,
                    _first_look(state.stage),
                    state.pass_number,
                    state.unique,
                    stopped_at=state.stopped_at,
                )
                for state in states
            ]
        return _snapshot.dump(
            _snapshot.Snapshot(
                version=_snapshot.VERSION,
                settings=settings,
                totals=self._totals,
                next_key=self._next_key,
                windows=states,
                seen=self._memory.save(windows) if include_seen else None,
                stats=self.stats,
                reach=self._reach,
            )
        )

    @classmethod
    def restore(
        cls,
        snapshot: Mapping[str, Any],
        *,
        lookahead: int = 2,
        max_passes: int = 3,
        id_field: str = "id",
        delivered: Iterable[Mapping[str, Any]] = (),
        stats: PlannerStats | None = None,
    ) -> Restored:
        """Rebuild a planner from :meth:`snapshot` data.

        ``delivered`` are records delivered before the snapshot, when it was
        taken without ``include_seen``: each one's id is remembered by the
        window (or hot second) whose bounds hold it, so it is not delivered
        again. ``stats`` (when given) gets the snapshot's counters and is
        counted into from then on. The events are what follows at once:
        windows whose last pages were all in before the snapshot finish.
        """
        saved = _snapshot.load(snapshot)
        settings = saved.settings
        try:
            planner = cls(
                cap=settings.cap,
                page_size=settings.page_size,
                split_fields=settings.split_fields,
                bounds=settings.root,
                on_cap=settings.on_cap,
                lookahead=lookahead,
                max_passes=max_passes,
                id_field=id_field,
                stats=stats,
            )
            planner._resume(saved)
        except ValueError as error:
            raise CheckpointError(f"planner snapshot is damaged: {error}") from error
        planner._memory.remember(delivered, planner.windows, planner.split_fields, id_field)
        events: list[PlannerEvent] = []
        for key in list(planner._order):
            state = planner._states[key]
            if isinstance(state.stage, Reading):
                # Its edge pages' ids are its own reading's again, as before the snapshot.
                seen = planner._memory.of(state.window)
                reader = (key, state.pass_number)
                for edge in state.stage.edge_pages:
                    seen.update(dict.fromkeys(edge.ids, reader))
            # Pages that were in flight may have been all a window still waited for.
            if isinstance(state.stage, Relooking):
                state.look_again(_H.PAGES_IN)
            elif isinstance(state.stage, Reading) and planner._read_complete(state, state.stage):
                events += planner._finish(state, state.stage)
        return Restored(planner, events)

    def _resume(self, saved: _snapshot.Snapshot) -> None:
        """Take the windows, memory, totals and counters of ``saved``."""
        fields = len(self.split_fields)
        keys = [state.window.key for state in saved.windows]
        if len(set(keys)) != len(keys) or any(not 0 <= key < saved.next_key for key in keys):
            raise ValueError("window keys are repeated or out of range")
        for state in saved.windows:
            window = state.window
            if len(window.bounds) != fields or not 0 <= window.level < fields:
                raise ValueError(f"window {window.key} does not match the split fields")
        self._states = {state.window.key: state for state in saved.windows}
        self._order = keys
        self._memory.load(saved.seen, self.windows)
        self._totals = saved.totals
        self._reach = saved.reach
        self._next_key = saved.next_key
        for field in attrs.fields(PlannerStats):
            setattr(self.stats, field.name, getattr(saved.stats, field.name))
