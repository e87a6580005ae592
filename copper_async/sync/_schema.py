"""The mirror's table, declared once from the :class:`~copper_async.Opportunity` fields.

Every top-level field of the record class gets a typed column; its *kind*
comes from the field's annotation, and each store maps kinds to its own SQL
types and values. Values of an unexpected JSON type are stored as NULL in the
typed column; the ``record`` column always holds the record exactly as sent.
"""

from __future__ import annotations

import datetime as dt
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import attrs
import orjson

from copper_async._records import Opportunity

__all__ = [
    "COLUMNS",
    "CONVERTERS",
    "META_TABLE",
    "SCHEMA_VERSION",
    "STATE_TABLE",
    "TABLE",
    "TOOL",
    "Column",
    "Kind",
    "parse_close_date",
    "seconds",
]

TOOL: Final = "copper-async sync"
SCHEMA_VERSION: Final = 1
TABLE: Final = "opportunities"
STATE_TABLE: Final = "copper_async_sync_state"
META_TABLE: Final = "copper_async_meta"

Kind = Literal["integer", "real", "boolean", "text", "timestamp", "date", "json"]
_MAX_INT = 2**63 - 1
_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z


@attrs.frozen
class Column:
    name: str
    kind: Kind


def _kind(annotation: Any) -> Kind:
    """The column kind of one attrs field annotation (Absent and None dropped)."""
    args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else ()
    members = {
        a for a in args if a is not type(None) and getattr(a, "__name__", "") != "AbsentType"
    }
    members = members or {annotation}
    if any(typing.get_origin(m) is tuple for m in members):
        return "json"
    if members == {int, float}:
        return "real"
    (member,) = members
    kinds: dict[Any, Kind] = {
        int: "integer",
        bool: "boolean",
        str: "text",
        dt.datetime: "timestamp",
        dt.date: "date",
    }
    return kinds[member]


def _columns() -> tuple[Column, ...]:
    hints = typing.get_type_hints(Opportunity)
    return tuple(
        Column(field.name, _kind(hints[field.name]))
        for field in attrs.fields(Opportunity)
        if field.name != "extra"
    )


#: The typed columns, in the record class's order (``id`` first).
COLUMNS: Final = _columns()


# -- raw JSON value -> column value (the same for every store) ------------------------


def _integer(value: Any) -> int | None:
    return value if type(value) is int and -_MAX_INT <= value <= _MAX_INT else None


def _real(value: Any) -> float | None:
    if type(value) is float:
        return value if math.isfinite(value) else None
    return float(value) if type(value) is int and abs(value) < 2**53 else None


def _boolean(value: Any) -> bool | None:
    return value if type(value) is bool else None


def _text(value: Any) -> str | None:
    # PostgreSQL text cannot hold NUL; the record column keeps the original.
    return value.replace("\x00", "") if type(value) is str else None


def seconds(value: Any) -> int | None:
    """A Unix timestamp the column can hold, as whole seconds."""
    if (type(value) is int or type(value) is float) and 0 <= value <= _MAX_SECONDS:
        return int(value)
    return None


def parse_close_date(value: Any) -> dt.date | None:
    """Copper's ``M/D/YYYY`` as a date; None for anything else."""
    if type(value) is not str:
        return None
    try:
        month, day, year = value.split("/")
        return dt.date(int(year), int(month), int(day))
    except ValueError:
        return None


def _without_nul(value: Any) -> Any:
    """``value`` with NUL taken out of every string in it, keys too."""
    if type(value) is str:
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(item) for item in value]
    return value


def _json(value: Any) -> str | None:
    # PostgreSQL's jsonb cannot hold \u0000, as its text cannot hold NUL.
    if value is None:
        return None
    try:
        text = orjson.dumps(value).decode()
        if "\\u0000" in text:  # rare: only then look into the strings
            text = orjson.dumps(_without_nul(value)).decode()
    except TypeError:
        return None
    return text


CONVERTERS: Final[Mapping[Kind, Callable[[Any], Any]]] = {
    "integer": _integer,
    "real": _real,
    "boolean": _boolean,
    "text": _text,
    "timestamp": seconds,  # each store turns seconds into its own timestamp value
    "date": parse_close_date,
    "json": _json,
}
