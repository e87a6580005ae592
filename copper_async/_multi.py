"""Several searches at once: :class:`MultiSearch`.

It runs several :class:`~copper_async._engine.Search` objects under the
client's one rate limiter and yields from all of them as records arrive;
with ``union=True`` a record matching several filters comes once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

from copper_async._closing import AsyncClosing
from copper_async._engine import Search, check_max_items
from copper_async._stats import SearchStats
from copper_async.exceptions import CopperError, InvalidOptionError

__all__ = ["MultiSearch"]

T = TypeVar("T")


class MultiSearch(AsyncClosing, Generic[T]):
    """Several searches at once, yielding from all as records arrive.

    Every search shares the client's rate limiter. With ``union=True`` a
    record that several filters match is yielded once (Copper's filters only
    AND; this gives OR); that keeps every id seen in memory. ``max_items``
    ends it after that many records in all (each search also stops there).
    """

    def __init__(
        self,
        searches: Sequence[Search[T]],
        *,
        union: bool = False,
        id_of: Callable[[T], int],
        queue_pages: int = 8,
        max_items: int | None = None,
    ) -> None:
        self.max_items = check_max_items(max_items)
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
        self._yielded = 0

    @property
    def stats(self) -> list[SearchStats]:
        """Each search's stats, in the order the filters were given."""
        return [search.stats for search in self.searches]

    def __aiter__(self) -> MultiSearch[T]:
        return self

    async def __anext__(self) -> T:
        try:
            if self.max_items is not None and self._yielded >= self.max_items:
                raise StopAsyncIteration
            while not self._records:
                if self._closed:
                    raise StopAsyncIteration
                if not self._tasks:
                    self._start()
                if self._running == 0 and self._queue.empty():
                    raise StopAsyncIteration
                index, item = await self._queue.get()
                if item is None:
                    self._running -= 1
                    continue
                if isinstance(item, BaseException):
                    raise _naming_filter(item, index)
                self._records.extend(self._fresh(item))
        except BaseException:
            # The end, an error, or the consumer cancelled (a timeout): stop every search.
            await self.aclose()
            raise
        self._yielded += 1
        return self._records.popleft()

    async def to_list(self) -> list[T]:
        """Every record (up to ``max_items``) in one list; the searches are closed after."""
        async with self:
            return [record async for record in self]

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
        # A consumer in another task may wait on the queue, which no pump fills
        # now: drop what is queued and wake it, to find the search closed.
        self._records.clear()
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait((-1, None))


def _naming_filter(error: BaseException, index: int) -> BaseException:
    """``error`` naming which filter (its place in the list given) failed."""
    if isinstance(error, CopperError):
        error.context.setdefault("filter_index", index)
    else:
        error.add_note(f"raised by the search of filter {index} (counting from 0)")
    return error


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
