"""Catalog selection and the state's shape."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest

from copper_async import InvalidOptionError
from copper_async.singer import discover, read_bookmark, select_entry, with_bookmark


def catalog_with(stream_md: dict[str, Any], **properties: dict[str, Any]) -> dict[str, Any]:
    catalog = copy.deepcopy(discover())
    for entry in catalog["streams"][0]["metadata"]:
        breadcrumb = tuple(entry["breadcrumb"])
        if breadcrumb == ():
            entry["metadata"].update(stream_md)
        elif breadcrumb[1] in properties:
            entry["metadata"].update(properties[breadcrumb[1]])
    return catalog


def test_discovery_declares_key_replication_key_and_their_inclusion() -> None:
    (stream,) = discover()["streams"]
    assert stream["tap_stream_id"] == stream["stream"] == "opportunities"
    metadata = {tuple(m["breadcrumb"]): m["metadata"] for m in stream["metadata"]}
    assert metadata[()]["table-key-properties"] == ["id"]
    assert metadata[()]["valid-replication-keys"] == ["date_modified"]
    assert metadata[()]["replication-method"] == "INCREMENTAL"
    assert metadata["properties", "id"]["inclusion"] == "automatic"
    assert metadata["properties", "date_modified"]["inclusion"] == "automatic"
    assert metadata["properties", "name"]["inclusion"] == "available"
    assert set(stream["schema"]["properties"]) == {b[1] for b in metadata if b}


def test_no_catalog_selects_every_property() -> None:
    entry = select_entry(None)
    assert entry is not None
    assert entry.dropped == frozenset()
    assert entry.incremental


def test_a_deselected_stream_is_not_selected() -> None:
    assert select_entry(catalog_with({"selected": False})) is None


def test_a_catalog_without_the_stream_selects_nothing() -> None:
    assert select_entry({"streams": []}) is None


def test_only_selected_properties_are_kept_and_automatic_ones_always() -> None:
    catalog = catalog_with(
        {"selected": True, "selected-by-default": False},
        name={"selected": True},
        details={"selected": False},
        id={"selected": False},  # automatic: kept anyway
        status={"selected-by-default": False},
    )
    entry = select_entry(catalog)
    assert entry is not None
    assert {"id", "date_modified", "name"} <= entry.properties
    assert {"details", "status"} <= entry.dropped
    assert "details" not in entry.schema["properties"]
    assert "id" in entry.schema["properties"]


def test_meltano_style_selection_of_a_few_properties() -> None:
    # Meltano writes selected: true/false on every breadcrumb it was told about.
    catalog = copy.deepcopy(discover())
    for entry in catalog["streams"][0]["metadata"]:
        chosen = entry["breadcrumb"] in ([], ["properties", "id"], ["properties", "status"])
        entry["metadata"]["selected"] = chosen
    selected = select_entry(catalog)
    assert selected is not None
    assert selected.properties == {"id", "status", "date_modified"}


def test_full_table_replication_is_honoured() -> None:
    entry = select_entry(catalog_with({"replication-method": "FULL_TABLE"}))
    assert entry is not None
    assert not entry.incremental


@pytest.mark.parametrize(
    ("catalog", "reason"),
    [
        ({"streams": "no"}, "'streams' list"),
        (catalog_with({"replication-method": "LOG_BASED"}), "not supported"),
        ({"streams": [{"tap_stream_id": "opportunities", "metadata": 3}]}, "metadata"),
        (
            {"streams": [{"tap_stream_id": "opportunities", "schema": {}, "metadata": []}]},
            "object schema",
        ),
    ],
)
def test_a_bad_catalog_is_refused_naming_what_is_wrong(catalog: Any, reason: str) -> None:
    with pytest.raises(InvalidOptionError, match=reason):
        select_entry(catalog)


def test_state_round_trips_in_the_sdk_shape_and_keeps_other_keys() -> None:
    state = with_bookmark({"bookmarks": {"other": {"x": 1}}, "extra": True}, 1_700_000_000)
    assert state == {
        "bookmarks": {
            "other": {"x": 1},
            "opportunities": {
                "replication_key": "date_modified",
                "replication_key_value": "2023-11-14T22:13:20Z",
            },
        },
        "extra": True,
    }
    assert read_bookmark(state) == 1_700_000_000


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2023-11-14T22:13:20+00:00", 1_700_000_000),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000),
        ("2023-11-14T22:13:20", 1_700_000_000),
        (1_700_000_000, 1_700_000_000),
        (None, None),
    ],
)
def test_a_bookmark_is_read_from_iso_or_unix_seconds(value: Any, seconds: int | None) -> None:
    state = {"bookmarks": {"opportunities": {"replication_key_value": value}}}
    assert read_bookmark(state) == seconds


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ({"bookmarks": []}, "must be an object"),
        ({"bookmarks": {"opportunities": {"replication_key_value": "soon"}}}, "ISO 8601"),
        (
            {"bookmarks": {"opportunities": {"replication_key": "id", "replication_key_value": 1}}},
            "not 'date_modified'",
        ),
    ],
)
def test_a_bad_state_is_refused(state: Any, reason: str) -> None:
    with pytest.raises(InvalidOptionError, match=reason):
        read_bookmark(state)


def test_no_state_or_no_bookmark_means_none() -> None:
    assert read_bookmark(None) is None
    assert read_bookmark({}) is None
    assert read_bookmark({"bookmarks": {"other": {}}}) is None


def test_unknown_keys_pass_only_without_property_selection_and_as_the_schema_admits() -> None:
    stream_only = copy.deepcopy(discover())
    stream = stream_only["streams"][0]
    stream["metadata"] = [{"breadcrumb": [], "metadata": {"selected": True}}]
    entry = select_entry(stream_only)
    assert entry is not None
    assert entry.keeps_unknown
    stream["schema"]["additionalProperties"] = False  # the catalog's schema forbids them
    entry = select_entry(stream_only)
    assert entry is not None
    assert not entry.keeps_unknown
    chosen = select_entry(catalog_with({"selected": True}, name={"selected": True}))
    assert chosen is not None
    assert not chosen.keeps_unknown


def test_discovery_forces_no_replication_method_since_both_are_honoured() -> None:
    # A forced method tells a UI or orchestrator that no other may be chosen.
    root = discover()["streams"][0]["metadata"][0]["metadata"]
    assert "forced-replication-method" not in root
    for method in ("INCREMENTAL", "FULL_TABLE"):
        entry = select_entry(catalog_with({"replication-method": method}))
        assert entry is not None
        assert entry.incremental == (method == "INCREMENTAL")


def test_a_bookmark_in_an_unknown_shape_is_named_before_a_full_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # e.g. a classic Singer tap's {"date_modified": ...}: no replication_key_value.
    state = {"bookmarks": {"opportunities": {"date_modified": "2024-01-01T00:00:00Z"}}}
    with caplog.at_level(logging.WARNING, logger="copper_async"):
        assert read_bookmark(state) is None
    assert any("replication_key_value" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="copper_async"):
        assert read_bookmark({"bookmarks": {"opportunities": {}}}) is None
    assert not caplog.records
