"""The stream's JSON Schema is read off the record class, and records are
converted to what it declares."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import attrs
import orjson
import pytest

from copper_async import Opportunity
from copper_async.singer import opportunity_schema, record_converter
from copper_async.singer._schema import json_schema
from tests.reference import reference_records

_JSON_TYPES = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def conforms(value: Any, schema: dict[str, Any]) -> bool:
    """The subset of JSON Schema the generated schema uses: type, items, properties."""
    if "anyOf" in schema:
        return any(conforms(value, option) for option in schema["anyOf"])
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if not any(_JSON_TYPES[kind](value) for kind in kinds):
        return False
    if isinstance(value, str) and schema.get("format") == "date-time":
        dt.datetime.fromisoformat(value)
    if isinstance(value, str) and schema.get("format") == "date":
        dt.date.fromisoformat(value)
    if isinstance(value, list):
        return all(conforms(item, schema["items"]) for item in value)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        if not set(schema.get("required", ())) <= set(value):
            return False
        if not schema.get("additionalProperties", True) and set(value) - set(props):
            return False
        return all(conforms(v, props[k]) for k, v in value.items() if k in props)
    return True


def test_every_record_field_is_a_property_and_only_the_id_is_required() -> None:
    schema = opportunity_schema()
    names = [f.name for f in attrs.fields(Opportunity) if f.name != "extra"]
    assert list(schema["properties"]) == names
    assert schema["required"] == ["id"]
    # ``extra`` keeps unknown keys: the schema admits them.
    assert schema["additionalProperties"] is True


def test_types_follow_the_type_hints() -> None:
    props = opportunity_schema()["properties"]
    assert props["id"] == {"type": "integer"}
    assert props["name"] == {"type": ["string", "null"]}
    assert props["pipeline_is_revenue"] == {"type": ["boolean", "null"]}
    assert props["monetary_value"] == {"type": ["number", "null"]}
    assert props["date_modified"] == {"type": ["string", "null"], "format": "date-time"}
    assert props["close_date"] == {"type": ["string", "null"], "format": "date"}
    assert props["tags"] == {"type": ["array", "null"], "items": {"type": "string"}}
    lead = props["leads_converted_from"]["items"]
    assert lead["required"] == ["lead_id", "converted_timestamp"]
    assert lead["properties"]["converted_timestamp"]["format"] == "date-time"
    custom = props["custom_fields"]["items"]
    assert custom["additionalProperties"] is True
    assert set(custom["properties"]["value"]["type"]) == {
        "boolean",
        "number",
        "string",
        "array",
        "null",
    }


def test_a_field_added_to_a_record_class_appears_in_its_schema() -> None:
    @attrs.frozen
    class Small:
        id: int
        when: dt.datetime | None = None
        scores: tuple[float, ...] = ()

    schema = json_schema(Small)
    assert schema["required"] == ["id"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["when"] == {"type": ["string", "null"], "format": "date-time"}
    assert schema["properties"]["scores"] == {"type": "array", "items": {"type": "number"}}


def test_an_unsupported_type_is_refused_not_guessed() -> None:
    @attrs.frozen
    class Odd:
        id: int
        blob: bytes

    with pytest.raises(TypeError, match="no JSON Schema"):
        json_schema(Odd)


def test_every_reference_record_conforms_once_converted() -> None:
    schema = opportunity_schema()
    convert = record_converter(schema)
    records = reference_records()
    assert records
    for raw in records:
        # The converter works in place, nested lists included: keep the shared data intact.
        converted = orjson.loads(orjson.dumps(convert(copy.deepcopy(raw)), option=orjson.OPT_UTC_Z))
        assert conforms(converted, schema), converted["id"]


def test_conversion_gives_iso_timestamps_and_dates_and_leaves_the_rest() -> None:
    convert = record_converter(opportunity_schema())
    record = {
        "id": 7,
        "date_modified": 1_700_000_000,
        "date_created": None,
        "close_date": "3/5/2024",
        "leads_converted_from": [{"lead_id": 1, "converted_timestamp": 1_600_000_000}],
        "custom_fields": [{"custom_field_definition_id": 6, "value": "1/2/2020"}],
        "brand_new_field": 5,
    }
    line = orjson.loads(orjson.dumps(convert(record), option=orjson.OPT_UTC_Z))
    assert line["date_modified"] == "2023-11-14T22:13:20Z"
    assert line["date_created"] is None
    assert line["close_date"] == "2024-03-05"
    assert line["leads_converted_from"][0]["converted_timestamp"] == "2020-09-13T12:26:40Z"
    # Custom values keep their own form; unknown fields pass through.
    assert line["custom_fields"][0]["value"] == "1/2/2020"
    assert line["brand_new_field"] == 5


def test_values_not_in_coppers_form_are_left_for_the_target_to_judge() -> None:
    convert = record_converter(opportunity_schema())
    record = {"id": 1, "close_date": "2/30/2024", "date_modified": "yesterday"}
    assert convert(dict(record)) == record


@pytest.mark.parametrize(
    "seconds",
    [1_700_000_000_000, -1e15, 10**20],
    ids=["milliseconds", "far-past", "past-64-bits"],
)
def test_a_timestamp_no_date_can_hold_is_left_for_the_target_to_judge(seconds: float) -> None:
    convert = record_converter(opportunity_schema())
    record = {
        "id": 1,
        "date_modified": seconds,
        "leads_converted_from": [{"lead_id": 2, "converted_timestamp": seconds}],
    }
    assert convert(copy.deepcopy(record)) == record
