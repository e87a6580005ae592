"""Search bodies as the fake server understands them: parsed, validated, hashable.

:func:`parse_search_body` turns a JSON body into a :class:`Query` (every
filter and the sort, usable as a cache key) and its :class:`Paging`. Bodies
Copper would refuse raise :class:`QueryError` with the status to answer: 400
when the body is not a JSON object, 422 when a field is wrong. Unknown
top-level keys are ignored, as Copper ignores them.

Empty values are an assumption. Copper's reference says company_ids, tags
and custom dropdown and multi-select fields "can be filtered by an empty
value", but shows the body only for custom fields (``"allow_empty": true``);
the page it points to for the others is not part of it, and it documents -2
("none set") only for assignee_ids, customer_source_ids and loss_reason_ids.
So this server reads those filters literally and invents no empty-value
syntax: ``company_ids: [-2]`` is a 422 (not an id), an empty id list or
``tags: []`` matches no record (ANY of nothing), ``{"option": "ALL", "value":
[]}`` every record (ALL of nothing), and only custom fields take
``allow_empty``. :class:`copper_async.OpportunityFilter` refuses empty lists
and -2 where it is not documented, so the client never sends these shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = [
    "DATE_FILTERS",
    "ID_FILTERS",
    "NONE_SET",
    "PRIORITY_IDS",
    "SORT_FIELDS",
    "STATUS_IDS",
    "Paging",
    "Query",
    "QueryError",
    "parse_search_body",
]

NONE_SET = -2
STATUS_IDS: dict[str, int] = {"Open": 0, "Won": 1, "Lost": 2, "Abandoned": 3}
# Copper does not document priority ids; this stand-in numbers them in order.
PRIORITY_IDS: dict[str, int] = {"None": 0, "Low": 1, "Medium": 2, "High": 3}

#: Body key -> the record field its ids match.
ID_FILTERS: dict[str, str] = {
    "ids": "id",
    "assignee_ids": "assignee_id",
    "pipeline_ids": "pipeline_id",
    "pipeline_stage_ids": "pipeline_stage_id",
    "primary_contact_ids": "primary_contact_id",
    "customer_source_ids": "customer_source_id",
    "loss_reason_ids": "loss_reason_id",
    "company_ids": "company_id",
}
# Only these accept -2 for "none set".
_NONE_SET_FILTERS = frozenset({"assignee_ids", "customer_source_ids", "loss_reason_ids"})

#: Bound name (``minimum_<name>``/``maximum_<name>``) -> the record field.
DATE_FILTERS: dict[str, str] = {
    "close_date": "close_date",
    "interaction_date": "date_last_contacted",
    "stage_change_date": "date_stage_changed",
    "created_date": "date_created",
    "modified_date": "date_modified",
}
_NUMBER_FILTERS: dict[str, str] = {
    "monetary_value": "monetary_value",
    "interaction_count": "interaction_count",
}

#: sort_by value -> the record field it orders on.
SORT_FIELDS: dict[str, str] = {
    "assignee": "assignee_id",
    "company_name": "company_name",
    "customer_source_id": "customer_source_id",
    "date_created": "date_created",
    "date_modified": "date_modified",
    "inactive_days": "date_last_contacted",
    "interaction_count": "interaction_count",
    "last_interaction": "date_last_contacted",
    "monetary_unit": "monetary_unit",
    "monetary_value": "monetary_value",
    "name": "name",
    "primary_contact": "primary_contact_id",
    "priority": "priority",
    "stage": "pipeline_stage_id",
    "status": "status",
}


class QueryError(Exception):
    """A body the server refuses: ``status`` to answer and a message naming the field."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@attrs.frozen
class Paging:
    """Where in the sorted result a request reads."""

    page_number: int = 1
    page_size: int = 20


@attrs.frozen
class CustomFieldQuery:
    """One ``custom_fields`` entry."""

    definition_id: int
    values: tuple[Any, ...] | None = None
    option: str = "ANY"
    minimum: float | None = None
    maximum: float | None = None
    allow_empty: bool = False


@attrs.frozen
class Query:
    """Every filter of a body (ids as frozensets, bounds as pairs) and its sort."""

    ids: tuple[tuple[str, frozenset[int]], ...] = ()
    name: str | None = None
    statuses: frozenset[str] | None = None
    priorities: frozenset[str] | None = None
    tags: tuple[str, frozenset[str]] | None = None  # (option, values)
    followed: int | None = None
    bounds: tuple[tuple[str, float | None, float | None], ...] = ()  # (record field, lo, hi)
    custom_fields: tuple[CustomFieldQuery, ...] = ()
    sort_field: str = "name"
    descending: bool = False

    def bound(self, field: str) -> tuple[float | None, float | None]:
        """The (lo, hi) bound on a record field; (None, None) when unbounded."""
        for name, lo, hi in self.bounds:
            if name == field:
                return lo, hi
        return None, None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float)


def _ids(key: str, value: Any) -> frozenset[int]:
    if not isinstance(value, list):
        raise QueryError(422, f"{key} must be an array of ids")
    for index, item in enumerate(value):
        allowed = item == NONE_SET and key in _NONE_SET_FILTERS
        if not _is_int(item) or (item < 0 and not allowed):
            raise QueryError(422, f"{key}[{index}] must be an id, not {item!r}")
    return frozenset(value)


def _names(key: str, value: Any, known: Mapping[str, int]) -> frozenset[str]:
    if not isinstance(value, list):
        raise QueryError(422, f"{key} must be an array")
    for index, item in enumerate(value):
        # A str check first: a list or object here is unhashable, not merely unknown.
        if not isinstance(item, str) or item not in known:
            raise QueryError(422, f"{key}[{index}]: unknown value {item!r}")
    return frozenset(value)


def _id_names(key: str, value: Any, known: Mapping[str, int]) -> frozenset[str]:
    by_id = {v: k for k, v in known.items()}
    if not isinstance(value, list):
        raise QueryError(422, f"{key} must be an array")
    names = set()
    for index, item in enumerate(value):
        if not _is_int(item) or item not in by_id:
            raise QueryError(422, f"{key}[{index}]: unknown id {item!r}")
        names.add(by_id[item])
    return frozenset(names)


def _tags(value: Any) -> tuple[str, frozenset[str]]:
    option = "ANY"
    if isinstance(value, Mapping):
        option = value.get("option", "ANY")
        if option not in ("ANY", "ALL"):
            raise QueryError(422, f"tags.option must be ANY or ALL, not {option!r}")
        value = value.get("value")
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise QueryError(422, "tags must be an array of strings or {option, value}")
    return option, frozenset(value)


def _custom_field(index: int, entry: Any) -> CustomFieldQuery:
    where = f"custom_fields[{index}]"
    if not isinstance(entry, Mapping):
        raise QueryError(422, f"{where} must be an object")
    definition: Any = entry.get("custom_field_definition_id")
    if not _is_int(definition) or definition < 1:
        raise QueryError(422, f"{where}.custom_field_definition_id must be a positive id")
    values = entry.get("value")
    option = entry.get("option", "ANY")
    if option not in ("ANY", "ALL"):
        raise QueryError(422, f"{where}.option must be ANY or ALL")
    minimum, maximum = entry.get("minimum_value"), entry.get("maximum_value")
    for name, bound in (("minimum_value", minimum), ("maximum_value", maximum)):
        if bound is not None and not _is_number(bound):
            raise QueryError(422, f"{where}.{name} must be a number")
    allow_empty = entry.get("allow_empty", False)
    if not isinstance(allow_empty, bool):
        raise QueryError(422, f"{where}.allow_empty must be true or false")
    if values is not None and not isinstance(values, list):
        values = [values]
    # Values must be hashable scalars: the query is a cache key and matching uses sets.
    if values is not None and not all(_is_scalar(item) for item in values):
        raise QueryError(422, f"{where}.value must be scalars or an array of them")
    if values is None and minimum is None and maximum is None and not allow_empty:
        raise QueryError(422, f"{where} needs a value, bounds or allow_empty")
    return CustomFieldQuery(
        definition_id=definition,
        values=tuple(values) if values is not None else None,
        option=option,
        minimum=minimum,
        maximum=maximum,
        allow_empty=allow_empty,
    )


def _paging(body: Mapping[str, Any]) -> Paging:
    page_number = body.get("page_number", 1)
    page_size = body.get("page_size", 20)
    if not _is_int(page_number) or page_number < 1:
        raise QueryError(422, f"page_number must be an integer >= 1, not {page_number!r}")
    if not _is_int(page_size) or not 1 <= page_size <= 200:
        raise QueryError(422, f"page_size must be an integer from 1 to 200, not {page_size!r}")
    return Paging(page_number=page_number, page_size=page_size)


def parse_search_body(body: object) -> tuple[Query, Paging]:
    """Validate a search body; return its query and paging."""
    if not isinstance(body, Mapping):
        raise QueryError(400, "the body must be a JSON object")
    paging = _paging(body)
    ids = []
    for key, field in ID_FILTERS.items():
        if body.get(key) is not None:
            ids.append((field, _ids(key, body[key])))
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise QueryError(422, "name must be a string")
    statuses: frozenset[str] | set[str] | None = None
    if body.get("statuses") is not None:
        statuses = set(_names("statuses", body["statuses"], STATUS_IDS))
    if body.get("status_ids") is not None:
        by_id = _id_names("status_ids", body["status_ids"], STATUS_IDS)
        statuses = by_id if statuses is None else statuses & by_id
    priorities: frozenset[str] | set[str] | None = None
    if body.get("priorities") is not None:
        priorities = set(_names("priorities", body["priorities"], PRIORITY_IDS))
    if body.get("priority_ids") is not None:
        by_id = _id_names("priority_ids", body["priority_ids"], PRIORITY_IDS)
        priorities = by_id if priorities is None else priorities & by_id
    followed = body.get("followed")
    if followed is not None and (not _is_int(followed) or followed not in (1, 2)):
        raise QueryError(422, "followed must be 1 (followed) or 2 (not followed)")
    bounds = []
    for name_, field in (*DATE_FILTERS.items(), *_NUMBER_FILTERS.items()):
        lo, hi = body.get(f"minimum_{name_}"), body.get(f"maximum_{name_}")
        for key, value in ((f"minimum_{name_}", lo), (f"maximum_{name_}", hi)):
            if value is not None and not _is_number(value):
                raise QueryError(422, f"{key} must be a number, not {value!r}")
        if lo is not None or hi is not None:
            bounds.append((field, lo, hi))
    custom = body.get("custom_fields")
    if custom is not None and not isinstance(custom, list):
        raise QueryError(422, "custom_fields must be an array")
    sort_by = body.get("sort_by", "name")
    if not isinstance(sort_by, str) or sort_by not in SORT_FIELDS:
        raise QueryError(422, f"sort_by: unknown field {sort_by!r}")
    direction = body.get("sort_direction", "asc")
    if direction not in ("asc", "desc"):
        raise QueryError(422, f"sort_direction must be asc or desc, not {direction!r}")
    query = Query(
        ids=tuple(sorted(ids, key=lambda item: item[0])),
        name=name,
        statuses=frozenset(statuses) if statuses is not None else None,
        priorities=frozenset(priorities) if priorities is not None else None,
        tags=_tags(body["tags"]) if body.get("tags") is not None else None,
        followed=followed,
        bounds=tuple(bounds),
        custom_fields=tuple(_custom_field(i, e) for i, e in enumerate(custom or ())),
        sort_field=sort_by,
        descending=direction == "desc",
    )
    return query, paging
