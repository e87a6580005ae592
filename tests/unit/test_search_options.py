from __future__ import annotations

import pytest

from copper_async._engine import SearchOptions
from copper_async.exceptions import InvalidOptionError
from copper_async.filters import DateField


def test_split_fields_default_to_created_then_modified() -> None:
    assert SearchOptions().split_fields == (DateField.CREATED, DateField.MODIFIED)
    assert SearchOptions(split_field="date_modified").split_fields == (  # type: ignore[arg-type]
        DateField.MODIFIED,
        DateField.CREATED,
    )
    assert SearchOptions(secondary_field=None).split_fields == (DateField.CREATED,)


def test_end_at_bounds_are_checked() -> None:
    with pytest.raises(InvalidOptionError) as raised:
        SearchOptions(end_at=-1)
    assert raised.value.option == "end_at"
