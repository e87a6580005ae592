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
  The held page 1 is not thrown away: its records lead the first child
  (the same sort, a subset of the range), so it is that child's page 1 and
  the child's first look is page 2 (were the child ordered otherwise, an id
  of the held page would come again later: the cross-check below).
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
  from losing records. So does a short page ending at or past every position
  any query was served (``_reach.py``), unless a total matched it: an API
  capping off a page boundary stops so. Records found past it prove the
  API's cap: a :class:`CapObserved` event names it. So does a window that
  held just its total in whole pages, when no larger total was seen and no
  query served further: an API capping its total at its own round cap
  answers so. (A total capped off a page boundary shows nothing.)

* **Peeks.** A caller that needs at most a page of records more, with
  nothing in flight, may say so (``next_request(want=n)``): a window not yet
  looked at is then asked for page 1 of ``n`` records instead of its first
  look (offset 0 makes any size a prefix of page 1). A full peek's fresh
  records are delivered and tell nothing of the window's size, which is
  looked at as usual if the caller wants more (the peeked ids are dropped
  then); a short peek holds the whole window, like a short page 1.

Where each part lives: ``_state.py`` (a window's phases and the one table of
transitions between them), ``_windows.py`` (bounds and cuts), ``_totals.py``
(when a total is trusted), ``_reach.py`` (how far the API served),
``_memory.py`` (ids delivered per window and per hot second), ``_steps.py``
(what each phase does with a page),
``_snapshot.py`` (checkpoints) and ``_planner.py`` (:class:`WindowPlanner`).

The planner's state is what a checkpoint saves: :meth:`WindowPlanner.snapshot`
returns plain JSON data, and :meth:`WindowPlanner.restore` rebuilds a planner
that re-issues only what had not been delivered.
"""

from copper_async._planner._events import (
    CapLimited,
    CapObserved,
    CountMismatch,
    Deliver,
    PageRequest,
    PageResult,
    PlannerEvent,
    PlannerStats,
    TotalsDistrusted,
    WindowDone,
    WindowSplit,
)
from copper_async._planner._planner import Restored, WindowPlanner
from copper_async._planner._steps import READ_ON_REASON
from copper_async._planner._windows import Window

__all__ = [
    "READ_ON_REASON",
    "CapLimited",
    "CapObserved",
    "CountMismatch",
    "Deliver",
    "PageRequest",
    "PageResult",
    "PlannerEvent",
    "PlannerStats",
    "Restored",
    "TotalsDistrusted",
    "Window",
    "WindowDone",
    "WindowPlanner",
    "WindowSplit",
]
