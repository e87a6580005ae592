"""``client.opportunities``: the searches users start.

Each method only validates and assembles; the work happens in
:mod:`copper_async._engine`. :class:`ResourceAPI` serves any
:class:`~copper_async._resources.Resource`; :class:`OpportunitiesAPI` is the
one for opportunities.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, Literal, TypeVar, Unpack, overload

from copper_async._clock import Clock
from copper_async._engine import Search, checked_filter
from copper_async._multi import MultiSearch
from copper_async._options import SearchKwargs, SearchOptions, search_options
from copper_async._pages import PageSource
from copper_async._records import Opportunity
from copper_async._resources import OPPORTUNITIES, Resource, SearchFilter
from copper_async.exceptions import InvalidOptionError
from copper_async.filters import OpportunityFilter

__all__ = ["OpportunitiesAPI", "ResourceAPI"]

RawRecord = dict[str, Any]
R = TypeVar("R")
F = TypeVar("F")


def _check_flag(name: str, value: object) -> None:
    # A truthy string such as "no" must not silently turn a mode on.
    if not isinstance(value, bool):
        raise InvalidOptionError(name, f"must be True or False, not {value!r}")


class ResourceAPI(Generic[R, F]):
    """Searches of one resource over one client; every request goes through
    the client's rate limiter."""

    def __init__(
        self, fetcher: PageSource, resource: Resource[R, Any], *, clock: Clock | None = None
    ) -> None:
        self._fetcher = fetcher
        self._clock = clock
        self.resource = resource

    @overload
    def search(
        self,
        filter: F | None = ...,
        *,
        raw: Literal[False] = ...,
        max_items: int | None = ...,
        **options: Unpack[SearchKwargs],
    ) -> Search[R]: ...

    @overload
    def search(
        self,
        filter: F | None = ...,
        *,
        raw: Literal[True],
        max_items: int | None = ...,
        **options: Unpack[SearchKwargs],
    ) -> Search[RawRecord]: ...

    @overload
    def search(
        self,
        filter: F | None = ...,
        *,
        raw: bool,
        max_items: int | None = ...,
        **options: Unpack[SearchKwargs],
    ) -> Search[R] | Search[RawRecord]: ...

    def search(
        self,
        filter: F | None = None,
        *,
        raw: bool = False,
        max_items: int | None = None,
        **options: Unpack[SearchKwargs],
    ) -> Search[R] | Search[RawRecord]:
        """Every record ``filter`` matches, each exactly once, as an async iterator.

        Past the 100,000-record search cap the date range is split into windows
        that fit (see :mod:`copper_async._planner`). ``raw=True`` yields the
        records as plain dicts, skipping the typed structuring. ``max_items``
        stops it after that many records, asking for no more pages than
        those take. The options
        are :class:`~copper_async._options.SearchOptions`'; invalid ones raise
        :class:`~copper_async.exceptions.InvalidOptionError` here, before any
        request.
        """
        options_of_search = search_options(options, max_items)
        return self._start(filter, raw=raw, options=options_of_search, max_items=max_items)

    # Typed like search(): records, or dicts with raw=True.
    @overload
    def search_many(
        self,
        filters: Iterable[F | None],
        *,
        union: bool = ...,
        raw: Literal[False] = ...,
        max_items: int | None = ...,
        **options: Unpack[SearchKwargs],
    ) -> MultiSearch[R]: ...

    @overload
    def search_many(
        self,
        filters: Iterable[F | None],
        *,
        union: bool = ...,
        raw: Literal[True],
        max_items: int | None = ...,
        **options: Unpack[SearchKwargs],
    ) -> MultiSearch[RawRecord]: ...

    @overload
    def search_many(
        self,
        filters: Iterable[F | None],
        *,
        union: bool = ...,
        raw: bool,
        max_items: int | None = ...,
        **options: Unpack[SearchKwargs],
    ) -> MultiSearch[R] | MultiSearch[RawRecord]: ...

    def search_many(
        self,
        filters: Iterable[F | None],
        *,
        union: bool = False,
        raw: bool = False,
        max_items: int | None = None,
        **options: Unpack[SearchKwargs],
    ) -> MultiSearch[R] | MultiSearch[RawRecord]:
        """Run several searches concurrently; yield records from all as they arrive.

        ``union=True`` yields a record matched by several filters once.
        ``max_items`` stops it after that many records in all. Takes the same
        keyword options as :meth:`search`, applied to each.
        """
        if isinstance(filters, self.resource.filter_class):
            raise InvalidOptionError("filters", "must be a list of filters, not one filter")
        if isinstance(filters, str | bytes | dict) or not isinstance(filters, Iterable):
            raise InvalidOptionError(
                "filters", f"must be a list of filters, not {type(filters).__name__}"
            )
        _check_flag("union", union)
        options_of_each = search_options(options, max_items)
        # Each search is of the one kind ``raw`` picks, as the overloads say.
        searches: list[Any] = [
            self._start(f, raw=raw, options=options_of_each, max_items=max_items) for f in filters
        ]
        id_of = self.resource.raw_id if raw else self.resource.typed_id
        return MultiSearch[Any](searches, union=union, id_of=id_of, max_items=max_items)

    async def count(self, filter: F | None = None) -> int | None:
        """How many records ``filter`` matches, from one request of one record.

        This is Copper's ``X-PW-TOTAL``, which Copper documents as an upper
        bound: a search may yield fewer (records deleted meanwhile, or past
        the 100,000-record search cap, which some accounts' totals stop at).
        None when the answer carried no usable total. The request passes the
        client's rate limiter and retries like any page.
        """
        query: SearchFilter = checked_filter(filter, self.resource.filter_class)
        body = query.to_body(page_number=1, page_size=1)
        page = await self._fetcher.fetch_page(body, path=self.resource.path, context={})
        if page.total is None:
            return None
        # A total below what the page itself holds is not even an upper bound.
        return max(page.total, len(page.records))

    def _start(
        self, filter: F | None, *, raw: bool, options: SearchOptions, max_items: int | None
    ) -> Search[R] | Search[RawRecord]:
        _check_flag("raw", raw)
        if raw:
            return Search[RawRecord](
                self._fetcher,
                filter,
                resource=self.resource,
                options=options,
                clock=self._clock,
                max_items=max_items,
            )
        return Search[R](
            self._fetcher,
            filter,
            resource=self.resource,
            options=options,
            structure=self.resource.structure_page,
            clock=self._clock,
            max_items=max_items,
        )


class OpportunitiesAPI(ResourceAPI[Opportunity, OpportunityFilter]):
    """``client.opportunities``: searches over every opportunity."""

    def __init__(self, fetcher: PageSource, *, clock: Clock | None = None) -> None:
        super().__init__(fetcher, OPPORTUNITIES, clock=clock)
