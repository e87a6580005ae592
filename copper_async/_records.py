"""Typed opportunity records, as ``POST /opportunities/search`` returns them.

:class:`Opportunity` is a frozen attrs class with every field of Copper's records.
Each optional field holds either its value, ``None`` (the API sent ``null``) or
:data:`ABSENT` (the record did not carry the key); keys this version does not know
are kept in ``extra``. So ``Opportunity.from_dict(d).to_dict() == d`` holds exactly,
down to ``int`` vs ``float`` and ``True`` vs ``1``.

Timestamps are aware UTC datetimes (Copper sends Unix seconds), ``close_date`` is a
:class:`datetime.date` (Copper sends an unpadded ``M/D/YYYY``). JSON arrays become
tuples so records stay immutable and hashable.

The top-level ``converted_unit`` / ``converted_value`` that some records carry are
known optional fields. :func:`structure_page` is the bulk path the engine uses for
each page; malformed records raise :class:`~copper_async.exceptions.RecordError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

import attrs

from copper_async._converter import (
    ABSENT,
    REFUSALS,
    AbsentType,
    CustomScalar,
    CustomValue,
    RecordId,
    converter,
    extra_field,
    record_error,
    structure,
)
from copper_async.exceptions import ResponseFormatError

__all__ = [
    "ABSENT",
    "AbsentType",
    "CustomFieldValue",
    "CustomScalar",
    "CustomValue",
    "LeadConversion",
    "Opportunity",
    "structure_page",
]


@attrs.frozen(kw_only=True)
class LeadConversion:
    """One entry of ``leads_converted_from``: the lead this opportunity came from."""

    lead_id: int
    converted_timestamp: datetime
    converted_value: int | float | AbsentType | None = ABSENT
    converted_unit: str | AbsentType | None = ABSENT
    extra: Mapping[str, Any] = extra_field()

    @classmethod
    def from_dict(cls, data: Any) -> LeadConversion:
        """Structure one JSON object; raises RecordError (path relative to it)."""
        return structure(data, cls)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object this entry came from."""
        return _unstructure_lead(self)


@attrs.frozen(kw_only=True)
class CustomFieldValue:
    """One entry of ``custom_fields``: a definition id and its value (may be null)."""

    custom_field_definition_id: int
    value: CustomValue | AbsentType = ABSENT
    extra: Mapping[str, Any] = extra_field()

    @classmethod
    def from_dict(cls, data: Any) -> CustomFieldValue:
        """Structure one JSON object; raises RecordError (path relative to it)."""
        return structure(data, cls)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object this entry came from."""
        return _unstructure_custom(self)


@attrs.frozen(kw_only=True)
class Opportunity:
    """A Copper opportunity record.

    ``id`` is required (a positive int). Every other field is ``ABSENT`` when the
    record lacks it and ``None`` when the API sent ``null``. Field order is the
    order Copper writes them, which :meth:`to_dict` keeps.
    """

    id: RecordId
    name: str | AbsentType | None = ABSENT
    assignee_id: int | AbsentType | None = ABSENT
    close_date: date | AbsentType | None = ABSENT
    company_id: int | AbsentType | None = ABSENT
    company_name: str | AbsentType | None = ABSENT
    customer_source_id: int | AbsentType | None = ABSENT
    details: str | AbsentType | None = ABSENT
    loss_reason_id: int | AbsentType | None = ABSENT
    pipeline_id: int | AbsentType | None = ABSENT
    pipeline_is_revenue: bool | AbsentType | None = ABSENT
    pipeline_stage_id: int | AbsentType | None = ABSENT
    pipeline_type: str | AbsentType | None = ABSENT
    primary_contact_id: int | AbsentType | None = ABSENT
    priority: str | AbsentType | None = ABSENT
    status: str | AbsentType | None = ABSENT
    tags: tuple[str, ...] | AbsentType | None = ABSENT
    interaction_count: int | AbsentType | None = ABSENT
    monetary_unit: str | AbsentType | None = ABSENT
    monetary_value: int | float | AbsentType | None = ABSENT
    converted_unit: str | AbsentType | None = ABSENT
    converted_value: int | float | AbsentType | None = ABSENT
    win_probability: int | AbsentType | None = ABSENT
    date_stage_changed: datetime | AbsentType | None = ABSENT
    date_last_contacted: datetime | AbsentType | None = ABSENT
    leads_converted_from: tuple[LeadConversion, ...] | AbsentType | None = ABSENT
    date_lead_created: datetime | AbsentType | None = ABSENT
    date_created: datetime | AbsentType | None = ABSENT
    date_modified: datetime | AbsentType | None = ABSENT
    custom_fields: tuple[CustomFieldValue, ...] | AbsentType | None = ABSENT
    extra: Mapping[str, Any] = extra_field()

    @classmethod
    def from_dict(cls, data: Any) -> Opportunity:
        """Structure one record as Copper sent it.

        Raises RecordError naming the bad field path and the record id.
        """
        return structure(data, cls)

    def to_dict(self) -> dict[str, Any]:
        """The record as Copper sent it: same keys, values and JSON types."""
        return _unstructure_opportunity(self)


# cattrs' generated functions for each class, looked up once.
_unstructure_lead: Callable[[LeadConversion], dict[str, Any]] = converter.get_unstructure_hook(
    LeadConversion
)
_unstructure_custom: Callable[[CustomFieldValue], dict[str, Any]] = converter.get_unstructure_hook(
    CustomFieldValue
)
_unstructure_opportunity: Callable[[Opportunity], dict[str, Any]] = converter.get_unstructure_hook(
    Opportunity
)
_structure_opportunity: Callable[[Any, Any], Opportunity] = converter.get_structure_hook(
    Opportunity
)


def structure_page(items: list[Any]) -> list[Opportunity]:
    """Structure one page of records (the bulk path the engine uses).

    Raises RecordError for the first malformed record, with ``context["index"]``
    its position in the page, and ResponseFormatError if ``items`` is not a list.
    """
    if items.__class__ is not list:
        raise ResponseFormatError(f"expected a JSON array of records, got {type(items).__name__}")
    hook = _structure_opportunity
    records: list[Opportunity] = []
    try:
        for item in items:
            records.append(hook(item, Opportunity))
    except REFUSALS as exc:
        index = len(records)
        raise record_error(items[index], exc, context={"index": index}) from exc
    return records
