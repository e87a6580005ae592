"""``client.opportunities``: the searches users start.

Each method only validates and assembles; the work happens in
:mod:`copper_async._engine`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, overload

from copper_async._clock import Clock
from copper_async._engine import (
    SEARCH_CAP,
    MultiSearch,
    Search,
    SearchOptions,
)
from copper_async._pages import PageSource
from copper_async._records import Opportunity, structure_page
from copper_async.exceptions import InvalidOptionError
from copper_async.filters import MAX_PAGE_SIZE, DateField, OpportunityFilter

__all__ = ["OpportunitiesAPI"]

RawRecord = dict[str, Any]


def _raw_id(record: RawRecord) -> int:
    return int(record["id"])


def _typed_id(record: Opportunity) -> int:
    return record.id


def _check_flag(name: str, value: object) -> None:
    # A truthy string such as "no" must not silently turn a mode on.
    if not isinstance(value, bool):
        raise InvalidOptionError(name, f"must be True or False, not {value!r}")


class OpportunitiesAPI:
    """Searches over one client; every request goes through its rate limiter."""

    def __init__(self, fetcher: PageSource, *, clock: Clock | None = None) -> None:
        self._fetcher = fetcher
        self._clock = clock

    @overload
    def search(
        self,
        filter: OpportunityFilter | None = ...,
        *,
        raw: Literal[False] = ...,
        page_size: int = ...,
        split_field: DateField | str = ...,
        secondary_field: DateField | str | None = ...,
        on_cap: Literal["error", "warn"] = ...,
        concurrency: int = ...,
        max_passes: int = ...,
        end_at: int | None = ...,
        cap: int = ...,
    ) -> Search[Opportunity]: ...

    @overload
    def search(
        self,
        filter: OpportunityFilter | None = ...,
        *,
        raw: Literal[True],
        page_size: int = ...,
        split_field: DateField | str = ...,
        secondary_field: DateField | str | None = ...,
        on_cap: Literal["error", "warn"] = ...,
        concurrency: int = ...,
        max_passes: int = ...,
        end_at: int | None = ...,
        cap: int = ...,
    ) -> Search[RawRecord]: ...

    def search(
        self,
        filter: OpportunityFilter | None = None,
        *,
        raw: bool = False,
        page_size: int = MAX_PAGE_SIZE,
        split_field: DateField | str = DateField.CREATED,
        secondary_field: DateField | str | None = "auto",
        on_cap: Literal["error", "warn"] = "error",
        concurrency: int = 4,
        max_passes: int = 3,
        end_at: int | None = None,
        cap: int = SEARCH_CAP,
    ) -> Search[Opportunity] | Search[RawRecord]:
        """Every opportunity ``filter`` matches, each exactly once, as an async iterator.

        Past the 100,000-record search cap the date range is split into windows
        that fit (see :mod:`copper_async._planner`). ``raw=True`` yields the
        records as plain dicts, skipping the typed structuring. Invalid
        options raise :class:`~copper_async.exceptions.InvalidOptionError`
        here, before any request.
        """
        _check_flag("raw", raw)
        options = SearchOptions(
            page_size=page_size,
            split_field=split_field,
            secondary_field=secondary_field,  # type: ignore[arg-type]
            on_cap=on_cap,
            concurrency=concurrency,
            max_passes=max_passes,
            end_at=end_at,
            cap=cap,
        )
        if raw:
            return Search[RawRecord](self._fetcher, filter, options=options, clock=self._clock)
        return Search[Opportunity](
            self._fetcher, filter, options=options, structure=structure_page, clock=self._clock
        )

    def search_many(
        self,
        filters: Iterable[OpportunityFilter | None],
        *,
        union: bool = False,
        raw: bool = False,
        **options: Any,
    ) -> MultiSearch[Any]:
        """Run several searches concurrently; yield records from all as they arrive.

        ``union=True`` yields a record matched by several filters once. Takes
        the same keyword options as :meth:`search`, applied to each.
        """
        if isinstance(filters, OpportunityFilter):
            raise InvalidOptionError("filters", "must be a list of filters, not one filter")
        if isinstance(filters, str | bytes | dict) or not isinstance(filters, Iterable):
            raise InvalidOptionError(
                "filters", f"must be a list of filters, not {type(filters).__name__}"
            )
        _check_flag("union", union)
        searches: list[Search[Any]] = [
            self.search(f, raw=raw, **options)  # type: ignore[call-overload]
            for f in filters
        ]
        id_of = _raw_id if raw else _typed_id
        return MultiSearch(searches, union=union, id_of=id_of)
