"""The streaming engine: runs the window planner over the HTTP client.

:class:`Search` is what ``client.opportunities.search(...)`` returns: an async
iterator of the records of one :class:`~copper_async._resources.Resource`
(typed, e.g. :class:`~copper_async._records.Opportunity`, or plain dicts in
raw mode) that keeps up to ``concurrency`` page requests in flight, feeds each
answer to the :class:`~copper_async._planner.WindowPlanner` and yields what it
delivers. The resource says where to send them and what comes back; the
planner and this module know nothing more of it. The planner decides every request; this module
only sends them, keeps order of nothing but its own bookkeeping, and cleans
up: closing a search early (``break``, :meth:`Search.aclose`, cancelling the
task) cancels the requests in flight. ``max_items`` stops a search after
that many records: it asks for no page those in flight cannot fill, asks a
window it has not looked at for only the records still wanted once they fit
in a page and nothing is in flight (the planner's peek), and cancels what is
in flight once it has them.

:class:`~copper_async._multi.MultiSearch` runs several searches at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import warnings
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from types import FrameType
from typing import Any, Generic, TypeVar

import attrs

from copper_async._clock import Clock, LoopClock
from copper_async._closing import AsyncClosing
from copper_async._options import SEARCH_CAP, SearchOptions, check_max_items
from copper_async._pages import PageSource, RawPage
from copper_async._planner import (
    CapLimited,
    CapObserved,
    CountMismatch,
    Deliver,
    PageRequest,
    PageResult,
    PlannerEvent,
    TotalsDistrusted,
    Window,
    WindowDone,
    WindowPlanner,
    WindowSplit,
)
from copper_async._protocol import page_refused
from copper_async._resources import Resource, SearchFilter
from copper_async._stats import SearchStats
from copper_async.exceptions import (
    CopperError,
    InvalidFilterError,
    InvalidOptionError,
    InvalidRequestError,
    RecordError,
    SearchCapWarning,
)
from copper_async.filters import DateField

__all__ = [
    "SEARCH_CAP",
    "ResultPage",
    "Search",
    "SearchOptions",
    "SearchStats",
    "check_max_items",
    "check_no_sort",
    "checked_filter",
    "sort_in",
]

logger = logging.getLogger(__name__)


def _records(count: int) -> str:
    return "1 record" if count == 1 else f"{count} records"


# Copper's clock and ours may differ: a search ends this far past our "now".
_CLOCK_SKEW_ALLOWANCE = 300
#: Window bodies kept at once (a search has a few windows open at a time).
_WINDOW_BODIES = 64

T = TypeVar("T")
FilterT = TypeVar("FilterT")


def _located(error: RecordError, where: Mapping[str, Any]) -> RecordError:
    """The same error, naming the window and page it came from."""
    return RecordError(
        error.path,
        error.reason,
        record_id=error.record_id,
        context={**error.context, **where},
    )


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _caller_level() -> int:
    """The ``stacklevel`` naming the first frame outside this package, for a
    warning raised from the function that calls this: the caller's line (its
    loop, ``to_list()`` or ``pages()``), whichever path led here."""
    # Level 1 is the warning's own function, frame 1 here; level 2 its caller.
    level = 2
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    return level


def checked_filter(filter: object, filter_class: type[FilterT]) -> FilterT:
    """``filter``, or the resource's empty filter for None; another type is refused."""
    if filter is None:
        return filter_class()
    if not isinstance(filter, filter_class):
        raise InvalidOptionError(
            "filter", f"must be an {filter_class.__name__} or None, not {type(filter).__name__}"
        )
    return filter


def sort_in(filter: object, reader: str = "an export") -> str | None:
    """Why the sort ``filter`` asks for cannot be kept by ``reader``, or None
    when it asks none."""
    given = [
        name for name in ("sort_by", "sort_direction") if getattr(filter, name, None) is not None
    ]
    if not given:
        return None
    return (
        f"{' and '.join(given)} cannot be honoured by {reader}: to read past the search "
        "cap it orders each date window itself, on the split field (sort the output "
        "afterwards if the order matters)"
    )


def check_no_sort(filter: object, reader: str) -> None:
    """Refuse a filter that asks for a sort: it would be dropped unseen."""
    reason = sort_in(filter, reader)
    if reason is not None:
        field = "sort_by" if getattr(filter, "sort_by", None) is not None else "sort_direction"
        raise InvalidFilterError(field, f"{reason}; remove it from the filter")


@attrs.frozen
class ResultPage(Generic[T]):
    """One delivered page: its window, page number and fresh records."""

    window: Window
    page_number: int
    records: list[T]


class Search(AsyncClosing, Generic[T]):
    """An async iterator over every record one filter matches, each once.

    Use it as ``async for record in search``, ``search.pages()`` for whole
    pages, or ``await search.to_list()``; ``async with`` or :meth:`aclose`
    releases it early. Its :attr:`stats` are live. ``planner_events`` are
    events a restored ``planner`` returned, handled as if fed.
    ``max_items`` ends it after that many records (see the module's doc);
    below the page size it also shrinks the pages asked for.
    """

    def __init__(
        self,
        fetcher: PageSource,
        filter: Any = None,
        *,
        resource: Resource[Any, Any],
        options: SearchOptions | None = None,
        structure: Callable[[list[dict[str, Any]]], list[T]] | None = None,
        clock: Clock | None = None,
        planner: WindowPlanner | None = None,
        planner_events: Sequence[PlannerEvent] = (),
        stats: SearchStats | None = None,
        max_items: int | None = None,
    ) -> None:
        self.max_items = check_max_items(max_items)
        self.filter: SearchFilter = checked_filter(filter, resource.filter_class)
        check_no_sort(filter, "a search")
        self.resource = resource
        self.options = options if options is not None else SearchOptions()
        limit = self.max_items
        if limit is not None and limit < self.options.page_size and planner is None:
            # A fresh search needs no bigger page than the records it will yield.
            self.options = attrs.evolve(self.options, page_size=limit)
        self._fetcher = fetcher
        self._structure = structure
        self._clock = clock if clock is not None else LoopClock()
        self._fields = self.options.split_fields
        unsplittable = [f.record_key for f in self._fields if f not in resource.split_fields]
        if unsplittable:
            raise InvalidOptionError(
                "split_field", f"{resource.name} cannot be split on {', '.join(unsplittable)}"
            )
        # One stats object: the planner counts into it, the engine adds page counters.
        self.stats = stats if stats is not None else SearchStats(clock=self._clock)
        self.planner = planner if planner is not None else self._new_planner()
        if self.planner.stats is not self.stats:
            raise InvalidOptionError(
                "planner", "must count into this search's stats (restore it with stats=)"
            )
        self._tasks: dict[asyncio.Task[RawPage], PageRequest] = {}
        self._ready: deque[ResultPage[T]] = deque()
        self._records: deque[T] = deque()
        # The page whose records ``_records`` holds, for pages() to finish it.
        self._partial: ResultPage[T] | None = None
        # Each window's body, made and validated once: its pages differ only in paging.
        self._window_bodies: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._closed = False
        self._failure: BaseException | None = None
        self._delivered = 0  # records handed to _ready, counted against max_items
        # What a restored planner settled at once (windows finished before a crash).
        self._handle(planner_events)

    def _new_planner(self) -> WindowPlanner:
        bounds = [self.filter.date_bounds(field) for field in self._fields]
        created = self._fields.index(DateField.CREATED) if DateField.CREATED in self._fields else -1
        if created >= 0 and bounds[created][1] is None:
            end_at = self.options.end_at
            if end_at is None:
                end_at = int(self._clock.time()) + _CLOCK_SKEW_ALLOWANCE
            lo = bounds[created][0]
            bounds[created] = (lo, end_at if lo is None or end_at >= lo else lo)
        return WindowPlanner(
            cap=self.options.cap,
            page_size=self.options.page_size,
            split_fields=[field.record_key for field in self._fields],
            bounds=bounds,
            on_cap=self.options.on_cap,
            max_passes=self.options.max_passes,
            id_field=self.resource.id_field,
            stats=self.stats,
        )

    # -- the async iterator protocol ------------------------------------------

    def __aiter__(self) -> Search[T]:
        return self

    async def __anext__(self) -> T:
        while not self._records:
            page = await self._next_page()
            if page is None:
                raise StopAsyncIteration
            self._partial = page
            self._records.extend(page.records)
        self.stats.records += 1
        return self._records.popleft()

    async def pages(self) -> AsyncGenerator[ResultPage[T], None]:
        """Yield whole pages instead of records (what an exporter commits)."""
        try:
            if self._records and self._partial is not None:
                # Records iteration has not handed out yet: the rest of its page first.
                rest = attrs.evolve(self._partial, records=list(self._records))
                self._records.clear()
                self.stats.records += len(rest.records)
                yield rest
            while (page := await self._next_page()) is not None:
                self.stats.records += len(page.records)
                yield page
        finally:
            await self.aclose()

    async def to_list(self) -> list[T]:
        """Every record (up to ``max_items``) in one list; the search is closed after."""
        async with self:
            return [record async for record in self]

    @property
    def at_commit_point(self) -> bool:
        """True when every page the planner delivered has been handed out,
        so :meth:`checkpoint` describes exactly what the caller has."""
        return not self._ready and not self._records

    async def aclose(self) -> None:
        """Cancel requests in flight and stop; records not yet yielded are dropped."""
        self._closed = True
        self._ready.clear()
        self._records.clear()
        tasks = list(self._tasks)
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.stats.finished_at is None and self.stats.started_at is not None:
            self.stats.finished_at = self._clock.monotonic()

    def __del__(self) -> None:
        # A search dropped mid-way (a ``break``) must not leave requests running.
        for task in getattr(self, "_tasks", {}):
            task.cancel()

    # -- the engine ----------------------------------------------------------------

    async def _next_page(self) -> ResultPage[T] | None:
        try:
            while not self._ready:
                if self._closed:
                    if self._failure is not None:
                        raise self._failure
                    return None
                if self.max_items is not None and self._delivered >= self.max_items:
                    # Enough records: what is still in flight is not needed.
                    await self.aclose()
                    return None
                if self.stats.started_at is None:
                    self.stats.started_at = self._clock.monotonic()
                self._issue()
                if not self._tasks:
                    if not self.planner.finished:
                        raise CopperError("the window planner stalled with nothing to fetch")
                    self.stats.finished_at = self._clock.monotonic()
                    self._closed = True
                    return None
                await self._take_one()
        except BaseException as error:
            # Whatever stops us (an error, a cancellation) cancels what is in flight.
            if not isinstance(error, asyncio.CancelledError):
                self._failure = self._failure or error
            await self.aclose()
            raise
        return self._ready.popleft()

    def _issue(self) -> None:
        while len(self._tasks) < self.options.concurrency and not self._enough_asked():
            wanted = None if self.max_items is None else self.max_items - self._promised()
            request = self.planner.next_request(want=wanted, in_flight=bool(self._tasks))
            if request is None:
                return
            body = self._body(request)
            context = self._where(request.window, request.page_number)
            task = asyncio.ensure_future(
                self._fetcher.fetch_page(body, path=self.resource.path, context=context)
            )
            self._tasks[task] = request
            self.stats.requests += 1

    def _promised(self) -> int:
        """Records delivered, and those the pages in flight bring if full."""
        return self._delivered + len(self._tasks) * self.options.page_size

    def _enough_asked(self) -> bool:
        """True when the pages in flight, if full, bring ``max_items`` records."""
        return self.max_items is not None and self._promised() >= self.max_items

    def _where(self, window: Window, page_number: int) -> dict[str, Any]:
        """Error context: which window and page."""
        return {
            "window": window.describe([f.record_key for f in self._fields]),
            "page_number": page_number,
        }

    def _body(self, request: PageRequest) -> dict[str, Any]:
        window = request.window
        key = (window.bounds, window.level)
        body = self._window_bodies.get(key)
        if body is None:
            query = self.filter
            for field, (lo, hi) in zip(self._fields, window.bounds, strict=True):
                query = query.with_date_bounds(field, lo, hi)
            query = query.with_sort(self._fields[window.level].sort_by, "asc")
            body = query.to_body(page_number=request.page_number, page_size=request.page_size)
            if len(self._window_bodies) >= _WINDOW_BODIES:
                self._window_bodies.clear()  # windows done with are not asked again
            self._window_bodies[key] = body
        # A new dict a page; its nested lists are the window's, and nothing changes them.
        return {**body, "page_number": request.page_number, "page_size": request.page_size}

    async def _take_one(self) -> None:
        """Wait for one answer and feed it to the planner."""
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        # Oldest first, so the planner sees answers roughly in the order asked.
        task = next((t for t in self._tasks if t in done), None)
        if task is None:
            # Another task took these answers (a worker sharing this search) or
            # closed the search meanwhile: the caller's loop looks again.
            return
        request = self._tasks.pop(task)
        try:
            page = task.result()
        except InvalidRequestError as error:
            # A 422 for a page past the first, whose body differs from other pages'
            # only in page_number: the API will not page this far (a lower cap than
            # configured). The planner takes it as the end and reads on from there.
            if not page_refused(error.status, request.page_number):
                raise
            logger.debug("page %d refused (HTTP 422): taken as the end", request.page_number)
            result = PageResult([], None, refused=True)
        else:
            self._account(page)
            result = PageResult(page.records, page.total)
        try:
            events = self.planner.feed(request, result)
        except RecordError as error:
            # A malformed record names its window and page, like a failed request.
            raise _located(error, self._where(request.window, request.page_number)) from error
        self._handle(events)

    def _account(self, page: RawPage) -> None:
        stats = self.stats
        stats.pages += 1
        stats.bytes += page.nbytes
        stats.retries += max(page.attempts - 1, 0)
        stats.rate_limited += page.rate_limited
        if stats.total_hint is None and page.total is not None:
            stats.total_hint = page.total
        if page.server_date is not None:
            stats.server_date = max(stats.server_date or page.server_date, page.server_date)

    def _deliver(self, event: Deliver) -> None:
        records: list[Any] = event.records
        if self.max_items is not None:
            room = self.max_items - self._delivered
            if room <= 0:
                return  # answers that were in flight when the last record came
            records = records[:room]
        self._delivered += len(records)
        if self._structure is not None and records:
            try:
                records = self._structure(records)
            except RecordError as error:
                where = self._where(event.window, event.page_number)
                raise _located(error, where) from error
        self._ready.append(ResultPage(event.window, event.page_number, records))

    def _handle(self, events: Sequence[PlannerEvent]) -> None:
        for event in events:
            if isinstance(event, Deliver):
                self._deliver(event)
            elif isinstance(event, WindowSplit):
                logger.debug(
                    "split window %s (total %s): %s", event.window.bounds, event.total, event.reason
                )
            elif isinstance(event, CountMismatch):
                # A reading read again is routine; a window that may miss records
                # (one stats.count_mismatches) is worth an operator's eye.
                logger.log(
                    logging.INFO if event.reread else logging.WARNING,
                    "window %s: %s (expected %d records, saw %d)%s",
                    event.window.bounds,
                    event.reason,
                    event.expected,
                    event.seen,
                    "; reading it again" if event.reread else "",
                )
            elif isinstance(event, TotalsDistrusted):
                logger.info(
                    "window %s page %d holds records through position %d, past its "
                    "X-PW-TOTAL of %d: totals are ignored from now on",
                    event.window.bounds,
                    event.page_number,
                    event.records_through,
                    event.total,
                )
            elif isinstance(event, CapLimited):
                if event.unreachable is None:
                    loss = "some records may be unreachable (no usable total was sent)"
                elif event.exact:
                    verb = "is" if event.unreachable == 1 else "are"
                    loss = f"{_records(event.unreachable)} {verb} unreachable"
                else:
                    loss = f"up to {_records(event.unreachable)} may be unreachable"
                message = (
                    f"window {event.window.describe([f.record_key for f in self._fields])} "
                    f"holds more records than the search cap ({self.options.cap}); {loss}"
                )
                # Reported once, as a warning the caller can filter or turn into an error.
                warnings.warn(message, SearchCapWarning, stacklevel=_caller_level())
            elif isinstance(event, CapObserved):
                # Recovered, yet worth an operator's eye: ``cap`` is wrong, or the API changed.
                logger.warning(
                    "the API caps a query's results at %d records, below the configured "
                    "cap of %d: windows are read on past it",
                    event.observed_cap,
                    event.cap,
                )
            elif isinstance(event, WindowDone):
                logger.debug("window %s done: %d records", event.window.bounds, event.delivered)
