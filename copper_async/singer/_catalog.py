"""The catalog: what ``--discover`` prints and how an input catalog selects.

One stream, ``opportunities``: key ``id``, replication key ``date_modified``
(both always included), every other property selected by default. Selection
follows the Singer rules as Meltano's SDK applies them: ``inclusion:
unsupported`` is never emitted, ``automatic`` always is, then an explicit
``selected``, then ``selected-by-default``, then the stream's own choice.

Keys a record carries that the schema does not name (fields Copper adds
later) pass only when no property is selected one by one and the catalog's
schema admits additional properties; otherwise a RECORD holds the selected
properties alone, as a target with a strict schema expects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from copper_async import InvalidOptionError
from copper_async.singer._schema import opportunity_schema

__all__ = [
    "KEY_PROPERTIES",
    "REPLICATION_KEY",
    "STREAM",
    "CatalogEntry",
    "discover",
    "select_entry",
]

STREAM = "opportunities"
KEY_PROPERTIES = ("id",)
REPLICATION_KEY = "date_modified"
INCREMENTAL, FULL_TABLE = "INCREMENTAL", "FULL_TABLE"


def _metadata(schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    automatic = {*KEY_PROPERTIES, REPLICATION_KEY}
    entries: list[dict[str, Any]] = [
        {
            "breadcrumb": [],
            "metadata": {
                "inclusion": "available",
                "selected-by-default": True,
                "table-key-properties": list(KEY_PROPERTIES),
                "valid-replication-keys": [REPLICATION_KEY],
                "replication-key": REPLICATION_KEY,
                "replication-method": INCREMENTAL,
            },
        }
    ]
    for name in schema["properties"]:
        inclusion = "automatic" if name in automatic else "available"
        entries.append(
            {
                "breadcrumb": ["properties", name],
                "metadata": {"inclusion": inclusion, "selected-by-default": True},
            }
        )
    return entries


def discover() -> dict[str, Any]:
    """The catalog ``--discover`` prints (no request is needed: the schema is static)."""
    schema = opportunity_schema()
    return {
        "streams": [
            {
                "tap_stream_id": STREAM,
                "stream": STREAM,
                "key_properties": list(KEY_PROPERTIES),
                "replication_key": REPLICATION_KEY,
                "replication_method": INCREMENTAL,
                "schema": schema,
                "metadata": _metadata(schema),
            }
        ]
    }


@attrs.frozen
class CatalogEntry:
    """The stream as the catalog asks for it."""

    schema: dict[str, Any]
    properties: frozenset[str]
    """The schema properties to emit."""
    dropped: frozenset[str]
    """The schema properties deselected: removed from every record."""
    incremental: bool
    keeps_unknown: bool = False
    """Keys the schema does not name pass too: no property was selected one
    by one and the schema admits additional properties."""


def _selected(entry: Mapping[str, Any] | None, parent: bool | None) -> bool:
    """One breadcrumb's selection (the SDK's rule)."""
    if parent is False:
        return False
    entry = entry or {}
    inclusion = entry.get("inclusion")
    if inclusion == "unsupported":
        return False
    if inclusion == "automatic":
        return True
    for key in ("selected", "selected-by-default"):
        if isinstance(entry.get(key), bool):
            return bool(entry[key])
    return bool(parent)


def _metadata_map(stream: Mapping[str, Any]) -> dict[tuple[str, ...], Mapping[str, Any]]:
    found: dict[tuple[str, ...], Mapping[str, Any]] = {}
    metadata = stream.get("metadata", [])
    if not isinstance(metadata, list):
        raise InvalidOptionError("catalog", f"stream {STREAM!r}: metadata must be a list")
    for item in metadata:
        if not isinstance(item, Mapping) or not isinstance(item.get("metadata", {}), Mapping):
            raise InvalidOptionError("catalog", f"stream {STREAM!r}: bad metadata entry {item!r}")
        found[tuple(item.get("breadcrumb", ()))] = item.get("metadata", {})
    return found


def select_entry(catalog: Mapping[str, Any] | None) -> CatalogEntry | None:
    """What the catalog selects of the stream; None when it is not selected.

    No catalog selects everything, as discovered.
    """
    if catalog is None:
        catalog = discover()
    streams = catalog.get("streams") if isinstance(catalog, Mapping) else None
    if not isinstance(streams, list):
        raise InvalidOptionError("catalog", "must be an object with a 'streams' list")
    matches = [
        s
        for s in streams
        if isinstance(s, Mapping) and s.get("tap_stream_id", s.get("stream")) == STREAM
    ]
    if not matches:
        return None
    stream = matches[0]
    metadata = _metadata_map(stream)
    if not metadata:  # no metadata: selected as discovered
        metadata = _metadata_map(discover()["streams"][0])
    if not _selected(metadata.get(()), None):
        return None
    schema = stream.get("schema")
    if not isinstance(schema, Mapping) or not isinstance(schema.get("properties"), Mapping):
        raise InvalidOptionError("catalog", f"stream {STREAM!r} has no object schema")
    names = set(schema["properties"])
    chosen = {n for n in names if _selected(metadata.get(("properties", n)), True)}
    chosen |= {*KEY_PROPERTIES, REPLICATION_KEY} & names
    method = metadata[()].get("replication-method", stream.get("replication_method", INCREMENTAL))
    if method not in (INCREMENTAL, FULL_TABLE):
        raise InvalidOptionError("catalog", f"replication-method {method!r} is not supported")
    kept = {n: p for n, p in schema["properties"].items() if n in chosen}
    # A catalog that selects properties one by one gets those alone, as the SDK's
    # taps send; with the whole stream selected, the schema says what may pass.
    chooses = any("selected" in md for crumb, md in metadata.items() if crumb)
    return CatalogEntry(
        schema={**schema, "properties": kept},
        properties=frozenset(chosen),
        dropped=frozenset(names - chosen),
        incremental=method == INCREMENTAL,
        keeps_unknown=not chooses and schema.get("additionalProperties", True) is True,
    )
