"""The nested objects of a search body, and how filter values become JSON and back.

:class:`TagFilter` (``tags`` with a match option) and :class:`CustomFieldFilter`
(one ``custom_fields`` entry) are public through :mod:`copper_async.filters`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

import attrs

from copper_async._filter_checks import (
    _as_tuple,
    _check_bool,
    _check_bounds,
    _check_choice,
    _check_keys,
    _check_list,
    _check_number,
    _check_positive_id,
    _check_text,
    _choice,
    _KnownKeywords,
    _maximum_number,
    _minimum_number,
    _optional,
    _plain_int,
    _plain_str,
    _repr_set_fields,
    _required,
    _set_fields,
    _show,
    _str_tuple,
)
from copper_async._filter_fields import _OPTIONS, MatchOption
from copper_async.exceptions import InvalidFilterError

_Entry = TypeVar("_Entry", bound=_KnownKeywords)


def _entry_from_body(
    cls: type[_Entry], body: Mapping[str, Any], keys: tuple[str, ...], required: str
) -> _Entry:
    _check_keys(body, keys)
    if required not in body:
        raise InvalidFilterError(required, "missing")
    return cls(**body)


@attrs.frozen(kw_only=True)
class TagFilter(_KnownKeywords):
    """``tags`` with a match option: sent as ``{"option": "ANY", "value": ["tag1"]}``.

    ``option`` is ``"ANY"`` (at least one tag, the default) or ``"ALL"``.
    A plain list of tags on :class:`OpportunityFilter` is sent as a plain list.
    """

    value: tuple[str, ...] = attrs.field(
        converter=_str_tuple,
        validator=_required(lambda field, value: _check_list(field, value, _check_text)),
    )
    option: str = attrs.field(
        default=MatchOption.ANY.value,
        converter=_plain_str,
        validator=_required(lambda field, value: _check_choice(field, value, _OPTIONS)),
    )

    def to_body(self) -> dict[str, Any]:
        """The JSON form: ``{"option": ..., "value": [...]}``."""
        return {"option": self.option, "value": list(self.value)}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> TagFilter:
        """Parse the JSON form; unknown keys raise, naming the key."""
        return _entry_from_body(cls, body, ("option", "value"), required="value")


def _check_custom_value(field: str, value: object) -> None:
    if isinstance(value, bool):
        return  # a checkbox field
    _check_list(field, value, _check_positive_id)


def _custom_value(value: Iterable[int] | bool | None) -> tuple[int, ...] | bool | None:
    if isinstance(value, bool):
        return value
    return cast("tuple[int, ...] | None", _as_tuple(value))


@attrs.frozen(kw_only=True, repr=False)
class CustomFieldFilter(_KnownKeywords):
    """One ``custom_fields`` entry: a condition on one custom field.

    Give at least one of:

    - ``value``: dropdown option ids (a list, with ``option`` ANY or ALL for
      multi-select dropdowns), or True/False for a checkbox field;
    - ``minimum_value`` / ``maximum_value``: an inclusive range for date,
      number, percentage and currency fields. Numbers are sent as given;
      aware datetimes and dates become Unix seconds (dates at midnight UTC);
    - ``allow_empty=True``: also (or only) match records where a dropdown is empty.

    ``value`` and the bounds cannot be combined.
    """

    custom_field_definition_id: int = attrs.field(
        converter=_plain_int, validator=_required(_check_positive_id)
    )
    value: tuple[int, ...] | bool | None = attrs.field(
        default=None, converter=_custom_value, validator=_optional(_check_custom_value)
    )
    option: str | None = attrs.field(
        default=None, converter=_plain_str, validator=_choice(_OPTIONS)
    )
    minimum_value: float | None = attrs.field(
        default=None, converter=_minimum_number, validator=_optional(_check_number)
    )
    maximum_value: float | None = attrs.field(
        default=None, converter=_maximum_number, validator=_optional(_check_number)
    )
    allow_empty: bool | None = attrs.field(default=None, validator=_optional(_check_bool))

    def __attrs_post_init__(self) -> None:
        has_bounds = self.minimum_value is not None or self.maximum_value is not None
        if self.value is not None and has_bounds:
            raise InvalidFilterError("value", "cannot be combined with minimum_value/maximum_value")
        if self.option is not None and not isinstance(self.value, tuple):
            raise InvalidFilterError("option", "needs a list value")
        if self.value is None and not has_bounds and self.allow_empty is not True:
            raise InvalidFilterError(
                "value", "empty entry: give value, minimum_value/maximum_value or allow_empty=True"
            )
        _check_bounds(self, (("minimum_value", "maximum_value"),))

    def __repr__(self) -> str:
        return _repr_set_fields(self)

    def to_body(self) -> dict[str, Any]:
        """The JSON form, with only the keys that are set."""
        return _set_fields_body(self)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> CustomFieldFilter:
        """Parse the JSON form; unknown keys raise, naming the key."""
        keys = tuple(attrs.fields_dict(cls))
        return _entry_from_body(cls, body, keys, required="custom_field_definition_id")


# --- OpportunityFilter's tags and custom_fields ---------------------------------------------


def _tags(value: Iterable[str] | TagFilter | None) -> tuple[str, ...] | TagFilter | None:
    if isinstance(value, TagFilter):
        return value
    return _str_tuple(value)


def _custom_fields(
    value: Iterable[CustomFieldFilter] | None,
) -> tuple[CustomFieldFilter, ...] | None:
    return cast("tuple[CustomFieldFilter, ...] | None", _as_tuple(value))


def _check_tags(field: str, value: object) -> None:
    if not isinstance(value, TagFilter):
        _check_list(field, value, _check_text)


def _check_custom_field(field: str, entry: object) -> None:
    if not isinstance(entry, CustomFieldFilter):
        raise InvalidFilterError(field, f"expected a CustomFieldFilter, got {_show(entry)}")


def _check_custom_fields(field: str, value: object) -> None:
    _check_list(field, value, _check_custom_field)


# --- the body round trip ----------------------------------------------------------------------


def _json_value(value: object) -> object:
    """A field value as JSON: tuples become lists, nested filters their JSON objects."""
    if isinstance(value, TagFilter | CustomFieldFilter):
        return value.to_body()
    if isinstance(value, tuple):
        return [_json_value(item) for item in value]
    return value


def _set_fields_body(instance: attrs.AttrsInstance) -> dict[str, Any]:
    """The JSON object of the fields that are set, under their names, in declaration order."""
    return {name: _json_value(value) for name, value in _set_fields(instance)}


def _nested(prefix: str, parse: Callable[[Any], Any], body: Any) -> Any:
    """``parse(body)``, with the fields of its errors placed under ``prefix``."""
    try:
        return parse(body)
    except InvalidFilterError as error:
        field = prefix if error.field == "body" else f"{prefix}.{error.field}"
        raise InvalidFilterError(field, error.reason, context=error.context) from error


def _value_from_body(key: str, value: Any) -> Any:
    """A body value as a constructor argument: ``tags`` objects and ``custom_fields``
    entries become their classes; anything else is left to the validators."""
    if key == "tags" and isinstance(value, Mapping):
        return _nested("tags", TagFilter.from_body, value)
    if key == "custom_fields" and isinstance(value, list | tuple):
        return [
            _nested(f"custom_fields[{index}]", CustomFieldFilter.from_body, entry)
            for index, entry in enumerate(value)
        ]
    return value
