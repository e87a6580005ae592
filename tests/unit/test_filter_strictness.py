"""Filters refuse keys Copper does not document, naming them, before any request."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from copper_async.exceptions import InvalidFilterError
from copper_async.filters import CustomFieldFilter, OpportunityFilter, TagFilter


def _raise_for(build: Callable[[], Any]) -> InvalidFilterError:
    with pytest.raises(InvalidFilterError) as raised:
        build()
    return raised.value


def test_an_unknown_keyword_is_an_invalid_filter_error_naming_it() -> None:
    error = _raise_for(lambda: OpportunityFilter(unknown=1))  # type: ignore[call-arg]
    assert error.field == "unknown"
    assert "unknown field" in str(error)
    assert "did you mean" not in str(error)


@pytest.mark.parametrize(
    ("build", "field", "suggestion"),
    [
        # Deliberate misuse: type checkers refuse these calls, the runtime must too.
        (lambda: OpportunityFilter(minimum_date_modified=5), "minimum_date_modified",  # type: ignore[call-arg]
         "minimum_modified_date"),
        (lambda: OpportunityFilter(status=["Open"]), "status", "statuses"),  # type: ignore[call-arg]
        (lambda: TagFilter(values=["vip"]), "values", "value"),  # type: ignore[call-arg]
        (lambda: CustomFieldFilter(custom_field_definition_id=12, valu=[8]), "valu", "value"),  # type: ignore[call-arg]
    ],
)  # fmt: skip
def test_a_misspelt_keyword_names_the_filter_it_resembles(
    build: Callable[[], Any], field: str, suggestion: str
) -> None:
    error = _raise_for(build)
    assert error.field == field
    assert f"did you mean {suggestion!r}" in str(error)


def test_from_body_refuses_the_misspelling_real_connectors_send() -> None:
    # Copper silently ignores it: the "incremental" search would return everything.
    body = {"minimum_date_modified": 1_700_000_000, "sort_by": "date_modified"}
    error = _raise_for(lambda: OpportunityFilter.from_body(body))
    assert error.field == "minimum_date_modified"
    assert "'minimum_modified_date'" in str(error)
    assert "ignores" in str(error)


def test_nested_unknown_keys_name_their_path() -> None:
    body = {"custom_fields": [{"custom_field_definition_id": 12, "valeu": [8]}]}
    error = _raise_for(lambda: OpportunityFilter.from_body(body))
    assert error.field == "custom_fields[0].valeu"
    assert "'value'" in str(error)


def test_known_keywords_still_build_copy_and_compare() -> None:
    query = OpportunityFilter(ids=[3], minimum_modified_date=7, tags=TagFilter(value=["vip"]))
    assert pickle.loads(pickle.dumps(query)) == query
    assert attrs.evolve(query, ids=[4]).ids == (4,)
    assert OpportunityFilter.from_body(query.to_body()) == query
