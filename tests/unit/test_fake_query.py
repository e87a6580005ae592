"""The fake server's body parsing: every filter into a hashable Query, refusals as 400/422."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copper_async.testing import Dataset, Paging, Query, QueryError, parse_search_body
from copper_async.testing._query import DATE_FILTERS, ID_FILTERS, SORT_FIELDS

# The reference's sort list (its footnote 1), spelled out rather than read from the code.
REFERENCE_SORTS = (
    "assignee", "company_name", "customer_source_id", "date_created", "date_modified",
    "inactive_days", "interaction_count", "last_interaction", "monetary_unit",
    "monetary_value", "name", "primary_contact", "priority", "stage", "status",
)  # fmt: skip
NONE_SET_FILTERS = ("assignee_ids", "customer_source_ids", "loss_reason_ids")


def refused(body: object) -> QueryError:
    with pytest.raises(QueryError) as raised:
        parse_search_body(body)
    return raised.value


def test_an_empty_body_is_every_record_by_name_20_a_page() -> None:
    query, paging = parse_search_body({})
    assert query == Query()
    assert (query.sort_field, query.descending) == ("name", False)
    assert paging == Paging(page_number=1, page_size=20)


def test_unknown_keys_are_ignored() -> None:
    assert parse_search_body({"colour": "red", "page_size": 5}) == (Query(), Paging(1, 5))


def test_equal_filters_make_equal_hashable_queries() -> None:
    a, _ = parse_search_body({"ids": [3, 1, 2], "tags": ["x", "y"], "page_number": 4})
    b, _ = parse_search_body({"tags": ["y", "x", "x"], "ids": [1, 2, 3, 3]})
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    c, _ = parse_search_body({"ids": [1, 2]})
    assert c != a


@pytest.mark.parametrize("body", [[], "text", 3, None, [{"ids": [1]}]])
def test_a_body_that_is_not_an_object_is_a_400(body: object) -> None:
    assert refused(body).status == 400


@pytest.mark.parametrize(("page_number", "page_size"), [(1, 1), (1, 200), (7, 20), (10**6, 3)])
def test_paging_within_bounds(page_number: int, page_size: int) -> None:
    _, paging = parse_search_body({"page_number": page_number, "page_size": page_size})
    assert paging == Paging(page_number=page_number, page_size=page_size)


@pytest.mark.parametrize(
    "body",
    [
        {"page_number": 0},
        {"page_number": -1},
        {"page_number": "2"},
        {"page_number": 1.0},
        {"page_number": True},
        {"page_size": 0},
        {"page_size": 201},
        {"page_size": "20"},
        {"page_size": 20.5},
        {"page_size": False},
    ],
)
def test_paging_out_of_bounds_is_a_422_naming_it(body: dict[str, Any]) -> None:
    error = refused(body)
    assert error.status == 422
    assert next(iter(body)) in error.message


@pytest.mark.parametrize("key", list(ID_FILTERS))
def test_id_lists_become_sets_on_the_record_field(key: str) -> None:
    query, _ = parse_search_body({key: [5, 1, 5]})
    assert query.ids == ((ID_FILTERS[key], frozenset({1, 5})),)


@pytest.mark.parametrize("key", list(ID_FILTERS))
def test_minus_two_means_none_set_only_where_documented(key: str) -> None:
    if key in NONE_SET_FILTERS:
        query, _ = parse_search_body({key: [-2, 4]})
        assert dict(query.ids)[ID_FILTERS[key]] == {-2, 4}
    else:
        error = refused({key: [-2]})
        assert (error.status, key in error.message) == (422, True)


@pytest.mark.parametrize("key", list(ID_FILTERS))
@pytest.mark.parametrize("value", [7, "7", [1.5], ["7"], [True], [-1], [None], {"a": 1}])
def test_bad_id_lists_are_422s_naming_the_filter(key: str, value: Any) -> None:
    error = refused({key: value})
    assert error.status == 422
    assert key in error.message


def test_status_names_and_ids_mean_the_same_and_combine_with_and() -> None:
    by_name, _ = parse_search_body({"statuses": ["Won", "Abandoned"]})
    by_id, _ = parse_search_body({"status_ids": [1, 3]})
    assert by_name.statuses == by_id.statuses == frozenset({"Won", "Abandoned"})
    assert parse_search_body({"status_ids": [0, 1, 2, 3]})[0].statuses == frozenset(
        {"Open", "Won", "Lost", "Abandoned"}
    )
    both, _ = parse_search_body({"statuses": ["Open", "Won"], "status_ids": [1, 2]})
    assert both.statuses == frozenset({"Won"})


def test_priority_names_and_ids() -> None:
    assert parse_search_body({"priorities": ["High"]})[0].priorities == frozenset({"High"})
    assert parse_search_body({"priority_ids": [0, 3]})[0].priorities == frozenset({"None", "High"})
    both, _ = parse_search_body({"priorities": ["Low", "High"], "priority_ids": [3]})
    assert both.priorities == frozenset({"High"})


@pytest.mark.parametrize(
    "body",
    [
        {"statuses": ["Closed"]},
        {"statuses": "Open"},
        {"statuses": [["Open"]]},
        {"statuses": [{"name": "Open"}]},
        {"status_ids": [4]},
        {"status_ids": ["0"]},
        {"status_ids": [True]},
        {"priorities": ["Urgent"]},
        {"priorities": [None]},
        {"priority_ids": [9]},
    ],
)
def test_unknown_statuses_and_priorities_are_422s(body: dict[str, Any]) -> None:
    error = refused(body)
    assert error.status == 422
    assert next(iter(body)) in error.message


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["a", "b"], ("ANY", frozenset({"a", "b"}))),
        ({"option": "ANY", "value": ["a"]}, ("ANY", frozenset({"a"}))),
        ({"option": "ALL", "value": ["a", "b"]}, ("ALL", frozenset({"a", "b"}))),
        ({"value": ["a"]}, ("ANY", frozenset({"a"}))),
    ],
)
def test_tags_plain_or_with_an_option(tags: Any, expected: tuple[str, frozenset[str]]) -> None:
    assert parse_search_body({"tags": tags})[0].tags == expected


@pytest.mark.parametrize(
    "tags", ["a", [1], {"option": "SOME", "value": ["a"]}, {"option": "ALL"}, {"value": "a"}]
)
def test_bad_tags_are_422s(tags: Any) -> None:
    error = refused({"tags": tags})
    assert (error.status, "tags" in error.message) == (422, True)


@pytest.mark.parametrize("name", list(DATE_FILTERS))
def test_date_bounds_map_to_their_record_fields(name: str) -> None:
    query, _ = parse_search_body({f"minimum_{name}": 10, f"maximum_{name}": 20})
    assert query.bound(DATE_FILTERS[name]) == (10, 20)
    low_only, _ = parse_search_body({f"minimum_{name}": 10})
    assert low_only.bound(DATE_FILTERS[name]) == (10, None)
    high_only, _ = parse_search_body({f"maximum_{name}": 20.5})
    assert high_only.bound(DATE_FILTERS[name]) == (None, 20.5)


def test_the_reference_names_of_the_date_bounds() -> None:
    assert DATE_FILTERS == {
        "close_date": "close_date",
        "interaction_date": "date_last_contacted",
        "stage_change_date": "date_stage_changed",
        "created_date": "date_created",
        "modified_date": "date_modified",
    }


@pytest.mark.parametrize("name", ["monetary_value", "interaction_count"])
def test_number_bounds(name: str) -> None:
    query, _ = parse_search_body({f"minimum_{name}": 0, f"maximum_{name}": 7.5})
    assert query.bound(name) == (0, 7.5)
    assert query.bound("date_created") == (None, None)


@pytest.mark.parametrize(
    "key", ["minimum_monetary_value", "maximum_close_date", "minimum_created_date"]
)
@pytest.mark.parametrize("value", ["10", True, [1], {"x": 1}])
def test_bounds_must_be_numbers(key: str, value: Any) -> None:
    error = refused({key: value})
    assert (error.status, key in error.message) == (422, True)


def test_name_is_exact_text() -> None:
    assert parse_search_body({"name": "Deal A"})[0].name == "Deal A"
    assert refused({"name": 5}).status == 422


@pytest.mark.parametrize("followed", [1, 2])
def test_followed_is_1_or_2(followed: int) -> None:
    assert parse_search_body({"followed": followed})[0].followed == followed


@pytest.mark.parametrize("followed", [0, 3, "1", True, 1.0, [1]])
def test_other_followed_values_are_422s(followed: Any) -> None:
    error = refused({"followed": followed})
    assert (error.status, "followed" in error.message) == (422, True)


def test_custom_field_filters() -> None:
    body = {
        "custom_fields": [
            {"custom_field_definition_id": 12, "value": [8, 9], "option": "ALL"},
            {"custom_field_definition_id": 5, "value": 3},
            {"custom_field_definition_id": 6, "minimum_value": 1, "maximum_value": 2.5},
            {"custom_field_definition_id": 12, "allow_empty": True},
        ]
    }
    multi, single, dates, empty = parse_search_body(body)[0].custom_fields
    assert (multi.definition_id, multi.values, multi.option) == (12, (8, 9), "ALL")
    assert (single.values, single.option) == ((3,), "ANY")  # a scalar is a one-value list
    assert (dates.values, dates.minimum, dates.maximum) == (None, 1, 2.5)
    assert (empty.allow_empty, empty.values) == (True, None)


@pytest.mark.parametrize(
    "entry",
    [
        "12",
        {"value": [1]},
        {"custom_field_definition_id": 0, "value": [1]},
        {"custom_field_definition_id": "12", "value": [1]},
        {"custom_field_definition_id": 12},
        {"custom_field_definition_id": 12, "value": [1], "option": "NONE"},
        {"custom_field_definition_id": 12, "minimum_value": "1"},
        {"custom_field_definition_id": 12, "maximum_value": True},
        {"custom_field_definition_id": 12, "allow_empty": 1},
        {"custom_field_definition_id": 12, "value": [[8]]},
        {"custom_field_definition_id": 12, "value": {"a": 1}},
    ],
)
def test_bad_custom_field_filters_are_422s_naming_the_entry(entry: Any) -> None:
    error = refused({"custom_fields": [{"custom_field_definition_id": 5, "value": 1}, entry]})
    assert error.status == 422
    assert "custom_fields[1]" in error.message


def test_custom_fields_must_be_an_array() -> None:
    assert refused({"custom_fields": {"custom_field_definition_id": 5}}).status == 422


def test_every_sort_of_the_reference_is_accepted_in_both_directions() -> None:
    assert sorted(SORT_FIELDS) == sorted(REFERENCE_SORTS)
    for sort_by in REFERENCE_SORTS:
        for direction, descending in (("asc", False), ("desc", True)):
            body = {"sort_by": sort_by, "sort_direction": direction}
            query, _ = parse_search_body(body)
            assert (query.sort_field, query.descending) == (sort_by, descending)


@pytest.mark.parametrize(
    "body",
    [
        {"sort_by": "colour"},
        {"sort_by": ["name"]},
        {"sort_by": None},
        {"sort_direction": "up"},
        {"sort_direction": ["asc"]},
    ],
)
def test_unknown_sorts_are_422s(body: dict[str, Any]) -> None:
    error = refused(body)
    assert (error.status, next(iter(body)) in error.message) == (422, True)


# -- any JSON at all: a Query or a QueryError, never a crash ------------------------------

_KEYS = [
    *ID_FILTERS,
    *(f"{end}_{name}" for name in (*DATE_FILTERS, "monetary_value", "interaction_count")
      for end in ("minimum", "maximum")),
    "statuses", "status_ids", "priorities", "priority_ids", "tags", "name", "followed",
    "custom_fields", "sort_by", "sort_direction", "page_number", "page_size",
    "option", "value", "custom_field_definition_id", "allow_empty",
    "minimum_value", "maximum_value",
]  # fmt: skip
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 205)
    | st.floats(-5, 5, allow_nan=False)
    | st.sampled_from(["Open", "High", "ANY", "ALL", "name", "desc", "tag1", ""])
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(_KEYS), inner),
    max_leaves=12,
)
_TINY = Dataset.generate(30, seed=3)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(_KEYS), _JSON, max_size=6) | _JSON)
def test_any_json_is_a_hashable_query_or_a_refusal(body: Any) -> None:
    try:
        query, paging = parse_search_body(body)
    except QueryError as error:
        outcome: QueryError | tuple[Query, Paging] = error
    else:
        outcome = (query, paging)
    if isinstance(outcome, QueryError):
        assert outcome.status in (400, 422)
        assert outcome.message
    else:
        hash(outcome[0])
        assert 1 <= outcome[1].page_size <= 200
        _TINY.search(outcome[0])  # and the search over it does not crash either
