"""Typed search filters for ``POST /opportunities/search`` and the JSON bodies they send.

:class:`OpportunityFilter` holds every filter of Copper's reference table, plus
the forms its examples use (``statuses``/``priorities`` by name, ``tags`` with
an ANY/ALL option, ``custom_fields`` entries). It validates at construction,
is frozen and hashable, turns into a request body with
:meth:`OpportunityFilter.to_body` and back with :meth:`OpportunityFilter.from_body`.

For the streaming engine, :class:`DateField` describes the date filters and
:meth:`OpportunityFilter.date_bounds`, :meth:`OpportunityFilter.with_date_bounds`
and :meth:`OpportunityFilter.with_sort` derive narrower, re-sorted filters.

Everything here is pure (no I/O). Invalid input raises
:class:`~copper_async.exceptions.InvalidFilterError` whose ``field`` names the
offending body key, with an index or a nested key when it helps
(``"assignee_ids[1]"``, ``"custom_fields[0].option"``).
"""

from __future__ import annotations

import difflib
import enum
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple, Self, cast

import attrs

from copper_async.exceptions import InvalidFilterError

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "FOLLOWED",
    "MAX_PAGE_SIZE",
    "MAX_TIMESTAMP",
    "MIN_TIMESTAMP",
    "NONE_SET",
    "NOT_FOLLOWED",
    "PRIORITIES",
    "SORT_DIRECTIONS",
    "SORT_FIELDS",
    "STATUSES",
    "STATUS_IDS",
    "CustomFieldFilter",
    "DateField",
    "MatchOption",
    "OpportunityFilter",
    "Paging",
    "Priority",
    "SortDirection",
    "SortField",
    "Status",
    "TagFilter",
    "paging_from_body",
]

#: The id that means "none set" in ``assignee_ids``, ``customer_source_ids``
#: and ``loss_reason_ids`` (no owner, no source, no loss reason).
NONE_SET = -2
#: ``followed`` values.
FOLLOWED = 1
NOT_FOLLOWED = 2

#: The largest page size in wide use; larger values are refused because what
#: Copper does with them (clamp or reject) is undocumented.
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 200

#: Date bounds are Unix seconds within the range of :class:`datetime.datetime`
#: (0001-01-01 to 9999-12-31 UTC), so every stored bound converts back.
MIN_TIMESTAMP = -62_135_596_800
MAX_TIMESTAMP = 253_402_300_799

_EPOCH_NAIVE = datetime(1970, 1, 1)
_ONE_SECOND = timedelta(seconds=1)


class Status(enum.StrEnum):
    """Opportunity status names, as ``statuses`` takes them."""

    OPEN = "Open"
    WON = "Won"
    LOST = "Lost"
    ABANDONED = "Abandoned"


class Priority(enum.StrEnum):
    """Opportunity priority names, as ``priorities`` takes them."""

    NONE = "None"
    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"


class SortField(enum.StrEnum):
    """The fields ``sort_by`` accepts (the reference table's footnote)."""

    ASSIGNEE = "assignee"
    COMPANY_NAME = "company_name"
    CUSTOMER_SOURCE_ID = "customer_source_id"
    DATE_CREATED = "date_created"
    DATE_MODIFIED = "date_modified"
    INACTIVE_DAYS = "inactive_days"
    INTERACTION_COUNT = "interaction_count"
    LAST_INTERACTION = "last_interaction"
    MONETARY_UNIT = "monetary_unit"
    MONETARY_VALUE = "monetary_value"
    NAME = "name"
    PRIMARY_CONTACT = "primary_contact"
    PRIORITY = "priority"
    STAGE = "stage"
    STATUS = "status"


class SortDirection(enum.StrEnum):
    """``sort_direction`` values."""

    ASC = "asc"
    DESC = "desc"


class MatchOption(enum.StrEnum):
    """How a list of tags or dropdown options must match: any one, or all."""

    ANY = "ANY"
    ALL = "ALL"


STATUSES: tuple[str, ...] = tuple(Status)
PRIORITIES: tuple[str, ...] = tuple(Priority)
SORT_FIELDS: tuple[str, ...] = tuple(SortField)
SORT_DIRECTIONS: tuple[str, ...] = tuple(SortDirection)
_OPTIONS: tuple[str, ...] = tuple(MatchOption)
#: ``status_ids`` values by status name (from the reference table).
STATUS_IDS: Mapping[str, int] = {
    Status.OPEN: 0,
    Status.WON: 1,
    Status.LOST: 2,
    Status.ABANDONED: 3,
}


class DateField(enum.Enum):
    """The date filters, and what the engine needs to split a window on one.

    For each member:

    - ``minimum_key`` / ``maximum_key``: the body keys (and
      :class:`OpportunityFilter` attributes) of its inclusive bounds, e.g.
      ``minimum_created_date`` / ``maximum_created_date``;
    - ``record_key``: the record field the bounds match (``date_created``...);
      records carry ``close_date`` as an ``M/D/YYYY`` string, the others as
      Unix seconds or null;
    - ``sort_by``: the ``sort_by`` name that orders results on it, or None
      when the reference lists none;
    - ``splittable``: True only for CREATED and MODIFIED, the fields that are
      both sortable and never null, so that splitting a window on them
      partitions the records (a null date matches no bound and would be lost).
    """

    CREATED = "created"
    MODIFIED = "modified"
    CLOSE = "close"
    INTERACTION = "interaction"
    STAGE_CHANGE = "stage_change"

    @property
    def minimum_key(self) -> str:
        """Body key of the lower bound, e.g. ``minimum_created_date``."""
        return f"minimum_{self.value}_date"

    @property
    def maximum_key(self) -> str:
        """Body key of the upper bound, e.g. ``maximum_created_date``."""
        return f"maximum_{self.value}_date"

    @property
    def record_key(self) -> str:
        """The record field the bounds are matched against."""
        return _DATE_RECORD_KEYS[self]

    @property
    def sort_by(self) -> str | None:
        """The ``sort_by`` value ordering on this field, if the reference has one."""
        return _DATE_SORT_FIELDS.get(self)

    @property
    def splittable(self) -> bool:
        """Whether a window may be split on this field without losing records."""
        return self in (DateField.CREATED, DateField.MODIFIED)


_DATE_RECORD_KEYS: dict[DateField, str] = {
    DateField.CREATED: "date_created",
    DateField.MODIFIED: "date_modified",
    DateField.CLOSE: "close_date",
    DateField.INTERACTION: "date_last_contacted",
    DateField.STAGE_CHANGE: "date_stage_changed",
}
# "last_interaction" probably orders on date_last_contacted, but nothing in the
# reference shows it, so INTERACTION is not claimed sortable.
_DATE_SORT_FIELDS: dict[DateField, str] = {
    DateField.CREATED: SortField.DATE_CREATED.value,
    DateField.MODIFIED: SortField.DATE_MODIFIED.value,
}


class Paging(NamedTuple):
    """``page_number`` and ``page_size`` read from a body; None when absent."""

    page_number: int | None
    page_size: int | None


# --- checks shared by the validators ---------------------------------------------------------

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: object) -> bool:
    # bool is an int subclass; True where an id goes is always a mistake.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(field: str, value: object, *, minimum: int, maximum: int | None = None) -> None:
    if not _is_int(value):
        raise InvalidFilterError(field, f"expected an integer, got {_show(value)}")
    number = cast(int, value)
    if number < minimum or (maximum is not None and number > maximum):
        upper = "" if maximum is None else f" and at most {maximum}"
        raise InvalidFilterError(field, f"must be at least {minimum}{upper}, got {number}")


def _check_id(field: str, value: object, *, none_set: bool) -> None:
    if _is_int(value) and (cast(int, value) > 0 or (none_set and value == NONE_SET)):
        return
    expected = f"a positive integer or {NONE_SET} (none set)" if none_set else "a positive integer"
    raise InvalidFilterError(field, f"expected {expected}, got {_show(value)}")


def _check_choice(field: str, value: object, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidFilterError(field, f"expected one of {', '.join(allowed)}; got {_show(value)}")


def _check_text(field: str, value: object) -> None:
    if not isinstance(value, str):
        raise InvalidFilterError(field, f"expected a string, got {_show(value)}")
    if not value.strip():
        raise InvalidFilterError(field, "must not be empty")


def _check_number(field: str, value: object) -> None:
    if isinstance(value, datetime):
        raise InvalidFilterError(field, "naive datetime; give a timezone-aware datetime")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidFilterError(field, f"expected a number, got {_show(value)}")
    if not math.isfinite(value):
        raise InvalidFilterError(field, f"must be finite, got {value!r}")


def _check_timestamp(field: str, value: object) -> None:
    if isinstance(value, datetime):
        # Only naive datetimes survive the converter: aware ones become ints.
        raise InvalidFilterError(field, "naive datetime; give a timezone-aware datetime")
    if not _is_int(value):
        raise InvalidFilterError(
            field, f"expected Unix seconds (int), an aware datetime or a date; got {_show(value)}"
        )
    _check_int(field, value, minimum=MIN_TIMESTAMP, maximum=MAX_TIMESTAMP)


def _check_list(field: str, value: object, check_item: Callable[[str, object], None]) -> None:
    # The converter made every acceptable iterable a tuple: anything else was refused input.
    if not isinstance(value, tuple):
        raise InvalidFilterError(field, f"expected a list, got {_show(value)}")
    if not value:
        # Undocumented whether Copper reads [] as "match nothing" or "no filter".
        raise InvalidFilterError(field, "empty list; leave the field unset instead")
    for index, item in enumerate(value):
        check_item(f"{field}[{index}]", item)


def _check_min_max(minimum_field: str, minimum: Any, maximum_field: str, maximum: Any) -> None:
    if minimum is not None and maximum is not None and minimum > maximum:
        raise InvalidFilterError(
            minimum_field,
            f"{minimum_field} ({minimum!r}) is greater than {maximum_field} ({maximum!r})",
        )


# --- validators (attrs gives them the field name) --------------------------------------------


def _optional(check: Callable[[str, object], None]) -> _Validator:
    def validate(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            check(attribute.name, value)

    return validate


def _required(check: Callable[[str, object], None]) -> _Validator:
    def validate(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            raise InvalidFilterError(attribute.name, "missing")
        check(attribute.name, value)

    return validate


def _list_of(check_item: Callable[[str, object], None]) -> _Validator:
    return _optional(lambda field, value: _check_list(field, value, check_item))


def _ids(*, none_set: bool = False) -> _Validator:
    return _list_of(lambda field, item: _check_id(field, item, none_set=none_set))


def _choices(allowed: tuple[str, ...]) -> _Validator:
    return _list_of(lambda field, item: _check_choice(field, item, allowed))


def _choice(allowed: tuple[str, ...]) -> _Validator:
    return _optional(lambda field, value: _check_choice(field, value, allowed))


# --- converters (named functions, as mypy's attrs plugin requires) -----------------------------
# They normalise what they recognise and pass anything else through untouched,
# so that the validator, which knows the field name, refuses it.


def _plain(item: object) -> object:
    if isinstance(item, str):
        return str(item)  # StrEnum members become their plain value
    if _is_int(item):
        return int(cast(int, item))  # IntEnum members become plain ints
    return item


def _as_tuple(value: object) -> object:
    # A bare string is an iterable of characters and a mapping one of keys:
    # neither is what a user means by a list.
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        return value
    return tuple(_plain(item) for item in value)


def _int_tuple(value: Iterable[int] | None) -> tuple[int, ...] | None:
    return cast("tuple[int, ...] | None", _as_tuple(value))


def _str_tuple(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return cast("tuple[str, ...] | None", _as_tuple(value))


def _plain_str(value: str | None) -> str | None:
    return cast("str | None", _plain(value))


def _plain_int(value: int | None) -> int | None:
    return cast("int | None", _plain(value))


def _seconds(value: object, *, round_up: bool) -> object:
    if isinstance(value, datetime):
        offset = value.utcoffset()
        if offset is None:
            return value  # naive: refused by the validator
        # timedelta arithmetic, not datetime's: no OverflowError near year 1 or 9999
        delta = value.replace(tzinfo=None) - _EPOCH_NAIVE - offset
        seconds, rest = divmod(delta, _ONE_SECOND)
        # Records hold whole seconds: a lower bound rounds up and an upper bound
        # down, so that no record outside the given instants matches.
        return seconds + 1 if round_up and rest else seconds
    if isinstance(value, date):
        return (value - _EPOCH_NAIVE.date()).days * 86_400
    return _plain(value)


def _minimum_timestamp(value: int | datetime | date | None) -> int | None:
    return cast("int | None", _seconds(value, round_up=True))


def _maximum_timestamp(value: int | datetime | date | None) -> int | None:
    return cast("int | None", _seconds(value, round_up=False))


def _minimum_number(value: float | datetime | date | None) -> float | None:
    return cast("float | None", _seconds(value, round_up=True))


def _maximum_number(value: float | datetime | date | None) -> float | None:
    return cast("float | None", _seconds(value, round_up=False))


def _custom_value(value: Iterable[int] | bool | None) -> tuple[int, ...] | bool | None:
    if isinstance(value, bool):
        return value
    return cast("tuple[int, ...] | None", _as_tuple(value))


def _unknown_field(key: object, allowed: Iterable[str]) -> InvalidFilterError:
    """The error for a key Copper does not document, with the nearest known one.

    Copper ignores keys it does not know, so a misspelt filter (say
    ``minimum_date_modified``) would silently match everything.
    """
    reason = "unknown field: Copper ignores it, so the search would not be filtered by it"
    close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
    if close:
        reason += f" (did you mean {close[0]!r}?)"
    return InvalidFilterError(str(key), reason)


def _check_keys(body: object, allowed: tuple[str, ...]) -> None:
    if not isinstance(body, Mapping):
        raise InvalidFilterError("body", f"expected a JSON object, got {_show(body)}")
    for key in body:
        if key not in allowed:
            raise _unknown_field(key, allowed)


class _KnownKeywords:
    """Refuses unknown keywords with InvalidFilterError naming them.

    attrs' ``__init__`` would raise a bare TypeError; ``__new__`` sees the
    same keywords first, and leaves the typed ``__init__`` to type checkers.
    """

    __slots__ = ()

    def __new__(cls, *args: Any, **fields: Any) -> Self:
        known = attrs.fields_dict(cast("type[attrs.AttrsInstance]", cls))
        for key in fields:
            if key not in known:
                raise _unknown_field(key, known)
        return super().__new__(cls)


# --- tags and custom fields ------------------------------------------------------------------


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
        _check_keys(body, ("option", "value"))
        if "value" not in body:
            raise InvalidFilterError("value", "missing")
        return cls(**body)


_CUSTOM_FIELD_KEYS = (
    "custom_field_definition_id",
    "value",
    "option",
    "minimum_value",
    "maximum_value",
    "allow_empty",
)


def _check_custom_value(field: str, value: object) -> None:
    if isinstance(value, bool):
        return  # a checkbox field
    _check_list(field, value, lambda item_field, item: _check_id(item_field, item, none_set=False))


def _check_bool(field: str, value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidFilterError(field, f"expected true or false, got {_show(value)}")


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
        converter=_plain_int,
        validator=_required(lambda field, value: _check_id(field, value, none_set=False)),
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
        _check_min_max("minimum_value", self.minimum_value, "maximum_value", self.maximum_value)

    def __repr__(self) -> str:
        return _repr_set_fields(self)

    def to_body(self) -> dict[str, Any]:
        """The JSON form, with only the keys that are set."""
        body: dict[str, Any] = {"custom_field_definition_id": self.custom_field_definition_id}
        if self.value is not None:
            body["value"] = list(self.value) if isinstance(self.value, tuple) else self.value
        for key in ("option", "minimum_value", "maximum_value", "allow_empty"):
            if (item := getattr(self, key)) is not None:
                body[key] = item
        return body

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> CustomFieldFilter:
        """Parse the JSON form; unknown keys raise, naming the key."""
        _check_keys(body, _CUSTOM_FIELD_KEYS)
        if "custom_field_definition_id" not in body:
            raise InvalidFilterError("custom_field_definition_id", "missing")
        return cls(**body)


def _repr_set_fields(instance: attrs.AttrsInstance) -> str:
    """A repr naming only the fields that are set, so logs stay readable."""
    names = (attribute.name for attribute in attrs.fields(type(instance)))
    shown = ", ".join(
        f"{name}={value!r}" for name in names if (value := getattr(instance, name)) is not None
    )
    return f"{type(instance).__name__}({shown})"


def _nested(prefix: str, parse: Callable[[], Any]) -> Any:
    try:
        return parse()
    except InvalidFilterError as error:
        field = prefix if error.field == "body" else f"{prefix}.{error.field}"
        raise InvalidFilterError(field, error.reason, context=error.context) from error


def _tag_filter_from_body(body: Mapping[str, Any]) -> TagFilter:
    return cast(TagFilter, _nested("tags", lambda: TagFilter.from_body(body)))


def _custom_field_from_body(index: int, entry: Any) -> CustomFieldFilter:
    return cast(
        CustomFieldFilter,
        _nested(f"custom_fields[{index}]", lambda: CustomFieldFilter.from_body(entry)),
    )


def _check_tags(field: str, value: object) -> None:
    if not isinstance(value, TagFilter):
        _check_list(field, value, _check_text)


def _check_custom_fields(field: str, value: object) -> None:
    def check_entry(entry_field: str, entry: object) -> None:
        if not isinstance(entry, CustomFieldFilter):
            raise InvalidFilterError(
                entry_field, f"expected a CustomFieldFilter, got {_show(entry)}"
            )

    _check_list(field, value, check_entry)


def _tags(value: Iterable[str] | TagFilter | None) -> tuple[str, ...] | TagFilter | None:
    if isinstance(value, TagFilter):
        return value
    return _str_tuple(value)


def _custom_fields(
    value: Iterable[CustomFieldFilter] | None,
) -> tuple[CustomFieldFilter, ...] | None:
    return cast("tuple[CustomFieldFilter, ...] | None", _as_tuple(value))


# --- the filter -----------------------------------------------------------------------------

_PAGING_KEYS = ("page_number", "page_size")
_DATE_PAIRS = tuple((field.minimum_key, field.maximum_key) for field in DateField)
_MIN_MAX_PAIRS = (
    ("minimum_monetary_value", "maximum_monetary_value"),
    ("minimum_interaction_count", "maximum_interaction_count"),
    *_DATE_PAIRS,
)
_POSITIVE_IDS = _ids()
_IDS_OR_NONE_SET = _ids(none_set=True)
_TIMESTAMP = _optional(_check_timestamp)
_COUNT = _optional(lambda field, value: _check_int(field, value, minimum=0))


def _check_status_id(field: str, value: object) -> None:
    if not _is_int(value) or value not in STATUS_IDS.values():
        raise InvalidFilterError(field, f"expected a status id 0 to 3, got {_show(value)}")


def _check_followed(field: str, value: object) -> None:
    if not _is_int(value) or value not in (FOLLOWED, NOT_FOLLOWED):
        raise InvalidFilterError(
            field,
            f"expected {FOLLOWED} (followed) or {NOT_FOLLOWED} (not followed), got {_show(value)}",
        )


def _check_paging(page_number: object, page_size: object) -> None:
    if page_number is not None:
        _check_int("page_number", page_number, minimum=1)
    if page_size is not None:
        _check_int("page_size", page_size, minimum=1, maximum=MAX_PAGE_SIZE)


def paging_from_body(body: Mapping[str, Any]) -> Paging:
    """Read and validate ``page_number`` and ``page_size`` from a search body.

    Either is None when the body does not have it. Raises InvalidFilterError
    for the same values :meth:`OpportunityFilter.to_body` refuses.
    """
    if not isinstance(body, Mapping):
        raise InvalidFilterError("body", f"expected a JSON object, got {_show(body)}")
    page_number, page_size = body.get("page_number"), body.get("page_size")
    _check_paging(page_number, page_size)
    return Paging(page_number=page_number, page_size=page_size)


@attrs.frozen(kw_only=True, repr=False)
class OpportunityFilter(_KnownKeywords):
    """A search of opportunities: every filter Copper documents, all optional.

    Attribute names are the body keys. Criteria combine with AND. Unset (None)
    fields are not sent.

    - id lists (``ids``, ``assignee_ids``, ...) take any iterable of positive
      ints (not a bare string) and store a tuple; ``assignee_ids``,
      ``customer_source_ids`` and ``loss_reason_ids`` also take
      :data:`NONE_SET` (-2). ``status_ids`` take 0-3 (see :data:`STATUS_IDS`).
      Empty lists are refused: Copper does not say what they mean.
    - ``statuses`` / ``priorities``: names (:class:`Status`, :class:`Priority`
      or their exact strings, e.g. ``"Open"``, ``"High"``).
    - ``tags``: a list of tags (sent as a list), or a :class:`TagFilter`.
    - ``followed``: :data:`FOLLOWED` or :data:`NOT_FOLLOWED`.
    - ``minimum_*`` / ``maximum_*``: inclusive bounds. Monetary values are
      numbers, interaction counts ints >= 0. Dates take Unix seconds (int), an
      aware datetime (a lower bound rounds up to the next whole second, an
      upper bound down) or a :class:`datetime.date` (midnight UTC, for either
      bound); they are stored and sent as int seconds. Naive datetimes are
      refused. A minimum above its maximum is refused.
    - ``custom_fields``: :class:`CustomFieldFilter` entries.
    - ``sort_by`` (:data:`SORT_FIELDS`) and ``sort_direction`` (asc/desc):
      unset means Copper's default (name, asc).
    """

    ids: tuple[int, ...] | None = attrs.field(
        default=None, converter=_int_tuple, validator=_POSITIVE_IDS
    )
    name: str | None = attrs.field(
        default=None, converter=_plain_str, validator=_optional(_check_text)
    )
    assignee_ids: tuple[int, ...] | None = attrs.field(
        default=None, converter=_int_tuple, validator=_IDS_OR_NONE_SET
    )
    status_ids: tuple[int, ...] | None = attrs.field(
        default=None, converter=_int_tuple, validator=_list_of(_check_status_id)
    )
    statuses: tuple[str, ...] | None = attrs.field(
        default=None, converter=_str_tuple, validator=_choices(STATUSES)
    )
    pipeline_ids: tuple[int, ...] | None = attrs.field(
        default=None, converter=_int_tuple, validator=_POSITIVE_IDS
    )
    pipeline_stage_ids: tuple[int, ...] | None = attrs.field(
        default=None, converter=_int_tuple, validator=_POSITIVE_IDS
    )
    primary_contact_ids: tuple[int, ...] | None = attrs.field(
        default=None, converter=_int_tuple, validator=_POSITIVE_IDS
    )
    priority_ids: tuple[int, ...] | None = attrs.field(
        default=None, converter=_int_tuple, validator=_POSITIVE_IDS
    )
    priorities: tuple[str, ...] | None = attrs.field(
        default=None, converter=_str_tuple, validator=_choices(PRIORITIES)
    )
    customer_source_ids: tuple[int, ...] | None = attrs.field(
        default=None, converter=_int_tuple, validator=_IDS_OR_NONE_SET
    )
    loss_reason_ids: tuple[int, ...] | None = attrs.field(
        default=None, converter=_int_tuple, validator=_IDS_OR_NONE_SET
    )
    company_ids: tuple[int, ...] | None = attrs.field(
        default=None, converter=_int_tuple, validator=_POSITIVE_IDS
    )
    tags: tuple[str, ...] | TagFilter | None = attrs.field(
        default=None, converter=_tags, validator=_optional(_check_tags)
    )
    followed: int | None = attrs.field(
        default=None, converter=_plain_int, validator=_optional(_check_followed)
    )
    minimum_monetary_value: float | None = attrs.field(
        default=None, validator=_optional(_check_number)
    )
    maximum_monetary_value: float | None = attrs.field(
        default=None, validator=_optional(_check_number)
    )
    minimum_interaction_count: int | None = attrs.field(
        default=None, converter=_plain_int, validator=_COUNT
    )
    maximum_interaction_count: int | None = attrs.field(
        default=None, converter=_plain_int, validator=_COUNT
    )
    minimum_close_date: int | None = attrs.field(
        default=None, converter=_minimum_timestamp, validator=_TIMESTAMP
    )
    maximum_close_date: int | None = attrs.field(
        default=None, converter=_maximum_timestamp, validator=_TIMESTAMP
    )
    minimum_interaction_date: int | None = attrs.field(
        default=None, converter=_minimum_timestamp, validator=_TIMESTAMP
    )
    maximum_interaction_date: int | None = attrs.field(
        default=None, converter=_maximum_timestamp, validator=_TIMESTAMP
    )
    minimum_stage_change_date: int | None = attrs.field(
        default=None, converter=_minimum_timestamp, validator=_TIMESTAMP
    )
    maximum_stage_change_date: int | None = attrs.field(
        default=None, converter=_maximum_timestamp, validator=_TIMESTAMP
    )
    minimum_created_date: int | None = attrs.field(
        default=None, converter=_minimum_timestamp, validator=_TIMESTAMP
    )
    maximum_created_date: int | None = attrs.field(
        default=None, converter=_maximum_timestamp, validator=_TIMESTAMP
    )
    minimum_modified_date: int | None = attrs.field(
        default=None, converter=_minimum_timestamp, validator=_TIMESTAMP
    )
    maximum_modified_date: int | None = attrs.field(
        default=None, converter=_maximum_timestamp, validator=_TIMESTAMP
    )
    custom_fields: tuple[CustomFieldFilter, ...] | None = attrs.field(
        default=None, converter=_custom_fields, validator=_optional(_check_custom_fields)
    )
    sort_by: str | None = attrs.field(
        default=None, converter=_plain_str, validator=_choice(SORT_FIELDS)
    )
    sort_direction: str | None = attrs.field(
        default=None, converter=_plain_str, validator=_choice(SORT_DIRECTIONS)
    )

    def __attrs_post_init__(self) -> None:
        for minimum_key, maximum_key in _MIN_MAX_PAIRS:
            _check_min_max(
                minimum_key, getattr(self, minimum_key), maximum_key, getattr(self, maximum_key)
            )

    def __repr__(self) -> str:
        return _repr_set_fields(self)

    def to_body(
        self, *, page_number: int | None = 1, page_size: int = DEFAULT_PAGE_SIZE
    ) -> dict[str, Any]:
        """The JSON body of a search request for one page.

        The body has ``page_size`` and ``page_number`` (paging is explicit:
        Copper's defaults of 20 and 1 are not relied on), then ``sort_by`` /
        ``sort_direction`` when set, then every filter that is set, under its
        body key. Tuples become lists, :class:`TagFilter` and
        :class:`CustomFieldFilter` their JSON objects. ``page_number=None``
        leaves ``page_number`` out, as the reference examples do (Copper then
        reads page 1): that body is exactly the documented one.

        Raises InvalidFilterError (field ``page_size`` / ``page_number``) unless
        ``1 <= page_size <= 200`` and ``page_number`` is None or ``>= 1``.
        """
        _check_paging(page_number, page_size)
        body: dict[str, Any] = {"page_size": page_size}
        if page_number is not None:
            body["page_number"] = page_number
        # sort keys first, as in Copper's examples (the order is only cosmetic)
        if self.sort_by is not None:
            body["sort_by"] = self.sort_by
        if self.sort_direction is not None:
            body["sort_direction"] = self.sort_direction
        for attribute in attrs.fields(OpportunityFilter):
            value = getattr(self, attribute.name)
            if value is None or attribute.name in body:
                continue
            if isinstance(value, TagFilter):
                value = value.to_body()
            elif isinstance(value, tuple):
                value = [
                    item.to_body() if isinstance(item, CustomFieldFilter) else item
                    for item in value
                ]
            body[attribute.name] = value
        return body

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> OpportunityFilter:
        """Parse a JSON search body (a dict, e.g. loaded from a file) into a filter.

        Every key is validated as the constructor does; ``null`` counts as unset.
        ``page_number`` and ``page_size`` are validated (see
        :func:`paging_from_body`, which returns them) and otherwise ignored: the
        filter says what to search, not which page. Unknown keys raise
        InvalidFilterError naming the key; errors inside ``tags`` or a
        ``custom_fields`` entry name the path (``custom_fields[0].option``).
        """
        _check_keys(body, (*_FIELD_NAMES, *_PAGING_KEYS))
        paging_from_body(body)
        arguments: dict[str, Any] = {}
        for key, value in body.items():
            if key in _PAGING_KEYS:
                continue
            if key == "tags" and isinstance(value, Mapping):
                value = _tag_filter_from_body(value)
            elif key == "custom_fields" and isinstance(value, list | tuple):
                value = [_custom_field_from_body(index, entry) for index, entry in enumerate(value)]
            arguments[key] = value
        return cls(**arguments)

    def date_bounds(self, field: DateField) -> tuple[int | None, int | None]:
        """The (minimum, maximum) bounds of a date filter, Unix seconds or None."""
        return (
            cast("int | None", getattr(self, field.minimum_key)),
            cast("int | None", getattr(self, field.maximum_key)),
        )

    def with_date_bounds(
        self, field: DateField, minimum: int | None, maximum: int | None
    ) -> OpportunityFilter:
        """A copy whose bounds on ``field`` are replaced (None removes a bound).

        The copy is validated like any filter: ``minimum > maximum`` raises.
        """
        changes: dict[str, Any] = {field.minimum_key: minimum, field.maximum_key: maximum}
        return attrs.evolve(self, **changes)

    def with_sort(self, sort_by: str | None, sort_direction: str | None) -> OpportunityFilter:
        """A copy with ``sort_by`` and ``sort_direction`` replaced (None: Copper's default)."""
        return attrs.evolve(self, sort_by=sort_by, sort_direction=sort_direction)


_FIELD_NAMES: tuple[str, ...] = tuple(
    attribute.name for attribute in attrs.fields(OpportunityFilter)
)
