"""Records to rows, a page at a time, column by column.

Converting each value of each record in Python would cost more than the
database's own insert. Instead a page is cut into columns (``dict.get`` run
by ``map``, in C, then ``zip`` to transpose), each column is checked whole for the usual case (the
value types it holds, the range of its numbers: ``set``, ``min``, ``max``,
also in C) and passed through as it is; only a column that holds something
unexpected is converted value by value with
:data:`~copper_async.sync._schema.CONVERTERS`, so the results are the same
(a property test holds the two together). ``zip`` then turns the columns
back into row tuples.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Any

from copper_async.sync._schema import COLUMNS, CONVERTERS, Kind, parse_close_date, seconds

__all__ = ["RowPlan"]

_MAX_INT = 2**63 - 1
_MAX_SECONDS = 253_402_300_799
_EXACT_FLOAT = 2**53
_NONE = type(None)
_INTEGER_TYPES = frozenset({int, _NONE})
_REAL_TYPES = frozenset({int, float, _NONE})
_BOOLEAN_TYPES = frozenset({bool, _NONE})
_TEXT_TYPES = frozenset({str, _NONE})
_NAMES = tuple(column.name for column in COLUMNS)

Column = Sequence[Any]


def _each(kind: Kind, column: Column) -> Column:
    convert = CONVERTERS[kind]
    return [convert(value) for value in column]


def _integers(column: Column) -> Column:
    types = set(map(type, column))
    if types <= _INTEGER_TYPES:
        if int not in types:
            return column
        present = [value for value in column if value is not None]
        if min(present) >= -_MAX_INT and max(present) <= _MAX_INT:
            return column
    return _each("integer", column)


def _reals(column: Column) -> Column:
    """Whole numbers stay ints: both stores' float columns take them as the
    same value (the converter's float() would change nothing stored)."""
    types = set(map(type, column))
    if types <= _REAL_TYPES:
        present = [value for value in column if value is not None]
        if not present:
            return column
        try:
            finite = math.isfinite(math.fsum(present))
        except OverflowError:
            finite = False
        if finite and (int not in types or max(map(abs, present)) < _EXACT_FLOAT):
            return column
    return _each("real", column)


def _booleans(column: Column) -> Column:
    return column if set(map(type, column)) <= _BOOLEAN_TYPES else _each("boolean", column)


def _texts(column: Column) -> Column:
    if set(map(type, column)) <= _TEXT_TYPES and "\x00" not in "".join(filter(None, column)):
        return column
    return _each("text", column)


def _seconds(column: Column) -> Column:
    """Unix seconds the column can hold, or None."""
    types = set(map(type, column))
    if types <= _INTEGER_TYPES:
        if int not in types:
            return column
        present = [value for value in column if value is not None]
        if min(present) >= 0 and max(present) <= _MAX_SECONDS:
            return column
    return [seconds(value) for value in column]


def _jsons(column: Column) -> Column:
    convert = CONVERTERS["json"]
    return [None if value is None else convert(value) for value in column]


class RowPlan:
    """Builds the row tuples of a page: the typed columns in table order,
    then ``record``, ``synced_at``, ``deleted_at`` (NULL) and ``seen_run``.

    ``timestamp`` turns whole seconds into the store's value (None: the
    seconds themselves, for a store whose SQL converts them); ``date`` does
    the same for a close date.
    """

    def __init__(
        self,
        *,
        timestamp: Callable[[int], Any] | None,
        date: Callable[[dt.date], Any],
    ) -> None:
        # Close dates repeat a lot (a few thousand distinct days): parse each once.
        @functools.lru_cache(maxsize=16_384)
        def close_date(value: str | None) -> Any:
            parsed = parse_close_date(value)
            return None if parsed is None else date(parsed)

        def dates(column: Column) -> Column:
            if set(map(type, column)) <= _TEXT_TYPES:
                return list(map(close_date, column))
            return [close_date(value) if type(value) is str else None for value in column]

        def timestamps(column: Column) -> Column:
            column = _seconds(column)
            if timestamp is None:
                return column
            return [None if value is None else timestamp(value) for value in column]

        fixes: dict[Kind, Callable[[Column], Column]] = {
            "integer": _integers,
            "real": _reals,
            "boolean": _booleans,
            "text": _texts,
            "timestamp": timestamps,
            "date": dates,
            "json": _jsons,
        }
        self._fixes = tuple(fixes[column.kind] for column in COLUMNS)

    def rows(
        self, records: Sequence[Mapping[str, Any]], texts: Sequence[str], synced: Any, run_id: int
    ) -> list[tuple[Any, ...]]:
        count = len(records)
        if not count:
            return []
        # Row-wise lookups (a bound dict.get per record) then one transposition
        # are cheaper than a getter per column.
        cut = zip(*[tuple(map(record.get, _NAMES)) for record in records], strict=True)
        columns = [fix(column) for fix, column in zip(self._fixes, cut, strict=True)]
        tail = (texts, repeat(synced, count), repeat(None, count), repeat(run_id, count))
        return list(zip(*columns, *tail, strict=False))  # the repeats end with the texts
