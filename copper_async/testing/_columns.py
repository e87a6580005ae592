"""Record fields as the dataset's columns keep them, and filters over those columns.

A column holds one value a slot: numbers, casefolded texts, option ids, tuples
for multi-selects, None for anything missing or of the wrong type. A filter
takes candidate slots and returns those that match, in their order.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from itertools import compress, repeat
from typing import Any

from copper_async.exceptions import RecordError
from copper_async.testing._query import CustomFieldQuery

_UTC = dt.UTC

# -- reading fields of a record dict ---------------------------------------------------


def _number(value: Any) -> int | float | None:
    """A number filters and sorts can use; anything else counts as null."""
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value if math.isfinite(value) else None
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _folded(value: Any) -> str | None:
    """The case-insensitive sort key; an empty or missing text sorts as null."""
    return value.casefold() if isinstance(value, str) and value else None


def _midnight(value: Any) -> int | None:
    """``M/D/YYYY`` as the Unix second of its midnight UTC; None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        month, day, year = (int(part) for part in value.split("/"))
        return int(dt.datetime(year, month, day, tzinfo=_UTC).timestamp())
    except ValueError:
        return None


def _custom_value(value: Any) -> Any:
    """A custom field value as the column keeps it: lists become tuples of scalars."""
    if isinstance(value, list):
        return tuple(v for v in value if v is None or isinstance(v, str | int | float))
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float):
        return value
    return None


def _record_id(record: Mapping[str, Any]) -> int:
    value = record.get("id")
    if type(value) is not int:
        raise RecordError("id", f"must be an integer, not {value!r}")
    return value


def _exact_copy(encoded: bytes) -> bytes:
    # orjson's result can keep its whole working buffer; a copy is exactly sized.
    return memoryview(encoded).tobytes()


# -- matching custom fields ------------------------------------------------------------


def _custom_matcher(condition: CustomFieldQuery) -> Callable[[Any], bool]:
    """A test of one stored custom field value (None when the record has none)."""
    wanted = condition.values
    every = condition.option == "ALL"
    low, high = condition.minimum, condition.maximum
    bounded = low is not None or high is not None
    allow_empty = condition.allow_empty

    def matches(value: Any) -> bool:
        if allow_empty and (value is None or value == ()):
            return True
        if wanted is None and not bounded:
            return False  # allow_empty alone matches only the empty ones
        if wanted is not None:
            held = value if type(value) is tuple else () if value is None else (value,)
            if every:
                if not all(w in held for w in wanted):
                    return False
            elif not any(w in held for w in wanted):
                return False
        if bounded:
            number = _number(value) if not isinstance(value, str) else _midnight(value)
            if number is None:
                return False
            if (low is not None and number < low) or (high is not None and number > high):
                return False
        return True

    return matches


# -- the dataset -----------------------------------------------------------------------

# -- filters of candidate slots -------------------------------------------------------


def _custom_filter(
    column: Sequence[Any] | None, condition: CustomFieldQuery
) -> Callable[[Sequence[int]], list[int]]:
    """One custom field condition, as a filter of candidate slots.

    Without bounds, the matcher runs once a distinct value; bounds alone test
    numbers inline; the other shapes call the matcher for each record.
    """
    matches = _custom_matcher(condition)
    if column is None:  # no record has the field: it is null in every one
        everything = matches(None)
        return lambda slots: list(slots) if everything else []
    wanted, low, high = condition.values, condition.minimum, condition.maximum
    if low is None and high is None:
        # Values and emptiness compare by equality: one verdict a distinct value
        # (the columns hold few: option ids, shared tuples), then C-speed passes.
        def by_value(slots: Sequence[int]) -> list[int]:
            held = list(map(column.__getitem__, slots))
            verdicts = {value: matches(value) for value in set(held)}
            return list(compress(slots, map(verdicts.__getitem__, held)))

        return by_value
    if condition.allow_empty or wanted is not None:
        return lambda slots: [s for s in slots if matches(column[s])]
    floor = -math.inf if low is None else low
    ceiling = math.inf if high is None else high
    return lambda slots: [
        s
        for s in slots
        if (
            floor <= v <= ceiling
            if type(v := column[s]) is int or type(v) is float
            else type(v) is str and matches(v)
        )
    ]


def _bound_filter(
    column: Sequence[Any], low: float | None, high: float | None
) -> Callable[[Sequence[int]], list[int]]:
    """Inclusive bounds; a null never matches."""

    def within(slots: Sequence[int]) -> list[int]:
        kept = _where_not(slots, column, None) if None in column else slots
        if low is not None:
            kept = list(
                compress(kept, map(operator.le, repeat(low), map(column.__getitem__, kept)))
            )
        if high is not None:
            kept = list(
                compress(kept, map(operator.ge, repeat(high), map(column.__getitem__, kept)))
            )
        return list(kept)

    return within


def _where(slots: Sequence[int], column: Sequence[Any], value: Any) -> list[int]:
    """The slots whose column holds ``value`` (by identity: None, True, False)."""
    return list(compress(slots, map(operator.is_, map(column.__getitem__, slots), repeat(value))))


def _where_not(slots: Sequence[int], column: Sequence[Any], value: Any) -> list[int]:
    """The slots whose column does not hold ``value`` (by identity)."""
    held = map(column.__getitem__, slots)
    return list(compress(slots, map(operator.is_not, held, repeat(value))))
