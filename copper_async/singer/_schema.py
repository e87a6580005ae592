"""The stream's JSON Schema, generated from the record class, and the record
conversion it implies.

The schema is read off :class:`copper_async.Opportunity`'s attrs fields and
their type hints, so a field added to the record class appears here without
a second list to keep in step. ``ABSENT`` (the key may be missing) makes a
property optional; ``None`` adds ``"null"``; the ``extra`` mapping (keys this
version does not know) becomes ``additionalProperties: true``, so unknown
fields and custom fields pass any target's validation.

Copper sends timestamps as Unix seconds and dates as ``M/D/YYYY``; a
warehouse wants real timestamps. :func:`record_converter` turns the raw
values of every ``date-time`` / ``date`` property (nested ones included)
into what the schema declares.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from copper_async import ABSENT, Opportunity

__all__ = ["json_schema", "opportunity_schema", "record_converter"]

_ABSENT_TYPE = type(ABSENT)
_SCALARS: dict[type, dict[str, Any]] = {
    bool: {"type": ["boolean"]},
    int: {"type": ["integer"]},
    float: {"type": ["number"]},
    str: {"type": ["string"]},
    dt.datetime: {"type": ["string"], "format": "date-time"},
    dt.date: {"type": ["string"], "format": "date"},
}


def opportunity_schema() -> dict[str, Any]:
    """The JSON Schema of the ``opportunities`` stream's records."""
    return json_schema(Opportunity)


def json_schema(record_class: type) -> dict[str, Any]:
    """The JSON Schema of an attrs record class (an object schema)."""
    hints = typing.get_type_hints(record_class)
    properties: dict[str, Any] = {}
    required: list[str] = []
    additional = False
    for field in attrs.fields(record_class):
        hint = hints[field.name]
        if typing.get_origin(hint) is Mapping:
            additional = True  # the record keeps keys it does not know
            continue
        members = _members(hint)
        properties[field.name] = _union(members)
        if _ABSENT_TYPE not in members and field.default is attrs.NOTHING:
            required.append(field.name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = additional
    return schema


def _members(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _union(members: tuple[Any, ...]) -> dict[str, Any]:
    """One schema for a union: type lists merged, ``null`` for None."""
    nullable = type(None) in members
    schemas = [_one(m) for m in members if m not in (type(None), _ABSENT_TYPE)]
    if {int, float} <= set(members):  # JSON's number holds both
        schemas = [s for s in schemas if s["type"] != ["integer"]]
    merged: dict[str, Any] = {"type": []}
    for schema in schemas:
        if set(schema) - {"type", "items"} and len(schemas) > 1:
            # Two formatted types cannot share one "type": describe each.
            return {"anyOf": [*schemas, *([{"type": "null"}] if nullable else [])]}
        kinds = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
        merged["type"] += [t for t in kinds if t not in merged["type"]]
        merged.update({k: v for k, v in schema.items() if k != "type"})
    if nullable:
        merged["type"].append("null")
    if len(merged["type"]) == 1:
        merged["type"] = merged["type"][0]
    return merged


def _one(hint: Any) -> dict[str, Any]:
    if hint in _SCALARS:
        return dict(_SCALARS[hint])
    if attrs.has(hint):
        return json_schema(hint)
    if typing.get_origin(hint) is tuple:
        item, *rest = typing.get_args(hint)
        if rest != [Ellipsis]:
            raise TypeError(f"only tuple[X, ...] has a JSON form, not {hint!r}")
        return {"type": ["array"], "items": _union(_members(item))}
    raise TypeError(f"no JSON Schema for {hint!r}")


# -- record conversion --------------------------------------------------------------

Convert = Callable[[Any], Any]


def _timestamp(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return dt.datetime.fromtimestamp(value, dt.UTC)
        except (OverflowError, ValueError, OSError):  # past year 9999, or before year 1
            return value
    return value


def _date(value: Any) -> Any:
    """``M/D/YYYY`` (Copper's form) to an ISO date; anything else is left as it is."""
    if isinstance(value, str):
        parts = value.split("/")
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            month, day, year = (int(p) for p in parts)
            try:
                return dt.date(year, month, day)
            except ValueError:
                return value
    return value


def _format_of(schema: Mapping[str, Any]) -> str | None:
    for option in (schema, *schema.get("anyOf", ())):
        if option.get("format") in ("date-time", "date"):
            return str(option["format"])
    return None


def _converters(schema: Mapping[str, Any]) -> dict[str, Convert]:
    """A converter for each property of an object schema that needs one."""
    found: dict[str, Convert] = {}
    for name, prop in schema.get("properties", {}).items():
        kind = _format_of(prop)
        if kind is not None:
            found[name] = _timestamp if kind == "date-time" else _date
            continue
        items = prop.get("items")
        if isinstance(items, Mapping) and "properties" in items:
            inner = _converters(items)
            if inner:
                found[name] = _each(inner)
    return found


def _each(inner: dict[str, Convert]) -> Convert:
    def convert(value: Any) -> Any:
        if isinstance(value, list):
            for entry in value:
                if isinstance(entry, dict):
                    _apply(entry, inner)
        return value

    return convert


def _apply(record: dict[str, Any], converters: dict[str, Convert]) -> None:
    for name, convert in converters.items():
        value = record.get(name)
        if value is not None:
            record[name] = convert(value)


def record_converter(schema: Mapping[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A function that converts a raw record, in place, to ``schema``'s forms.

    ``date-time`` values become aware UTC datetimes and ``date`` values
    :class:`datetime.date` objects (the message writer prints both in ISO 8601).
    A value not in Copper's form is left unchanged for the target to judge.
    """
    converters = _converters(schema)

    def convert(record: dict[str, Any]) -> dict[str, Any]:
        _apply(record, converters)
        return record

    return convert
