"""What the planner is asked, what it is told, and what it answers with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from copper_async._planner._windows import Window

__all__ = [
    "CapLimited",
    "CapObserved",
    "CountMismatch",
    "Deliver",
    "PageRequest",
    "PageResult",
    "PlannerEvent",
    "PlannerStats",
    "TotalsDistrusted",
    "WindowDone",
    "WindowSplit",
]


@attrs.frozen
class PageRequest:
    """One page to fetch: the window's bounds, sorted ascending by ``sort_field``.

    ``peek`` marks a page 1 of only the records the caller still wants.
    """

    window: Window
    page_number: int
    page_size: int
    sort_field: str
    pass_number: int
    peek: bool = False


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
    """Records to yield, already free of ids delivered before.

    Ids dropped are ``duplicates`` the server sent twice, or ``overlaps`` the
    planner asked for twice (see :class:`PlannerStats`).
    """

    window: Window
    page_number: int
    records: list[Mapping[str, Any]]
    duplicates: int
    overlaps: int = 0


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
    """Records seen in a window differ from its count, or moved while it was read.

    ``reread``: the window is read again, so this reading is no mismatch yet
    (only a window's last reading counts in ``PlannerStats.count_mismatches``).
    """

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


@attrs.frozen
class CapObserved:
    """Records lay past where ``window``'s query stopped: the API caps a
    query's results at ``observed_cap``, below the configured ``cap``."""

    window: Window
    observed_cap: int
    cap: int


PlannerEvent = (
    Deliver | WindowSplit | WindowDone | CountMismatch | CapLimited | TotalsDistrusted | CapObserved
)


@attrs.define
class PlannerStats:
    """Counters the planner keeps.

    The planner counts into the object it is given (``stats=``), which may be
    a subclass carrying a caller's own counters too.
    """

    windows_planned: int = 0
    windows_split: int = 0
    windows_done: int = 0
    hot_spots: int = 0
    records_delivered: int = 0
    # Ids the server sent twice, dropped: offsets shifted or ties were ordered
    # anew within one reading of a window, or an edit moved a record between
    # the windows of one hot second.
    duplicates_dropped: int = 0
    # Ids the planner itself asked for twice, dropped: reading on from a
    # second already read, a window's first look after a peek, a window read
    # again, pages asked again after a restore. Not the server's doing.
    overlaps_dropped: int = 0
    # Windows whose last reading disagreed with their count: records may be
    # missing there (each window once; readings read again are ``rereads``).
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
