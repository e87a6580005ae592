"""The streaming engine: runs the window planner over the HTTP client.

:class:`Search` is what ``client.opportunities.search(...)`` returns: an async
iterator of records (typed :class:`~copper_async._records.Opportunity`, or
plain dicts in raw mode) that keeps up to ``concurrency`` page requests in
flight, feeds each answer to the :class:`~copper_async._planner.WindowPlanner`
and yields what it delivers. The planner decides every request; this module
only sends them, keeps order of nothing but its own bookkeeping, and cleans
up: closing a search early (``break``, :meth:`Search.aclose`, cancelling the
task) cancels the requests in flight.

:class:`MultiSearch` runs several searches at once under the client's one
rate limiter and yields from all of them as records arrive; with
``union=True`` a record matching several filters comes once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from typing import Any, Generic, Literal, TypeVar

import attrs

from copper_async._clock import Clock, LoopClock
from copper_async._closing import AsyncClosing
from copper_async._pages import PageSource, RawPage
from copper_async._planner import (
    CapLimited,
    CountMismatch,
    Deliver,
    PageRequest,
    PageResult,
    PlannerEvent,
    PlannerStats,
    TotalsDistrusted,
    Window,
    WindowDone,
    WindowPlanner,
    WindowSplit,
)
from copper_async._protocol import page_refused
from copper_async._records import Opportunity, structure_page
from copper_async.exceptions import (
    CopperError,
    InvalidOptionError,
    InvalidRequestError,
    RecordError,
    SearchCapWarning,
)
from copper_async.filters import MAX_PAGE_SIZE, DateField, OpportunityFilter

__all__ = [
    "SEARCH_CAP",
    "MultiSearch",
    "ResultPage",
    "Search",
    "SearchOptions",
    "SearchStats",
]

logger = logging.getLogger(__name__)

#: Copper returns only this many records of any one query.
SEARCH_CAP = 100_000
# Copper's clock and ours may differ: a search ends this far past our "now".
_CLOCK_SKEW_ALLOWANCE = 300
_MAX_CONCURRENCY = 64

T = TypeVar("T")
OnCap = Literal["error", "warn"]
# The planner's counters that SearchStats mirrors (records are counted at hand-out).
_PLANNER_COUNTERS = tuple(
    field.name for field in attrs.fields(PlannerStats) if field.name != "records_delivered"
)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOptionError(name, f"must be an integer, not {value!r}")
    if not low <= value <= high:
        raise InvalidOptionError(name, f"must be between {low} and {high}, not {value}")


def _date_field(value: DateField | str, name: str = "split_field") -> DateField:
    if isinstance(value, DateField):
        return value
    for member in DateField:
        if value in (member.value, member.record_key, member.name.lower()):
            return member
    raise InvalidOptionError(name, f"unknown date field {value!r}")


@attrs.frozen(kw_only=True)
class SearchOptions:
    """How one search pages and splits. Every option has a safe default.

    ``split_field`` must be a field the API can both filter and sort on and
    that no record leaves empty: ``date_created`` (default; it never changes,
    so records cannot move between windows while a search runs) or
    ``date_modified``. ``secondary_field`` splits a single second that holds
    more than the cap (by default the other of the two; ``None`` to never).
    ``end_at`` bounds ``date_created`` from above when the filter does not,
    so that records created while the search runs do not shift its pages;
    it defaults to the moment the search starts.
    """

    page_size: int = MAX_PAGE_SIZE
    cap: int = SEARCH_CAP
    split_field: DateField = attrs.field(default=DateField.CREATED, converter=_date_field)
    secondary_field: DateField | Literal["auto"] | None = "auto"
    on_cap: OnCap = "error"
    concurrency: int = 4
    max_passes: int = 3
    end_at: int | None = None

    def __attrs_post_init__(self) -> None:
        _check_int("page_size", self.page_size, 1, MAX_PAGE_SIZE)
        _check_int("cap", self.cap, 1, 10**9)
        if self.cap < self.page_size:
            raise InvalidOptionError("cap", f"must be at least page_size ({self.page_size})")
        if not self.split_field.splittable:
            raise InvalidOptionError(
                "split_field",
                f"{self.split_field.record_key!r} cannot split a search: it must be sortable "
                "and never empty (use date_created or date_modified)",
            )
        if self.secondary_field not in ("auto", None):
            secondary = _date_field(self.secondary_field, "secondary_field")
            if not secondary.splittable or secondary is self.split_field:
                raise InvalidOptionError(
                    "secondary_field", "must be the other of date_created and date_modified"
                )
            object.__setattr__(self, "secondary_field", secondary)
        if self.on_cap not in ("error", "warn"):
            raise InvalidOptionError("on_cap", f"must be 'error' or 'warn', not {self.on_cap!r}")
        _check_int("concurrency", self.concurrency, 1, _MAX_CONCURRENCY)
        _check_int("max_passes", self.max_passes, 1, 10)
        if self.end_at is not None:
            _check_int("end_at", self.end_at, 0, 253_402_300_799)

    @property
    def split_fields(self) -> tuple[DateField, ...]:
        """The primary split field, then the one that splits hot seconds."""
        if self.secondary_field is None:
            return (self.split_field,)
        if self.secondary_field == "auto":
            other = (
                DateField.MODIFIED if self.split_field is DateField.CREATED else DateField.CREATED
            )
            return (self.split_field, other)
        assert isinstance(self.secondary_field, DateField)
        return (self.split_field, self.secondary_field)


@attrs.define
class SearchStats:
    """Live counters of one search; read them during the run or after it.

    ``records`` counts records handed to the caller. The planner's counters
    (see :class:`~copper_async._planner.PlannerStats`) are mirrored here:
    ``overcounted_windows`` had a stable total above their records (Copper's
    total is an upper bound), ``shifted_reads`` ids came twice in one reading
    of a window (its offsets moved: it is read again), ``windows_continued``
    stopped at a page boundary short of their count and were read on,
    ``pages_refused`` got an error status past page 1 (taken as the end), and
    ``totals_distrusted`` is set once a page contradicted its own total.
    """

    requests: int = 0
    pages: int = 0
    records: int = 0
    bytes: int = 0
    retries: int = 0
    rate_limited: int = 0
    windows_planned: int = 0
    windows_split: int = 0
    windows_done: int = 0
    hot_spots: int = 0
    duplicates_dropped: int = 0
    count_mismatches: int = 0
    rereads: int = 0
    pages_discarded: int = 0
    cap_limited_windows: int = 0
    unreachable_records: int = 0
    overcounted_windows: int = 0
    shifted_reads: int = 0
    windows_continued: int = 0
    pages_refused: int = 0
    totals_distrusted: bool = False
    total_hint: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    _clock: Clock | None = attrs.field(default=None, repr=False, eq=False, alias="clock")

    @property
    def elapsed(self) -> float:
        """Seconds since the first request (up to the end, once finished)."""
        if self.started_at is None:
            return 0.0
        end = self.finished_at
        if end is None:
            end = self._clock.monotonic() if self._clock is not None else self.started_at
        return max(end - self.started_at, 0.0)

    def as_dict(self) -> dict[str, Any]:
        """The counters as plain data (for logs, summaries and checkpoints)."""
        data = attrs.asdict(self, filter=lambda a, _: not a.name.startswith("_"))
        data["elapsed"] = round(self.elapsed, 3)
        return data


@attrs.frozen
class ResultPage(Generic[T]):
    """One delivered page: its window, page number and fresh records."""

    window: Window
    page_number: int
    records: list[T]


class Search(AsyncClosing, Generic[T]):
    """An async iterator over every record one filter matches, each once.

    Use it as ``async for record in search`` (or ``search.pages()`` for whole
    pages); ``async with`` or :meth:`aclose` releases it early. Its
    :attr:`stats` are live. ``planner_events`` are events a restored
    ``planner`` returned, handled as if fed.
    """

    def __init__(
        self,
        fetcher: PageSource,
        filter: OpportunityFilter | None = None,
        *,
        options: SearchOptions | None = None,
        structure: Callable[[list[dict[str, Any]]], list[T]] | None = None,
        clock: Clock | None = None,
        planner: WindowPlanner | None = None,
        planner_events: Sequence[PlannerEvent] = (),
    ) -> None:
        if filter is not None and not isinstance(filter, OpportunityFilter):
            raise InvalidOptionError(
                "filter", f"must be an OpportunityFilter or None, not {type(filter).__name__}"
            )
        self.filter = filter if filter is not None else OpportunityFilter()
        self.options = options if options is not None else SearchOptions()
        self._fetcher = fetcher
        self._structure = structure
        self._clock = clock if clock is not None else LoopClock()
        self.stats = SearchStats(clock=self._clock)
        self._fields = self.options.split_fields
        self.planner = planner if planner is not None else self._new_planner()
        self._tasks: dict[asyncio.Task[RawPage], PageRequest] = {}
        self._ready: deque[ResultPage[T]] = deque()
        self._records: deque[T] = deque()
        self._closed = False
        self._failure: BaseException | None = None
        # What a restored planner settled at once (windows finished before a crash).
        self._handle(planner_events)

    def _new_planner(self) -> WindowPlanner:
        bounds = [self.filter.date_bounds(field) for field in self._fields]
        created = self._fields.index(DateField.CREATED) if DateField.CREATED in self._fields else -1
        if created >= 0 and bounds[created][1] is None:
            end_at = self.options.end_at
            if end_at is None:
                end_at = int(time.time()) + _CLOCK_SKEW_ALLOWANCE
            lo = bounds[created][0]
            bounds[created] = (lo, end_at if lo is None or end_at >= lo else lo)
        return WindowPlanner(
            cap=self.options.cap,
            page_size=self.options.page_size,
            split_fields=[field.record_key for field in self._fields],
            bounds=bounds,
            on_cap=self.options.on_cap,
            max_passes=self.options.max_passes,
        )

    # -- the async iterator protocol ------------------------------------------

    def __aiter__(self) -> Search[T]:
        return self

    async def __anext__(self) -> T:
        while not self._records:
            page = await self._next_page()
            if page is None:
                raise StopAsyncIteration
            self._records.extend(page.records)
        self.stats.records += 1
        return self._records.popleft()

    async def pages(self) -> AsyncGenerator[ResultPage[T], None]:
        """Yield whole pages instead of records (what an exporter commits)."""
        try:
            while (page := await self._next_page()) is not None:
                self.stats.records += len(page.records)
                yield page
        finally:
            await self.aclose()

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
        while len(self._tasks) < self.options.concurrency:
            request = self.planner.next_request()
            if request is None:
                return
            body = self._body(request)
            context = self._where(request.window, request.page_number)
            task = asyncio.ensure_future(self._fetcher.fetch_page(body, context=context))
            self._tasks[task] = request
            self.stats.requests += 1

    def _where(self, window: Window, page_number: int) -> dict[str, Any]:
        """Error context: which window and page."""
        return {
            "window": window.describe([f.record_key for f in self._fields]),
            "page_number": page_number,
        }

    def _body(self, request: PageRequest) -> dict[str, Any]:
        query = self.filter
        for field, (lo, hi) in zip(self._fields, request.window.bounds, strict=True):
            query = query.with_date_bounds(field, lo, hi)
        sort_by = self._fields[request.window.level].sort_by
        query = query.with_sort(sort_by, "asc")
        return query.to_body(page_number=request.page_number, page_size=request.page_size)

    async def _take_one(self) -> None:
        """Wait for one answer and feed it to the planner."""
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        # Oldest first, so the planner sees answers roughly in the order asked.
        task = next(t for t in self._tasks if t in done)
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
            self._handle(self.planner.feed(request, result))
        except RecordError as error:
            # A malformed record names its window and page, like a failed request.
            for key, value in self._where(request.window, request.page_number).items():
                error.context.setdefault(key, value)
            raise

    def _account(self, page: RawPage) -> None:
        stats = self.stats
        stats.pages += 1
        stats.bytes += page.nbytes
        stats.retries += max(page.attempts - 1, 0)
        stats.rate_limited += page.rate_limited
        if stats.total_hint is None and page.total is not None:
            stats.total_hint = page.total

    def _handle(self, events: Sequence[PlannerEvent]) -> None:
        planner_stats = self.planner.stats
        stats = self.stats
        for event in events:
            if isinstance(event, Deliver):
                records: list[Any] = event.records
                if self._structure is not None and records:
                    try:
                        records = self._structure(records)
                    except RecordError as error:
                        error.context.update(self._where(event.window, event.page_number))
                        raise
                self._ready.append(ResultPage(event.window, event.page_number, records))
            elif isinstance(event, WindowSplit):
                logger.debug(
                    "split window %s (total %s): %s", event.window.bounds, event.total, event.reason
                )
            elif isinstance(event, CountMismatch):
                logger.warning(
                    "window %s: %s (expected %d records, saw %d)%s",
                    event.window.bounds,
                    event.reason,
                    event.expected,
                    event.seen,
                    "; reading it again" if event.reread else "",
                )
            elif isinstance(event, TotalsDistrusted):
                logger.warning(
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
                    loss = f"{event.unreachable} records are unreachable"
                else:
                    loss = f"up to {event.unreachable} records may be unreachable"
                message = (
                    f"window {event.window.describe([f.record_key for f in self._fields])} "
                    f"holds more records than the search cap ({self.options.cap}); {loss}"
                )
                logger.warning("%s", message)
                warnings.warn(message, SearchCapWarning, stacklevel=4)
            elif isinstance(event, WindowDone):
                logger.debug("window %s done: %d records", event.window.bounds, event.delivered)
        for name in _PLANNER_COUNTERS:
            setattr(stats, name, getattr(planner_stats, name))


class MultiSearch(AsyncClosing, Generic[T]):
    """Several searches at once, yielding from all as records arrive.

    Every search shares the client's rate limiter. With ``union=True`` a
    record that several filters match is yielded once (Copper's filters only
    AND; this gives OR); that keeps every id seen in memory.
    """

    def __init__(
        self,
        searches: Sequence[Search[T]],
        *,
        union: bool = False,
        id_of: Callable[[T], int],
        queue_pages: int = 8,
    ) -> None:
        if not searches:
            raise InvalidOptionError("filters", "needs at least one filter")
        self.searches = list(searches)
        self.union = union
        self._id_of = id_of
        self._queue: asyncio.Queue[tuple[int, list[T] | BaseException | None]] = asyncio.Queue(
            maxsize=queue_pages
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._seen: set[int] = set()
        self._records: deque[T] = deque()
        self._running = 0
        self._closed = False
        self.duplicates_dropped = 0

    @property
    def stats(self) -> list[SearchStats]:
        """Each search's stats, in the order the filters were given."""
        return [search.stats for search in self.searches]

    def __aiter__(self) -> MultiSearch[T]:
        return self

    async def __anext__(self) -> T:
        try:
            while not self._records:
                if self._closed:
                    raise StopAsyncIteration
                if not self._tasks:
                    self._start()
                if self._running == 0 and self._queue.empty():
                    raise StopAsyncIteration
                _, item = await self._queue.get()
                if item is None:
                    self._running -= 1
                    continue
                if isinstance(item, BaseException):
                    raise item
                self._records.extend(self._fresh(item))
        except BaseException:
            # The end, an error, or the consumer cancelled (a timeout): stop every search.
            await self.aclose()
            raise
        return self._records.popleft()

    def _fresh(self, records: list[T]) -> Iterable[T]:
        if not self.union:
            return records
        fresh = []
        for record in records:
            record_id = self._id_of(record)
            if record_id not in self._seen:
                self._seen.add(record_id)
                fresh.append(record)
        self.duplicates_dropped += len(records) - len(fresh)
        return fresh

    def _start(self) -> None:
        self._running = len(self.searches)
        for index, search in enumerate(self.searches):
            self._tasks.append(asyncio.ensure_future(_pump(self._queue, index, search)))

    def __del__(self) -> None:
        for task in getattr(self, "_tasks", ()):
            task.cancel()

    async def aclose(self) -> None:
        """Cancel every search still running."""
        self._closed = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for search in self.searches:
            await search.aclose()


async def _pump(
    queue: asyncio.Queue[tuple[int, list[T] | BaseException | None]],
    index: int,
    search: Search[T],
) -> None:
    """Feed one search's pages into the shared queue.

    A function, not a method: a pump must not keep its MultiSearch alive, so
    that dropping the MultiSearch (a ``break``) runs its ``__del__``, which
    cancels the pumps.
    """
    try:
        async for page in search.pages():
            await queue.put((index, page.records))
    except asyncio.CancelledError:
        await search.aclose()
        raise
    except BaseException as error:
        await search.aclose()
        await queue.put((index, error))
        return
    await queue.put((index, None))


def typed_structure(records: list[dict[str, Any]]) -> list[Opportunity]:
    """Structure one page of records into :class:`Opportunity` objects."""
    return structure_page(records)
