"""Custom fields by name: typed definitions, column names, option names, CSV columns."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from copper_async._custom_fields import (
    CustomFieldDefinition,
    CustomFieldNames,
    column_names,
    structure_definitions,
)
from copper_async._writers import CSV_BASE_COLUMNS, CsvWriter, open_writer
from copper_async.exceptions import RecordError
from copper_async.testing._definitions import DEFINITIONS


def definition(definition_id: int, name: str, data_type: str = "String") -> CustomFieldDefinition:
    return CustomFieldDefinition(
        id=definition_id, name=name, data_type=data_type, available_on=("opportunity",)
    )


def test_definitions_are_typed_and_unknown_keys_ignored() -> None:
    (region,) = structure_definitions([d for d in DEFINITIONS if d["id"] == 5])
    assert region.name == "Region"
    assert region.data_type == "Dropdown"
    assert region.available_on == ("opportunity",)
    assert [(o.id, o.name) for o in region.options][:2] == [(1, "North"), (2, "South")]


def test_a_malformed_definition_names_its_field_and_position() -> None:
    with pytest.raises(RecordError) as raised:
        structure_definitions([dict(DEFINITIONS[0]), {"id": "7", "name": "x", "data_type": "Text"}])
    assert raised.value.path == "id"
    assert raised.value.context["index"] == 1


def test_column_names_are_slugs_behind_a_prefix_no_record_field_has() -> None:
    names = column_names(
        [definition(3, "Deal Région (EU)"), definition(4, "name"), definition(5, "Status")]
    )
    assert names == {3: "cf_deal_region_eu", 4: "cf_name", 5: "cf_status"}
    assert not set(names.values()) & set(CSV_BASE_COLUMNS)


def test_shared_names_keep_the_oldest_plain_and_suffix_the_rest() -> None:
    older = [definition(9, "Region"), definition(4, "Other")]
    assert column_names(older)[9] == "cf_region"
    # A later definition that folds alike does not rename the older column.
    newer = [*older, definition(30, "region!"), definition(31, "???"), definition(32, "")]
    names = column_names(newer)
    assert names == {
        4: "cf_other",
        9: "cf_region",
        30: "cf_region__30",
        31: "cf___31",
        32: "cf___32",
    }
    assert len(set(names.values())) == len(names)


def test_a_name_that_looks_like_a_suffix_cannot_collide() -> None:
    # "Region 30" folds to region_30: a slug never holds "__", so no clash with cf_region__30.
    names = column_names(
        [definition(9, "Region"), definition(30, "Region"), definition(40, "Region 30")]
    )
    assert sorted(names.values()) == ["cf_region", "cf_region_30", "cf_region__30"]


def test_names_are_for_one_record_kind_and_map_options() -> None:
    names = CustomFieldNames.for_records(structure_definitions(list(DEFINITIONS)))
    # Definition 20, also "Region", is a person field: it neither shows nor renames.
    assert names.columns == {
        3: "cf_account_notes",
        5: "cf_region",
        6: "cf_renewal_date",
        7: "cf_referral",
        12: "cf_products",
    }
    assert names.value(5, 2) == "South"
    assert names.value(12, [8, 10]) == ["Hardware", "Services"]
    assert names.value(12, [8, 99]) == ["Hardware", 99]  # a deleted option keeps its id
    assert names.value(5, None) is None
    assert names.value(7, True) is True
    assert names.value(3, 5) == 5  # not an option field
    assert names.value(404, 1) == 1  # unknown definition


def record(record_id: int, region: Any, products: Any, notes: Any = None) -> dict[str, Any]:
    return {
        "id": record_id,
        "name": f"deal {record_id}",
        "custom_fields": [
            {"custom_field_definition_id": 5, "value": region},
            {"custom_field_definition_id": 12, "value": products},
            {"custom_field_definition_id": 3, "value": notes},
            {"custom_field_definition_id": 77, "value": "new field"},
        ],
    }


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_the_csv_writer_names_columns_and_options(tmp_path: Path) -> None:
    names = CustomFieldNames.for_records(structure_definitions(list(DEFINITIONS)))
    out = tmp_path / "named.csv"
    writer = open_writer(out, "csv", custom_fields=names)
    # Every defined field has its column, whether or not the first page holds it.
    writer.write_page([record(1, 1, [8, 9], "VIP")])
    writer.commit()
    writer.close()
    (row,) = read_rows(out)
    assert row["cf_region"] == "North"
    assert row["cf_products"] == "Hardware;Software"
    assert row["cf_account_notes"] == "VIP"
    assert row["cf_renewal_date"] == ""
    assert row["other_custom_fields"] == '{"77":"new field"}'
    assert not any(column.startswith("custom_field_") for column in row)


def test_a_resumed_csv_keeps_its_header_and_finds_the_columns_again(tmp_path: Path) -> None:
    definitions = structure_definitions(list(DEFINITIONS))
    out = tmp_path / "resumed.csv"
    first = open_writer(out, "csv", custom_fields=CustomFieldNames.for_records(definitions))
    first.write_page([record(1, 2, [])])
    committed = first.commit()
    assert isinstance(first, CsvWriter)
    columns = first.columns
    first.close()
    # Renamed between runs: its values go to the JSON column, the header stays.
    renamed = [
        CustomFieldDefinition(id=d.id, name="Territory", data_type=d.data_type,
                              available_on=d.available_on, options=d.options)
        if d.id == 5 else d
        for d in definitions
    ]  # fmt: skip
    second = open_writer(
        out,
        "csv",
        committed=committed,
        columns=columns,
        custom_fields=CustomFieldNames.for_records(renamed),
    )
    second.write_page([record(2, 3, [11])])
    second.commit()
    second.close()
    first_row, second_row = read_rows(out)
    assert first_row["cf_region"] == "South"
    assert second_row["cf_region"] == ""
    assert second_row["cf_products"] == "Support"
    assert second_row["other_custom_fields"] == '{"5":"East","77":"new field"}'
