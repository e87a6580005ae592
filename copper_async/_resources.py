"""What the engine needs to know of one searchable Copper resource.

Copper's leads, people, companies, tasks and projects searches page and cap
as the opportunities search does; each differs only in its endpoint, its
record and filter classes and the date fields it can be split on. A
:class:`Resource` holds exactly that, so a new search is a new description,
not a change to the planner or the engine.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Generic, Protocol, Self, TypeVar

import attrs

from copper_async._protocol import SEARCH_PATH
from copper_async._records import Opportunity, structure_page
from copper_async.filters import DateField, OpportunityFilter

__all__ = ["OPPORTUNITIES", "Resource", "SearchFilter"]

R = TypeVar("R")
F = TypeVar("F", bound="SearchFilter")


class SearchFilter(Protocol):
    """What the engine does with a resource's filter: bound it, sort it, send it."""

    def date_bounds(self, field: DateField) -> tuple[int | None, int | None]: ...

    def with_date_bounds(
        self, field: DateField, minimum: int | None, maximum: int | None
    ) -> Self: ...

    def with_sort(self, sort_by: str | None, sort_direction: str | None) -> Self: ...

    def to_body(self, *, page_number: int | None = ..., page_size: int = ...) -> dict[str, Any]: ...


@attrs.frozen(kw_only=True)
class Resource(Generic[R, F]):
    """One search endpoint: where it is, what it returns, what filters it.

    ``structure_page`` turns one page of JSON records into typed records
    (raising :class:`~copper_async.exceptions.RecordError`); ``split_fields``
    are the date fields a window of it may be split on (sortable, never
    empty); ``id_field`` names each record's unique id.
    """

    name: str
    path: str
    record_class: type[R]
    structure_page: Callable[[list[dict[str, Any]]], list[R]]
    filter_class: type[F]
    split_fields: tuple[DateField, ...] = (DateField.CREATED, DateField.MODIFIED)
    id_field: str = "id"

    def raw_id(self, record: dict[str, Any]) -> int:
        """The id of a record as Copper sent it."""
        return int(record[self.id_field])

    @property
    def typed_id(self) -> Callable[[R], int]:
        """Reads the id of a typed record."""
        return operator.attrgetter(self.id_field)


OPPORTUNITIES: Resource[Opportunity, OpportunityFilter] = Resource(
    name="opportunities",
    path=SEARCH_PATH,
    record_class=Opportunity,
    structure_page=structure_page,
    filter_class=OpportunityFilter,
)
