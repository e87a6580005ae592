"""Orders of tied records (equal sort values) other than id order.

An API that breaks ties by something other than the id may order them per
query (:func:`ties_per_query`), or, without a stable tie-break at all, anew
for every request (:class:`TiesPerRequest`). Under the latter, offset paging
cannot be exact: a tie straddling a page edge can show one record on both
pages and hide another.
"""

from __future__ import annotations

import random
import zlib
from array import array
from collections.abc import Callable, Iterator, Sequence
from itertools import groupby
from typing import Any, overload

from copper_async.testing._store import _Ids

__all__ = ["TiesPerRequest", "ties_per_query"]


def ties_per_query(result: _Ids, column: Sequence[Any], salt_of: object) -> _Ids:
    """``result`` with each run of equal ``column`` values in an order of its
    own, fixed by ``salt_of`` (the query): the same query, the same order."""
    slots = list(result._slots)
    salt = zlib.crc32(repr(salt_of).encode())
    for _value, group in groupby(range(len(slots)), key=lambda i: column[slots[i]]):
        at = list(group)
        if len(at) > 1:
            tied = sorted((slots[i] for i in at), key=lambda slot: hash((slot, salt)))
            for i, slot in zip(at, tied, strict=True):
                slots[i] = slot
    return _Ids(slots, result._id)


class TiesPerRequest(Sequence[int]):
    """``result`` as one request sees it: each run of equal sort values in an
    order drawn from ``draw`` (and the run's position).

    Only the runs a read touches are found (by galloping from the position
    read, O(log run)) and shuffled (O(run)); the sorted result itself is the
    cached one, shared by every request. One view reads the same order every
    time, so a page and the total agree within a request.
    """

    __slots__ = ("_column", "_draw", "_id", "_slots")

    def __init__(self, result: _Ids, column: Sequence[Any], draw: int) -> None:
        self._slots: Sequence[int] = result._slots
        self._id: array[int] = result._id
        self._column = column
        self._draw = draw

    def __len__(self) -> int:
        return len(self._slots)

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...
    def __getitem__(self, index: int | slice) -> int | list[int]:
        size = len(self._slots)
        if isinstance(index, slice):
            start, stop, step = index.indices(size)
            if step == 1:
                return [self._id[slot] for slot in self._span(start, stop)]
            return [self[i] for i in range(start, stop, step)]
        position = index + size if index < 0 else index
        if not 0 <= position < size:
            raise IndexError("search result index out of range")
        return self._id[self._span(position, position + 1)[0]]

    def __iter__(self) -> Iterator[int]:
        return iter(self[:])

    def _span(self, start: int, stop: int) -> list[int]:
        """The slots at positions [start, stop), each touched run shuffled whole."""
        slots, spanned = self._slots, []
        position = start
        while position < stop:
            low, high = self._run(position)
            end = min(high, stop)
            if high - low == 1:
                spanned.append(slots[position])
            else:
                tied = list(slots[low:high])
                random.Random(f"{self._draw}:{low}").shuffle(tied)
                spanned += tied[position - low : end - low]
            position = end
        return spanned

    def _run(self, position: int) -> tuple[int, int]:
        """[low, high): the positions sharing ``position``'s sort value (a run,
        as the result is sorted on it)."""
        column, slots = self._column, self._slots
        value = column[slots[position]]

        size = len(slots)

        def before(step: int) -> bool:
            return position - step >= 0 and column[slots[position - step]] == value

        def after(step: int) -> bool:
            return position + step < size and column[slots[position + step]] == value

        return position - _gallop(before), position + 1 + _gallop(after)


def _gallop(tied_at: Callable[[int], bool]) -> int:
    """The largest ``n`` with ``tied_at(1..n)`` all true, given they are true
    up to some ``n`` and false beyond: doubling steps, then bisection."""
    known, step = 0, 1
    while tied_at(step):
        known, step = step, step * 2
    # tied_at(known) holds (or known == 0), tied_at(step) does not.
    while step - known > 1:
        middle = (known + step) // 2
        if tied_at(middle):
            known = middle
        else:
            step = middle
    return known
