"""Tests for copper_async.filters: construction, validation, bodies, round trips."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from copper_async.exceptions import InvalidFilterError
from copper_async.filters import (
    DEFAULT_PAGE_SIZE,
    FOLLOWED,
    MAX_PAGE_SIZE,
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
    NONE_SET,
    NOT_FOLLOWED,
    PRIORITIES,
    SORT_DIRECTIONS,
    SORT_FIELDS,
    STATUS_IDS,
    STATUSES,
    CustomFieldFilter,
    DateField,
    MatchOption,
    OpportunityFilter,
    Paging,
    Priority,
    SortDirection,
    SortField,
    Status,
    TagFilter,
    paging_from_body,
)
from tests.reference import REFERENCE_PAGE, reference_examples

UTC_PLUS_1 = timezone(timedelta(hours=1))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Each reference example, built as a user would write it (mixing the accepted forms).
EXAMPLE_FILTERS: list[tuple[str, int, OpportunityFilter]] = [
    ("Opportunities Search", 25, OpportunityFilter(sort_by="name")),
    ("Search by Assignee Ids", 25, OpportunityFilter(sort_by="name", assignee_ids=[2])),
    (
        "Search by Priorities",
        25,
        OpportunityFilter(sort_by=SortField.NAME, priorities=[Priority.HIGH]),
    ),
    (
        "Search by Date Stage Changed",
        25,
        OpportunityFilter(
            sort_by="name",
            minimum_stage_change_date=1515434869,
            maximum_stage_change_date=datetime(2018, 1, 8, 18, 7, 49, tzinfo=UTC),
        ),
    ),
    (
        "Search by Value",
        25,
        OpportunityFilter(
            sort_by="name", minimum_monetary_value=75000, maximum_monetary_value=75000
        ),
    ),
    (
        "Search by Pipeline Stage Ids",
        25,
        OpportunityFilter(sort_by="name", pipeline_stage_ids=(13,)),
    ),
    (
        "Search by Primary Contact Ids",
        25,
        OpportunityFilter(sort_by="name", primary_contact_ids=[25]),
    ),
    ("Search by Statuses", 25, OpportunityFilter(sort_by="name", statuses=[Status.OPEN])),
    ("Search by Company Ids", 25, OpportunityFilter(sort_by="name", company_ids=[3])),
    (
        "Search by Loss Reason Ids",
        25,
        OpportunityFilter(sort_by="name", loss_reason_ids=[NONE_SET]),
    ),
    (
        "Search by Tags",
        25,
        OpportunityFilter(sort_by="name", tags=TagFilter(option="ANY", value=["tag1"])),
    ),
    ("List Opportunities in Groups of 200", 200, OpportunityFilter(sort_by="name")),
    (
        "Search by Close Date",
        25,
        OpportunityFilter(
            sort_by="name",
            minimum_close_date=date(2018, 1, 13),
            maximum_close_date=date(2018, 1, 14),
        ),
    ),
    (
        "Search by Date Last Interacted",
        25,
        OpportunityFilter(
            sort_by="name",
            minimum_interaction_date=datetime(2018, 1, 8, 18, 7, 50, tzinfo=UTC),
            maximum_interaction_date=datetime(2018, 1, 23, 21, 1, 25, tzinfo=UTC_PLUS_1),
        ),
    ),
    (
        "Search by Name",
        25,
        OpportunityFilter(sort_by="name", name="25 Office Chairs (sample)"),
    ),
    ("Search by Followed", 25, OpportunityFilter(sort_by="name", followed=FOLLOWED)),
    (
        "Search by Interaction Count",
        25,
        OpportunityFilter(sort_by="name", minimum_interaction_count=2, maximum_interaction_count=2),
    ),
    (
        "Search by Customer Source Ids",
        25,
        OpportunityFilter(sort_by="name", customer_source_ids=[5]),
    ),
    (
        "Search by Created Date",
        25,
        OpportunityFilter(
            sort_by="name", minimum_created_date=1515434870, maximum_created_date=1515434870
        ),
    ),
    (
        "Search by Custom Date Field",
        25,
        OpportunityFilter(
            sort_by="name",
            custom_fields=[
                CustomFieldFilter(
                    custom_field_definition_id=6,
                    minimum_value=datetime(2018, 1, 12, 8, tzinfo=UTC),
                    maximum_value=1515744000,
                )
            ],
        ),
    ),
    (
        "Search by Custom Multi-Select Dropdown",
        25,
        OpportunityFilter(
            sort_by="name",
            custom_fields=[
                CustomFieldFilter(custom_field_definition_id=12, value=[8], option=MatchOption.ANY)
            ],
        ),
    ),
    (
        "Search by Multi-Select Dropdown Set to Empty",
        25,
        OpportunityFilter(
            sort_by="name",
            custom_fields=[CustomFieldFilter(custom_field_definition_id=12, allow_empty=True)],
        ),
    ),
]


def _example_body(title: str) -> dict[str, Any]:
    (body,) = [example.body for example in reference_examples() if example.title == title]
    return body


def _filter_field_names() -> set[str]:
    return {attribute.name for attribute in attrs.fields(OpportunityFilter)}


# --- the reference page ---------------------------------------------------------------------


def test_every_reference_example_has_an_explicit_filter() -> None:
    titles = [title for title, _, _ in EXAMPLE_FILTERS]
    assert len(titles) == len(set(titles)) == 22
    assert sorted(titles) == sorted(example.title for example in reference_examples())


@pytest.mark.parametrize(
    ("title", "page_size", "search"),
    [pytest.param(*entry, id=entry[0]) for entry in EXAMPLE_FILTERS],
)
def test_filter_produces_the_documented_body(
    title: str, page_size: int, search: OpportunityFilter
) -> None:
    body = _example_body(title)
    assert body["page_size"] == page_size
    # The examples leave page_number to Copper's default 1; so does page_number=None.
    assert "page_number" not in body
    documented = search.to_body(page_number=None, page_size=page_size)
    assert documented == body
    assert orjson.dumps(documented) == orjson.dumps(body), "same keys, order and JSON types"
    assert search.to_body(page_size=page_size) == {**body, "page_number": 1}


@pytest.mark.parametrize(
    ("title", "page_size", "search"),
    [pytest.param(*entry, id=entry[0]) for entry in EXAMPLE_FILTERS],
)
def test_reference_body_parses_and_reserialises(
    title: str, page_size: int, search: OpportunityFilter
) -> None:
    body = _example_body(title)
    parsed = OpportunityFilter.from_body(body)
    assert parsed == search
    assert parsed.to_body(page_size=page_size) == {**body, "page_number": 1}
    assert OpportunityFilter.from_body(parsed.to_body(page_size=page_size)) == parsed


def test_every_table_field_is_an_attribute_named_as_its_body_key() -> None:
    rows = re.findall(r"^([a-z_]+) \| [^|]+ \|", REFERENCE_PAGE.read_text(), flags=re.MULTILINE)
    table_keys = set(rows) - {"page_number", "page_size"}
    assert table_keys <= _filter_field_names()
    assert _filter_field_names() - table_keys == {"statuses", "priorities", "custom_fields"}


def test_sort_fields_are_the_reference_footnote() -> None:
    text = REFERENCE_PAGE.read_text()
    footnote = text[text.index("sort_by\nfields are:") : text.index("Request body")]
    assert sorted(SORT_FIELDS) == sorted(re.findall(r"[a-z_]+", footnote.split(":", 1)[1]))
    assert set(SORT_DIRECTIONS) == {"asc", "desc"}


def test_named_values() -> None:
    assert STATUSES == ("Open", "Won", "Lost", "Abandoned")
    assert PRIORITIES == ("None", "Low", "Medium", "High")
    assert [STATUS_IDS[name] for name in STATUSES] == [0, 1, 2, 3]
    assert (NONE_SET, FOLLOWED, NOT_FOLLOWED) == (-2, 1, 2)
    assert MAX_PAGE_SIZE == DEFAULT_PAGE_SIZE == 200


# --- bodies ---------------------------------------------------------------------------------


def test_empty_filter_sends_only_paging() -> None:
    assert OpportunityFilter().to_body() == {"page_size": DEFAULT_PAGE_SIZE, "page_number": 1}
    assert OpportunityFilter().to_body(page_number=7, page_size=50) == {
        "page_size": 50,
        "page_number": 7,
    }


def test_sort_is_sent_only_when_set() -> None:
    body = OpportunityFilter(sort_by="date_modified", sort_direction="desc").to_body()
    assert (body["sort_by"], body["sort_direction"]) == ("date_modified", "desc")
    assert "sort_direction" not in OpportunityFilter(sort_by="name").to_body()
    assert "sort_by" not in OpportunityFilter(sort_direction=SortDirection.ASC).to_body()


def test_plain_tags_are_sent_as_a_list_and_tag_filters_as_an_object() -> None:
    assert OpportunityFilter(tags=["a", "b"]).to_body()["tags"] == ["a", "b"]
    assert OpportunityFilter(tags=TagFilter(value=("a",), option="ALL")).to_body()["tags"] == {
        "option": "ALL",
        "value": ["a"],
    }
    assert TagFilter(value=["a"]).option == "ANY"


def test_custom_field_entries_send_only_their_set_keys() -> None:
    entries = [
        CustomFieldFilter(custom_field_definition_id=3, value=True),
        CustomFieldFilter(custom_field_definition_id=4, value=[1, 2], allow_empty=True),
        CustomFieldFilter(custom_field_definition_id=5, maximum_value=2.5),
    ]
    assert OpportunityFilter(custom_fields=entries).to_body()["custom_fields"] == [
        {"custom_field_definition_id": 3, "value": True},
        {"custom_field_definition_id": 4, "value": [1, 2], "allow_empty": True},
        {"custom_field_definition_id": 5, "maximum_value": 2.5},
    ]


def test_from_body_ignores_paging_and_paging_from_body_returns_it() -> None:
    body = {"page_size": 50, "page_number": 3, "ids": [4]}
    assert OpportunityFilter.from_body(body) == OpportunityFilter(ids=[4])
    assert paging_from_body(body) == Paging(page_number=3, page_size=50) == (3, 50)
    assert paging_from_body({"ids": [4]}) == (None, None)
    assert paging_from_body({"page_size": 25}) == Paging(page_number=None, page_size=25)


def test_from_body_reads_null_as_unset() -> None:
    assert OpportunityFilter.from_body({"ids": None, "sort_by": None}) == OpportunityFilter()


# --- normalisation --------------------------------------------------------------------------


def test_iterables_are_stored_as_tuples_and_filters_are_hashable() -> None:
    search = OpportunityFilter(
        ids=(n for n in (3, 1)),
        assignee_ids=range(1, 3),
        company_ids={7},
        tags=iter(["x"]),
        statuses=["Won"],
    )
    assert search.ids == (3, 1)
    assert search.assignee_ids == (1, 2)
    assert search.company_ids == (7,)
    assert search.tags == ("x",)
    assert search.statuses == ("Won",)
    assert hash(search) == hash(OpportunityFilter.from_body(search.to_body()))
    assert len({search, OpportunityFilter.from_body(search.to_body())}) == 1


def test_enum_members_are_stored_as_plain_values() -> None:
    class Owner(enum.IntEnum):
        ALICE = 5

    search = OpportunityFilter(
        statuses=[Status.LOST],
        priorities=[Priority.NONE],
        sort_by=SortField.STAGE,
        sort_direction=SortDirection.DESC,
        assignee_ids=[Owner.ALICE],
        tags=TagFilter(value=["t"], option=MatchOption.ALL),
    )
    stored = [*(search.statuses or ()), *(search.priorities or ()), search.sort_by]
    assert [type(value) for value in stored] == [str, str, str]
    assert type(search.sort_direction) is str
    assert type((search.assignee_ids or ())[0]) is int
    assert isinstance(search.tags, TagFilter)
    assert type(search.tags.option) is str
    assert orjson.loads(orjson.dumps(search.to_body()))["statuses"] == ["Lost"]


def test_a_date_means_midnight_utc() -> None:
    search = OpportunityFilter(
        minimum_created_date=date(2018, 1, 13), maximum_created_date=date(2018, 1, 13)
    )
    midnight = datetime.combine(date(2018, 1, 13), time(), tzinfo=UTC)
    assert search.date_bounds(DateField.CREATED) == (
        int(midnight.timestamp()),
        int(midnight.timestamp()),
    )


@given(
    moment=st.datetimes(
        min_value=datetime(2, 1, 1),
        max_value=datetime(9998, 12, 31),
        timezones=st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m))),
    )
)
def test_aware_datetimes_become_the_whole_seconds_inside_the_bounds(moment: datetime) -> None:
    low = OpportunityFilter(minimum_modified_date=moment).minimum_modified_date
    high = OpportunityFilter(maximum_modified_date=moment).maximum_modified_date
    assert isinstance(low, int)
    assert isinstance(high, int)
    second = timedelta(seconds=1)
    # the lower bound rounds up, the upper bound down: no earlier/later second matches
    assert EPOCH + (low - 1) * second < moment <= EPOCH + low * second
    assert EPOCH + high * second <= moment < EPOCH + (high + 1) * second


@given(day=st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
def test_any_date_is_its_utc_midnight(day: date) -> None:
    bound = OpportunityFilter(maximum_close_date=day).maximum_close_date
    assert bound is not None
    assert EPOCH + timedelta(seconds=bound) == datetime.combine(day, time(), tzinfo=UTC)


def test_custom_field_bounds_take_dates_too() -> None:
    entry = CustomFieldFilter(
        custom_field_definition_id=6,
        minimum_value=datetime(2018, 1, 12, 9, 0, 0, 500, tzinfo=UTC_PLUS_1),
        maximum_value=date(2018, 1, 13),
    )
    assert entry.minimum_value == datetime(2018, 1, 12, 8, 0, 1, tzinfo=UTC).timestamp()
    assert entry.maximum_value == datetime(2018, 1, 13, tzinfo=UTC).timestamp()
    assert type(entry.minimum_value) is int


def test_repr_names_only_the_fields_that_are_set() -> None:
    text = repr(OpportunityFilter(ids=[1], sort_by="name"))
    assert text == "OpportunityFilter(ids=(1,), sort_by='name')"
    entry = CustomFieldFilter(custom_field_definition_id=2, allow_empty=True)
    assert repr(entry) == "CustomFieldFilter(custom_field_definition_id=2, allow_empty=True)"


# --- date fields, windows and sort ----------------------------------------------------------


def test_date_fields_describe_their_bounds_records_and_sort() -> None:
    assert {field: field.record_key for field in DateField} == {
        DateField.CREATED: "date_created",
        DateField.MODIFIED: "date_modified",
        DateField.CLOSE: "close_date",
        DateField.INTERACTION: "date_last_contacted",
        DateField.STAGE_CHANGE: "date_stage_changed",
    }
    assert DateField.CREATED.minimum_key == "minimum_created_date"
    assert DateField.STAGE_CHANGE.maximum_key == "maximum_stage_change_date"
    assert {(field.minimum_key, field.maximum_key) for field in DateField} <= {
        (f"minimum_{name[8:]}", name) for name in _filter_field_names() if name[:8] == "maximum_"
    }
    assert [field for field in DateField if field.splittable] == [
        DateField.CREATED,
        DateField.MODIFIED,
    ]
    assert {field: field.sort_by for field in DateField if field.sort_by} == {
        DateField.CREATED: "date_created",
        DateField.MODIFIED: "date_modified",
    }
    assert all(field.sort_by in SORT_FIELDS for field in DateField if field.sort_by)


def _record_seconds(value: int | str) -> int:
    if isinstance(value, int):
        return value
    month, day, year = map(int, value.split("/"))  # close_date is M/D/YYYY at midnight UTC
    return int(datetime(year, month, day, tzinfo=UTC).timestamp())


def test_date_bounds_match_the_record_keys_in_the_reference_answers() -> None:
    checked = 0
    for example in reference_examples():
        search = OpportunityFilter.from_body(example.body)
        for field in DateField:
            low, high = search.date_bounds(field)
            if low is None and high is None:
                continue
            for record in example.records:
                seconds = _record_seconds(record[field.record_key])
                assert low is None or low <= seconds
                assert high is None or seconds <= high
                checked += 1
    assert checked >= 4


def test_splittable_date_fields_are_never_null_in_the_reference_records() -> None:
    records = [record for example in reference_examples() for record in example.records]
    for field in DateField:
        if field.splittable:
            assert all(isinstance(record[field.record_key], int) for record in records)


def test_with_date_bounds_returns_a_new_validated_filter() -> None:
    search = OpportunityFilter(statuses=["Open"], minimum_created_date=10)
    narrowed = search.with_date_bounds(DateField.MODIFIED, 5, 9)
    assert narrowed.date_bounds(DateField.MODIFIED) == (5, 9)
    assert narrowed.date_bounds(DateField.CREATED) == (10, None)
    assert narrowed.statuses == ("Open",)
    assert search.date_bounds(DateField.MODIFIED) == (None, None)
    assert narrowed.with_date_bounds(DateField.CREATED, None, None).to_body() == {
        "page_size": DEFAULT_PAGE_SIZE,
        "page_number": 1,
        "statuses": ["Open"],
        "minimum_modified_date": 5,
        "maximum_modified_date": 9,
    }
    with pytest.raises(InvalidFilterError) as raised:
        search.with_date_bounds(DateField.CREATED, 10, 9)
    assert raised.value.field == "minimum_created_date"


def test_with_sort_replaces_the_sort() -> None:
    search = OpportunityFilter(ids=[1], sort_by="name")
    resorted = search.with_sort("date_created", "asc")
    assert (resorted.sort_by, resorted.sort_direction, resorted.ids) == (
        "date_created",
        "asc",
        (1,),
    )
    assert search.sort_by == "name"
    assert search.with_sort(None, None).to_body().keys() == {"page_size", "page_number", "ids"}
    with pytest.raises(InvalidFilterError) as raised:
        search.with_sort("created", None)
    assert raised.value.field == "sort_by"


# --- invalid input --------------------------------------------------------------------------

_MIN_MAX_CASES = [
    ("minimum_monetary_value", 10, "maximum_monetary_value", 9.5),
    ("minimum_interaction_count", 3, "maximum_interaction_count", 2),
    *[(field.minimum_key, 2, field.maximum_key, 1) for field in DateField],
]

INVALID_FILTERS: list[tuple[dict[str, Any], str]] = [
    ({"ids": "123"}, "ids"),
    ({"ids": b"12"}, "ids"),
    ({"ids": {1: 2}}, "ids"),
    ({"ids": 5}, "ids"),
    ({"ids": []}, "ids"),
    ({"ids": [1, 0]}, "ids[1]"),
    ({"ids": [1, NONE_SET]}, "ids[1]"),
    ({"company_ids": [NONE_SET]}, "company_ids[0]"),
    ({"pipeline_ids": ["4"]}, "pipeline_ids[0]"),
    ({"assignee_ids": [2, True]}, "assignee_ids[1]"),
    ({"assignee_ids": [2, -3]}, "assignee_ids[1]"),
    ({"customer_source_ids": [1.0]}, "customer_source_ids[0]"),
    ({"loss_reason_ids": [None]}, "loss_reason_ids[0]"),
    ({"status_ids": [4]}, "status_ids[0]"),
    ({"status_ids": [0, NONE_SET]}, "status_ids[1]"),
    ({"priority_ids": [0]}, "priority_ids[0]"),
    ({"statuses": ["open"]}, "statuses[0]"),
    ({"statuses": "Open"}, "statuses"),
    ({"priorities": ["High", "Urgent"]}, "priorities[1]"),
    ({"name": ""}, "name"),
    ({"name": "  "}, "name"),
    ({"name": 5}, "name"),
    ({"tags": "tag1"}, "tags"),
    ({"tags": ["a", ""]}, "tags[1]"),
    ({"tags": {"option": "ANY", "value": ["tag1"]}}, "tags"),
    ({"followed": 3}, "followed"),
    ({"followed": True}, "followed"),
    ({"followed": "1"}, "followed"),
    ({"minimum_monetary_value": True}, "minimum_monetary_value"),
    ({"maximum_monetary_value": "5"}, "maximum_monetary_value"),
    ({"minimum_monetary_value": math.nan}, "minimum_monetary_value"),
    ({"maximum_monetary_value": math.inf}, "maximum_monetary_value"),
    # Integers JSON cannot carry in 64 bits: named here, not by the encoder as "body".
    ({"minimum_monetary_value": 10**400}, "minimum_monetary_value"),
    ({"maximum_monetary_value": 2**64}, "maximum_monetary_value"),
    ({"ids": [1, 2**63]}, "ids[1]"),
    ({"company_ids": [2**64]}, "company_ids[0]"),
    ({"maximum_interaction_count": 2**63}, "maximum_interaction_count"),
    ({"name": "a\ud800"}, "name"),
    ({"tags": ["a", "\udfff"]}, "tags[1]"),
    ({"minimum_interaction_count": 1.5}, "minimum_interaction_count"),
    ({"maximum_interaction_count": -1}, "maximum_interaction_count"),
    ({"maximum_interaction_count": False}, "maximum_interaction_count"),
    ({"minimum_created_date": datetime(2020, 1, 1)}, "minimum_created_date"),
    ({"maximum_modified_date": datetime(2020, 1, 1, 12)}, "maximum_modified_date"),
    ({"maximum_close_date": 1.5e9}, "maximum_close_date"),
    ({"minimum_interaction_date": True}, "minimum_interaction_date"),
    ({"maximum_interaction_date": "2018-01-01"}, "maximum_interaction_date"),
    ({"minimum_stage_change_date": MAX_TIMESTAMP + 1}, "minimum_stage_change_date"),
    ({"maximum_stage_change_date": MIN_TIMESTAMP - 1}, "maximum_stage_change_date"),
    *[({low: a, high: b}, low) for low, a, high, b in _MIN_MAX_CASES],
    (
        {"custom_fields": [{"custom_field_definition_id": 1, "allow_empty": True}]},
        "custom_fields[0]",
    ),
    ({"custom_fields": []}, "custom_fields"),
    (
        {"custom_fields": CustomFieldFilter(custom_field_definition_id=1, allow_empty=True)},
        "custom_fields",
    ),
    ({"sort_by": "created"}, "sort_by"),
    ({"sort_by": 1}, "sort_by"),
    ({"sort_direction": "ASC"}, "sort_direction"),
]


@pytest.mark.parametrize(
    ("arguments", "field"), [pytest.param(*case, id=repr(case[0])) for case in INVALID_FILTERS]
)
def test_invalid_filter_names_the_field(arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidFilterError) as raised:
        OpportunityFilter(**arguments)
    assert raised.value.field == field
    assert raised.value.reason
    assert isinstance(raised.value, ValueError)


INVALID_TAG_FILTERS: list[tuple[dict[str, Any], str]] = [
    ({"value": []}, "value"),
    ({"value": "tag"}, "value"),
    ({"value": [3]}, "value[0]"),
    ({"value": None}, "value"),
    ({"value": ["a"], "option": "NONE"}, "option"),
    ({"value": ["a"], "option": "any"}, "option"),
    ({"value": ["a"], "option": None}, "option"),
]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [pytest.param(*case, id=repr(case[0])) for case in INVALID_TAG_FILTERS],
)
def test_invalid_tag_filter_names_the_field(arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidFilterError) as raised:
        TagFilter(**arguments)
    assert raised.value.field == field


INVALID_CUSTOM_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"custom_field_definition_id": 0, "allow_empty": True}, "custom_field_definition_id"),
    ({"custom_field_definition_id": True, "allow_empty": True}, "custom_field_definition_id"),
    ({"custom_field_definition_id": None, "allow_empty": True}, "custom_field_definition_id"),
    ({"custom_field_definition_id": 1}, "value"),
    ({"custom_field_definition_id": 1, "allow_empty": False}, "value"),
    ({"custom_field_definition_id": 1, "value": [8], "option": "NONE"}, "option"),
    ({"custom_field_definition_id": 1, "option": "ANY", "allow_empty": True}, "option"),
    ({"custom_field_definition_id": 1, "value": True, "option": "ALL"}, "option"),
    ({"custom_field_definition_id": 1, "value": [8, 0]}, "value[1]"),
    ({"custom_field_definition_id": 1, "value": []}, "value"),
    ({"custom_field_definition_id": 1, "value": "8"}, "value"),
    ({"custom_field_definition_id": 1, "value": [8], "minimum_value": 1}, "value"),
    ({"custom_field_definition_id": 1, "minimum_value": 5, "maximum_value": 1}, "minimum_value"),
    ({"custom_field_definition_id": 1, "minimum_value": True}, "minimum_value"),
    ({"custom_field_definition_id": 1, "maximum_value": math.nan}, "maximum_value"),
    ({"custom_field_definition_id": 1, "minimum_value": 10**400}, "minimum_value"),
    ({"custom_field_definition_id": 1, "maximum_value": -(2**64)}, "maximum_value"),
    ({"custom_field_definition_id": 2**63, "allow_empty": True}, "custom_field_definition_id"),
    ({"custom_field_definition_id": 1, "value": [8, 2**64]}, "value[1]"),
    ({"custom_field_definition_id": 1, "maximum_value": datetime(2020, 1, 1)}, "maximum_value"),
    ({"custom_field_definition_id": 1, "allow_empty": "yes"}, "allow_empty"),
]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [pytest.param(*case, id=repr(case[0])) for case in INVALID_CUSTOM_FIELDS],
)
def test_invalid_custom_field_names_the_field(arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidFilterError) as raised:
        CustomFieldFilter(**arguments)
    assert raised.value.field == field


INVALID_BODIES: list[tuple[Any, str]] = [
    ([{"ids": [1]}], "body"),
    ({"page_size": 25, "bogus": 1}, "bogus"),
    ({"page_size": 500}, "page_size"),
    ({"page_size": True}, "page_size"),
    ({"page_number": 0}, "page_number"),
    ({"ids": "1"}, "ids"),
    ({"ids": [1, "2"]}, "ids[1]"),
    ({"minimum_monetary_value": 10**400}, "minimum_monetary_value"),
    ({"minimum_created_date": "2020-01-01"}, "minimum_created_date"),
    ({"minimum_created_date": 10, "maximum_created_date": 5}, "minimum_created_date"),
    ({"tags": {"option": "SOME", "value": ["a"]}}, "tags.option"),
    ({"tags": {"value": ["a"], "extra": 1}}, "tags.extra"),
    ({"tags": {"option": "ANY"}}, "tags.value"),
    ({"tags": {"option": "ANY", "value": ["a", 1]}}, "tags.value[1]"),
    (
        {
            "custom_fields": [
                {"custom_field_definition_id": 12, "value": [8], "option": "ANY"},
                {"custom_field_definition_id": 12, "value": [1], "option": "NONE"},
            ]
        },
        "custom_fields[1].option",
    ),
    ({"custom_fields": [{"value": [1]}]}, "custom_fields[0].custom_field_definition_id"),
    (
        {"custom_fields": [{"custom_field_definition_id": 3, "colour": 1}]},
        "custom_fields[0].colour",
    ),
    ({"custom_fields": [{"custom_field_definition_id": 3}]}, "custom_fields[0].value"),
    ({"custom_fields": [5]}, "custom_fields[0]"),
    ({"custom_fields": {"custom_field_definition_id": 3}}, "custom_fields"),
    (
        {"custom_fields": [{"custom_field_definition_id": 3, "value": [1, -1]}]},
        "custom_fields[0].value[1]",
    ),
]


@pytest.mark.parametrize(
    ("body", "field"), [pytest.param(*case, id=repr(case[0])) for case in INVALID_BODIES]
)
def test_invalid_body_names_the_field(body: Any, field: str) -> None:
    with pytest.raises(InvalidFilterError) as raised:
        OpportunityFilter.from_body(body)
    assert raised.value.field == field
    assert field in str(raised.value)


@pytest.mark.parametrize(
    ("paging", "field"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": MAX_PAGE_SIZE + 1}, "page_size"),
        ({"page_size": True}, "page_size"),
        ({"page_size": 25.0}, "page_size"),
        ({"page_number": 0}, "page_number"),
        ({"page_number": -1}, "page_number"),
        ({"page_number": "1"}, "page_number"),
        ({"page_number": 2**63}, "page_number"),
    ],
)
def test_invalid_paging_names_the_field(paging: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidFilterError) as raised:
        OpportunityFilter(ids=[1]).to_body(**paging)
    assert raised.value.field == field
    with pytest.raises(InvalidFilterError) as raised:
        paging_from_body(paging)
    assert raised.value.field == field


# --- round trips ----------------------------------------------------------------------------

_ids = st.integers(1, 2**53)
_text = st.text(min_size=1, max_size=12).filter(str.strip)
_finite = st.one_of(
    st.integers(-(10**12), 10**12), st.floats(allow_nan=False, allow_infinity=False)
)
_timestamps = st.integers(MIN_TIMESTAMP, MAX_TIMESTAMP)


@st.composite
def _pair(draw: st.DrawFn, elements: st.SearchStrategy[Any]) -> tuple[Any, Any]:
    low, high = draw(st.none() | elements), draw(st.none() | elements)
    if low is not None and high is not None and low > high:
        low, high = high, low
    return low, high


@st.composite
def _custom_field(draw: st.DrawFn) -> CustomFieldFilter:
    kind = draw(st.sampled_from(["options", "checkbox", "range", "empty"]))
    allow_empty = draw(st.sampled_from([None, True, False]))
    if kind == "options":
        return CustomFieldFilter(
            custom_field_definition_id=draw(_ids),
            value=draw(st.lists(_ids, min_size=1, max_size=3)),
            option=draw(st.none() | st.sampled_from(list(MatchOption))),
            allow_empty=allow_empty,
        )
    if kind == "checkbox":
        return CustomFieldFilter(custom_field_definition_id=draw(_ids), value=draw(st.booleans()))
    if kind == "range":
        low, high = draw(_pair(_finite).filter(lambda pair: pair != (None, None)))
        return CustomFieldFilter(
            custom_field_definition_id=draw(_ids), minimum_value=low, maximum_value=high
        )
    return CustomFieldFilter(custom_field_definition_id=draw(_ids), allow_empty=True)


def _filters() -> st.SearchStrategy[OpportunityFilter]:
    ids, none_set_ids = (
        st.lists(_ids, min_size=1, max_size=3),
        st.lists(_ids | st.just(NONE_SET), min_size=1, max_size=3),
    )
    # Optional keys: each example sets a few fields, as real filters do, and
    # generation stays cheap.
    fields: dict[str, st.SearchStrategy[Any]] = {
        "ids": ids,
        "name": _text,
        "assignee_ids": none_set_ids,
        "status_ids": st.lists(st.sampled_from(list(STATUS_IDS.values())), min_size=1),
        "statuses": st.lists(st.sampled_from([*STATUSES, *Status]), min_size=1, max_size=4),
        "pipeline_ids": ids,
        "pipeline_stage_ids": ids,
        "primary_contact_ids": ids,
        "priority_ids": ids,
        "priorities": st.lists(st.sampled_from(PRIORITIES), min_size=1, max_size=4),
        "customer_source_ids": none_set_ids,
        "loss_reason_ids": none_set_ids,
        "company_ids": ids,
        "tags": st.lists(_text, min_size=1, max_size=3)
        | st.builds(
            TagFilter,
            value=st.lists(_text, min_size=1, max_size=3),
            option=st.sampled_from(["ANY", "ALL", *MatchOption]),
        ),
        "followed": st.sampled_from([FOLLOWED, NOT_FOLLOWED]),
        "custom_fields": st.lists(_custom_field(), min_size=1, max_size=3),
        "sort_by": st.sampled_from([*SORT_FIELDS, *SortField]),
        "sort_direction": st.sampled_from(SORT_DIRECTIONS),
        "monetary_value": _pair(_finite),
        "interaction_count": _pair(st.integers(0, 10**6)),
        **{f"{field.value}_date": _pair(_timestamps) for field in DateField},
    }

    def build(arguments: dict[str, Any]) -> OpportunityFilter:
        for suffix in (
            "monetary_value",
            "interaction_count",
            *(f"{f.value}_date" for f in DateField),
        ):
            if suffix in arguments:
                arguments[f"minimum_{suffix}"], arguments[f"maximum_{suffix}"] = arguments.pop(
                    suffix
                )
        return OpportunityFilter(**arguments)

    return st.fixed_dictionaries({}, optional=fields).map(build)


_paging = st.tuples(st.integers(1, 10**6), st.integers(1, MAX_PAGE_SIZE))


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item)


@given(search=_filters(), paging=_paging)
def test_round_trip_through_the_body(search: OpportunityFilter, paging: tuple[int, int]) -> None:
    page_number, page_size = paging
    body = search.to_body(page_number=page_number, page_size=page_size)
    assert OpportunityFilter.from_body(body) == search
    assert paging_from_body(body) == (page_number, page_size)
    # and through JSON text, as bodies travel and sit in files
    assert OpportunityFilter.from_body(orjson.loads(orjson.dumps(body))) == search
    # the body holds paging and exactly the fields that are set, with lists, not tuples
    set_fields = {name for name in _filter_field_names() if getattr(search, name) is not None}
    assert body.keys() == set_fields | {"page_size", "page_number"}
    assert all(not isinstance(value, tuple) for value in _walk(body))


@given(search=_filters(), field=st.sampled_from(list(DateField)), data=st.data())
def test_with_date_bounds_round_trips_through_date_bounds(
    search: OpportunityFilter, field: DateField, data: st.DataObject
) -> None:
    low, high = data.draw(_pair(_timestamps))
    narrowed = search.with_date_bounds(field, low, high)
    assert narrowed.date_bounds(field) == (low, high)
    others = [other for other in DateField if other is not field]
    assert [narrowed.date_bounds(other) for other in others] == [
        search.date_bounds(other) for other in others
    ]
    assert narrowed.with_date_bounds(field, *search.date_bounds(field)) == search
