"""Orders of tied records (equal sort values) other than id order.

An API that breaks ties by something other than the id may order them per
query (:func:`ties_per_query`), or, without a stable tie-break at all, anew
for every request (:class:`TiesPerRequest`). Under the latter, offset paging
cannot be exact: a tie straddling a page edge can show one record on both
pages and hide another.
"""

from __future__ import annotations

import math
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

    Only the runs a read touches are found (by galloping from the page's
    ends, O(log run)) and permuted (O(1) a position read); the sorted result
    itself is the cached one, shared by every request. One view reads the same order every
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
        """The slots at positions [start, stop), each touched run permuted.

        Runs are grouped on the page's own values; only the first and the last
        may reach past the page, so only they are galloped out."""
        slots = self._slots
        page = list(slots[start:stop])
        values = list(map(self._column.__getitem__, page))
        spanned: list[int] = []
        for _value, group in groupby(range(len(page)), key=values.__getitem__):
            at = list(group)
            first, last = start + at[0], start + at[-1] + 1
            low = self._run(first)[0] if first == start else first
            high = self._run(last - 1)[1] if last == stop else last
            if high - low == 1:
                spanned.append(page[at[0]])
                continue
            spanned += [slots[low + at] for at in self._permuted(low, high, first, last)]
        return spanned

    def _permuted(self, low: int, high: int, first: int, last: int) -> Iterator[int]:
        """Offsets into the run [low, high) that positions [first, last) read,
        under a permutation drawn for this request and run: i -> (a*i + b) mod
        size with a coprime to size. O(1) a position, so a page inside a run
        of 50,000 costs what any page costs; any two draws still disagree."""
        size = high - low
        rng = random.Random(f"{self._draw}:{low}")
        step, shift = rng.randrange(1, size), rng.randrange(size)
        while math.gcd(step, size) != 1:
            step += 1
        return ((step * at + shift) % size for at in range(first - low, last - low))

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
