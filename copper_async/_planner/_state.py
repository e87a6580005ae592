"""A window's phases, and every way it moves between them, as one table.

In the style of h11's ``_state.py``: :data:`TRANSITIONS` lists every legal
move as ``(phase, what happened) -> next phase``, and a window changes phase
only through :meth:`WindowState.move`, which refuses a move the table lacks.
Each phase has its own state class holding only what that phase needs, so an
illegal combination (a held page while reading, a size without a source)
cannot be built.

The phases of one window:

* ``LOOK``: nothing known; a first look (page 1, or the cut page ``k`` once
  the API sends no total or counts prove the window overflows) is due. A
  window cut from another may hold its page 1 already (page 1 of the window
  it replaces): its first look is then page 2.
* ``CUT``: page 1 came back full with a total that may not fit; page 1 is
  held while page ``k`` decides between reading and cutting.
* ``EDGE``: one second on the last split field, which cannot be split: the
  last page inside the cap decides whether it overflows.
* ``READ``: the window fits (or, with ``on_cap="warn"``, is read up to the
  cap); its pages are being read.
* ``RELOOK``: it was being read on a total a page then proved wrong; its
  pages in flight still deliver, then it looks afresh.
* ``DONE`` and ``REPLACED`` end a window: read in full, or split into windows
  that take its place.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from copper_async._planner._windows import Window

__all__ = [
    "TRANSITIONS",
    "AtEdge",
    "Basis",
    "Cutting",
    "Happening",
    "Looking",
    "PageIds",
    "Phase",
    "Reading",
    "Relooking",
    "Size",
    "Stage",
    "WindowState",
    "next_phase",
]


class Phase(enum.Enum):
    LOOK = "look"
    CUT = "cut"
    EDGE = "edge"
    READ = "read"
    RELOOK = "relook"
    DONE = "done"
    REPLACED = "replaced"


class Happening(enum.Enum):
    """What a page (or the planner) showed about a window."""

    FITS = "a total below the cap"
    SHORT_PAGE = "a short page: the window ends inside it"
    FULL_FIRST_PAGE = "a full page 1 whose total may not fit"
    FULL_CUT_PAGE = "a full cut page: the window is cut, or its second split"
    NO_FIELD_LEFT = "a full cut page of one second on the last split field"
    OVERFLOW = "the last page inside the cap came back full (on_cap='warn')"
    PAGE = "a page of a window being read"
    READ_IN_FULL = "every page is in"
    MOVED = "records moved while it was read: it is read again"
    STOPPED_SHORT = "pages stopped at a page boundary short of the count: read on"
    TOTAL_WRONG = "its size came from a total a page proved wrong"
    PAGES_IN = "its pages in flight are in"


_P, _H = Phase, Happening
#: Every legal move: ``(phase, what happened) -> next phase``.
TRANSITIONS: Mapping[tuple[Phase, Happening], Phase] = {
    (_P.LOOK, _H.FITS): _P.READ,
    (_P.LOOK, _H.SHORT_PAGE): _P.READ,
    (_P.LOOK, _H.FULL_FIRST_PAGE): _P.CUT,
    (_P.LOOK, _H.FULL_CUT_PAGE): _P.REPLACED,
    (_P.LOOK, _H.NO_FIELD_LEFT): _P.EDGE,
    (_P.CUT, _H.FITS): _P.READ,
    (_P.CUT, _H.SHORT_PAGE): _P.READ,
    (_P.CUT, _H.FULL_CUT_PAGE): _P.REPLACED,
    (_P.CUT, _H.NO_FIELD_LEFT): _P.EDGE,
    (_P.EDGE, _H.SHORT_PAGE): _P.READ,
    (_P.EDGE, _H.OVERFLOW): _P.READ,
    (_P.READ, _H.PAGE): _P.READ,
    (_P.READ, _H.READ_IN_FULL): _P.DONE,
    (_P.READ, _H.MOVED): _P.LOOK,
    (_P.READ, _H.STOPPED_SHORT): _P.REPLACED,
    (_P.READ, _H.TOTAL_WRONG): _P.RELOOK,
    (_P.RELOOK, _H.PAGE): _P.RELOOK,
    (_P.RELOOK, _H.PAGES_IN): _P.LOOK,
}


def next_phase(phase: Phase, happening: Happening) -> Phase:
    """The phase ``happening`` leads to from ``phase``, by the table."""
    try:
        return TRANSITIONS[phase, happening]
    except KeyError:
        # A planner bug, never the API's doing: the table is the whole machine.
        raise AssertionError(
            f"no transition from {phase.name} on {happening.name} in the planner's table"
        ) from None


@attrs.define
class Looking:
    phase: ClassVar[Phase] = Phase.LOOK
    # Counts proved it overflows: its first look is the cut page.
    look_at_cut_page: bool = False
    # Page 1 of the window it was cut from, whose records all lie in this one
    # and lead its sort order: its own page 1, so the first look is page 2.
    held: list[Mapping[str, Any]] | None = None


@attrs.define
class Cutting:
    phase: ClassVar[Phase] = Phase.CUT
    first_total: int | None
    # The full page 1 of its first look: delivered if page k shows it fits.
    held: list[Mapping[str, Any]] | None = None


@attrs.define
class AtEdge:
    phase: ClassVar[Phase] = Phase.EDGE
    first_total: int | None


class Basis(enum.Enum):
    """Where a window's size comes from."""

    TOTAL = "total"  # exactly ``expected``, by a total below the cap
    PAGES = "pages"  # exactly ``expected``, by a short page
    UNKNOWN = "unknown"  # read until a short page, never past ``page_limit``
    CAP = "cap"  # more than the cap (on_cap="warn"): every reachable page


@attrs.frozen
class Size:
    """How much of a window there is to read; the legal combinations are
    checked when one is built (restored snapshots included)."""

    basis: Basis
    expected: int | None = None
    n_pages: int | None = None
    page_limit: int | None = None

    def __attrs_post_init__(self) -> None:
        exact = self.basis in (Basis.TOTAL, Basis.PAGES)
        if exact != (self.expected is not None):
            raise ValueError(f"a {self.basis.value} size needs an expected count iff exact")
        if (self.basis is Basis.UNKNOWN) != (self.n_pages is None):
            raise ValueError(f"a {self.basis.value} size has a page count iff not unknown")
        if self.page_limit is not None and self.basis is not Basis.UNKNOWN:
            raise ValueError("only an unknown size has a page limit")

    @classmethod
    def exact(cls, expected: int, page_size: int, basis: Basis) -> Size:
        return cls(basis, expected, -(-expected // page_size))


@attrs.frozen
class PageIds:
    """The ids one delivered page held, and its first and last split values."""

    page: int
    ids: tuple[int, ...]
    # None (unknown, or from an older snapshot): it may tie any page beside it.
    low: int | None = None
    high: int | None = None
    # The ids on ``low`` or ``high``: the only ones ties can move off the page
    # (None: every id may).
    ends: tuple[int, ...] | None = None


@attrs.define
class Reading:
    phase: ClassVar[Phase] = Phase.READ
    size: Size
    first_total: int | None
    short_page: int | None = None  # the first page seen short
    short_count: int = 0  # records on short_page
    full_pages: int = 0  # highest page seen full, for reading without a size
    delivered_pages: set[int] = attrs.Factory(set)
    count: int = 0  # distinct ids read in this pass, delivered here or before
    top_value: int | None = None  # highest split value read in this pass
    moved: str | None = None  # why records moved while it was read (then: read again)
    # The ids of delivered pages that a page still to come may repeat: one
    # beside it (offsets shifted), or one it ties (ties ordered anew may put
    # an id on any page of their value). A snapshot keeps them (a restore
    # forgets which reading delivered an id), so that an id seen again
    # across a restore is still told as an offset shift.
    edge_pages: list[PageIds] = attrs.Factory(list)

    def last_needed_page(self) -> int | None:
        ends = [p for p in (self.size.n_pages, self.short_page) if p is not None]
        return min(ends) if ends else None

    def keep_edge(self, page: PageIds) -> None:
        """Keep delivered ``page``'s ids while a page still to come may repeat
        them (call once it is in :attr:`delivered_pages`)."""
        self.edge_pages.append(page)
        pages, last = self.delivered_pages, self.last_needed_page()
        kept = {edge.page: edge for edge in self.edge_pages}

        def to_come(number: int) -> bool:
            return number >= 1 and number not in pages and (last is None or number <= last)

        def apart(before: int, after: int) -> bool:
            # Sharing no value. A page let go was apart from both neighbours,
            # and pages past a delivered one hold no value below its last.
            first, second = kept.get(before), kept.get(after)
            if first is None or second is None:
                return True
            return first.high is not None and second.low is not None and first.high < second.low

        def needed(edge: PageIds) -> PageIds | None:
            number = edge.page
            if to_come(number - 1) or to_come(number + 1):
                return edge  # offsets that shift move any of its ids
            left = number == 1 or apart(number - 1, number)
            right = (last is not None and number >= last) or apart(number, number + 1)
            if left and right:
                return None
            return edge if edge.ends is None else attrs.evolve(edge, ids=edge.ends)

        self.edge_pages = [part for edge in self.edge_pages if (part := needed(edge))]

    def note_moved(self, reason: str) -> None:
        if self.moved is None:
            self.moved = reason


@attrs.define
class Relooking:
    phase: ClassVar[Phase] = Phase.RELOOK
    # Pages in flight are still delivered into it until they are in.
    reading: Reading


Stage = Looking | Cutting | AtEdge | Reading | Relooking


@attrs.define
class WindowState:
    """One active window: its phase's state and what spans its passes."""

    window: Window
    stage: Stage = attrs.Factory(Looking)
    pass_number: int = 0
    unique: int = 0  # records this window delivered, over every pass
    # Where the window it continues stopped short (maybe the API's cap): a
    # record it delivers proves that cap.
    stopped_at: int | None = None
    # Its page 1 was peeked at (a caller wanting a few records): once a window;
    # a snapshot keeps it, so a restored planner does not ask for it again.
    peeked: bool = False
    # Pages handed out and not yet fed back; never saved (a restore asks again).
    issued: set[int] = attrs.Factory(set)

    @property
    def phase(self) -> Phase:
        return self.stage.phase

    def move(self, happening: Happening, stage: Stage) -> None:
        """Enter ``stage``, which must be where the table leads."""
        expected = next_phase(self.stage.phase, happening)
        if stage.phase is not expected:
            raise AssertionError(
                f"{happening.name} leads from {self.stage.phase.name} to {expected.name}, "
                f"not {stage.phase.name}"
            )
        self.stage = stage

    def leave(self, happening: Happening) -> None:
        """End this window: ``happening`` must lead to DONE or REPLACED."""
        if next_phase(self.stage.phase, happening) not in (Phase.DONE, Phase.REPLACED):
            raise AssertionError(f"{happening.name} does not end a {self.stage.phase.name} window")

    def look_again(self, happening: Happening) -> None:
        """Start the next pass from a first look (ids delivered stay dropped)."""
        self.move(happening, Looking())
        self.pass_number += 1
