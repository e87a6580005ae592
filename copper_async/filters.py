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

This module is the public face: the constants and enums live in
``_filter_fields``, the checks and converters in ``_filter_checks``, the
nested body objects and the JSON round trip in ``_filter_body``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import attrs

from copper_async._filter_body import (
    CustomFieldFilter,
    TagFilter,
    _check_custom_fields,
    _check_tags,
    _custom_fields,
    _set_fields_body,
    _tags,
    _value_from_body,
)
from copper_async._filter_checks import (
    _as_object,
    _check_bounds,
    _check_int,
    _check_int_code,
    _check_keys,
    _check_number,
    _check_text,
    _check_timestamp,
    _choice,
    _choices,
    _ids,
    _int_tuple,
    _KnownKeywords,
    _list_of,
    _maximum_timestamp,
    _minimum_timestamp,
    _optional,
    _plain_int,
    _plain_str,
    _repr_set_fields,
    _str_tuple,
)
from copper_async._filter_fields import (
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
    DateField,
    MatchOption,
    Paging,
    Priority,
    SortDirection,
    SortField,
    Status,
)

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

# The classes defined in private modules are documented here: say so in reprs and pickles.
for _public in (CustomFieldFilter, DateField, MatchOption, Paging, Priority, SortDirection,
                SortField, Status, TagFilter):  # fmt: skip
    _public.__module__ = __name__

_PAGING_KEYS = ("page_number", "page_size")
_SORT_KEYS = ("sort_by", "sort_direction")
# The order in which inverted bounds are reported when several are.
_MIN_MAX_PAIRS = (
    ("minimum_monetary_value", "maximum_monetary_value"),
    ("minimum_interaction_count", "maximum_interaction_count"),
    *((field.minimum_key, field.maximum_key) for field in DateField),
)
_POSITIVE_IDS = _ids()
_IDS_OR_NONE_SET = _ids(none_set=True)
_TIMESTAMP = _optional(_check_timestamp)
_COUNT = _optional(lambda field, value: _check_int(field, value, minimum=0))


def _check_status_id(field: str, value: object) -> None:
    _check_int_code(field, value, STATUS_IDS.values(), "a status id 0 to 3")


def _check_followed(field: str, value: object) -> None:
    expected = f"{FOLLOWED} (followed) or {NOT_FOLLOWED} (not followed)"
    _check_int_code(field, value, (FOLLOWED, NOT_FOLLOWED), expected)


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
    fields = _as_object(body)
    page_number, page_size = fields.get("page_number"), fields.get("page_size")
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
      unset means Copper's default (name, asc). For one page
      (``client.search_page``); a search refuses them, as it orders each
      date window itself to get past the cap.
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
        _check_bounds(self, _MIN_MAX_PAIRS)

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
        fields = _set_fields_body(self)
        # sort keys first, as in Copper's examples (the order is only cosmetic)
        body.update((key, fields.pop(key)) for key in _SORT_KEYS if key in fields)
        body.update(fields)
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
        arguments = {
            key: _value_from_body(key, value)
            for key, value in body.items()
            if key not in _PAGING_KEYS
        }
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
