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

import orjson

from copper_async.sync._schema import COLUMNS, CONVERTERS, Kind, parse_close_date, seconds

__all__ = ["RowPlan", "utc_texts"]

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
    dumps = orjson.dumps
    try:  # the converter's own work, without a call per value
        texts = [None if value is None else dumps(value).decode() for value in column]
    except TypeError:
        texts = None
    if texts is None or any(text is not None and "\\u0000" in text for text in texts):
        convert = CONVERTERS["json"]  # rare: a value not JSON, or a NUL in a string
        return [None if value is None else convert(value) for value in column]
    return texts


_DAY = 86_400
_EPOCH = dt.date(1970, 1, 1)
_MINUTES = tuple(f"T{hour:02d}:{minute:02d}:" for hour in range(24) for minute in range(60))
_SECONDS = tuple(f"{second:02d}Z" for second in range(60))


class _Days(dict[int, str]):
    """Days since the epoch -> ``YYYY-MM-DD``, computed once each (a mirror's
    timestamps fall on a few thousand days); cleared if it ever grows large."""

    def __missing__(self, day: int) -> str:
        if len(self) >= 100_000:
            self.clear()
        text = self[day] = (_EPOCH + dt.timedelta(days=day)).isoformat()
        return text


_DAYS = _Days()


def utc_texts(column: Column) -> Column:
    """Unix seconds (0 to year 9999, or None) as ``2026-01-31T09:30:00Z``: three
    table lookups a value, cheaper than strftime in Python or in SQL."""
    days, minutes, second = _DAYS, _MINUTES, _SECONDS
    return [
        None
        if value is None
        else f"{days[value // _DAY]}{minutes[value // 60 % 1440]}{second[value % 60]}"
        for value in column
    ]


class RowPlan:
    """Builds the row tuples of a page: the typed columns in table order,
    then ``record``, ``synced_at``, ``deleted_at`` (NULL) and ``seen_run``.

    ``timestamps`` turns a column of whole seconds (or None) into the store's
    values (None: the seconds themselves); ``date`` turns a close date into
    the store's value.
    """

    def __init__(
        self,
        *,
        timestamps: Callable[[Column], Column] | None,
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

        def stamps(column: Column) -> Column:
            column = _seconds(column)
            return column if timestamps is None else timestamps(column)

        fixes: dict[Kind, Callable[[Column], Column]] = {
            "integer": _integers,
            "real": _reals,
            "boolean": _booleans,
            "text": _texts,
            "timestamp": stamps,
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
