"""The page-wise row builder gives the per-value converters' results."""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from copper_async.sync._rows import RowPlan, utc_texts
from copper_async.sync._schema import COLUMNS, CONVERTERS

_ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.sampled_from("ab\x00/1"), max_size=6),
    st.sampled_from(["4/21/2015", "12/31/1999", "2/30/2020", "13/1/2020"]),
    st.lists(st.integers(0, 3), max_size=2),
    st.lists(st.text(alphabet=st.sampled_from("a\x00\\u0"), max_size=6), max_size=2),
)
_RECORDS = st.lists(
    st.fixed_dictionaries({}, optional={c.name: _ODD for c in COLUMNS}), min_size=1, max_size=5
)


def _expected(record: dict[str, Any]) -> list[Any]:
    values = []
    for column in COLUMNS:
        value = CONVERTERS[column.kind](record.get(column.name))
        if column.kind == "date" and value is not None:
            value = value.isoformat()
        values.append(value)
    return values


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, float) and math.isnan(left):
        return isinstance(right, float) and math.isnan(right)
    return type(left) is type(right) or {type(left), type(right)} == {int, float}


@settings(max_examples=150)
@given(_RECORDS)
def test_rows_equal_the_converters_value_by_value(records: list[dict[str, Any]]) -> None:
    plan = RowPlan(timestamps=None, date=dt.date.isoformat)
    rows = plan.rows(records, ["t"] * len(records), "synced", 7)
    assert len(rows) == len(records)
    for record, row in zip(records, rows, strict=True):
        expected = _expected(record)
        assert list(row[: len(COLUMNS)]) == expected
        assert all(_same(a, b) for a, b in zip(row, expected, strict=False))
        assert row[len(COLUMNS) :] == ("t", "synced", None, 7)


@settings(max_examples=300)
@given(st.lists(st.one_of(st.none(), st.integers(0, 253_402_300_799)), max_size=20))
def test_utc_texts_equal_strftime(values: list[int | None]) -> None:
    expected = [
        None if value is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value))
        for value in values
    ]
    assert utc_texts(values) == expected


def test_timestamps_go_through_the_stores_function() -> None:
    plan = RowPlan(
        timestamps=lambda column: [None if s is None else f"ts{s}" for s in column],
        date=dt.date.isoformat,
    )
    (row,) = plan.rows([{"id": 1, "date_created": 5, "date_modified": -1}], ["t"], "s", 1)
    names = [c.name for c in COLUMNS]
    assert row[names.index("date_created")] == "ts5"
    assert row[names.index("date_modified")] is None
    assert plan.rows([], [], "s", 1) == []
