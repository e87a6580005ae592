"""``CopperClient``: the facade over the HTTP layer and the search engine.

It validates its options and composes the pieces, each of which owns one
decision: :mod:`copper_async._transport` sends on aiohttp (and is the only
place aiohttp errors are caught), :mod:`copper_async._http` retries, paces
and translates statuses and bodies into pages or errors,
:mod:`copper_async._protocol` says what a request and a response mean, and
:mod:`copper_async._opportunities` runs searches over many pages. The access
token lives only in the request headers: it is in no repr, log line or error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import aiohttp
import attrs

from copper_async import _protocol as protocol
from copper_async._clock import Clock, LoopClock
from copper_async._closing import AsyncClosing
from copper_async._custom_fields import (
    DEFINITIONS_PATH,
    CustomFieldDefinition,
    structure_definitions,
)
from copper_async._engine import checked_filter
from copper_async._http import ClientStats, Requester, RetryEvent
from copper_async._opportunities import OpportunitiesAPI
from copper_async._pages import RawPage
from copper_async._ratelimit import RateLimit, RequestLimiter
from copper_async._records import Opportunity, structure_page
from copper_async._redact import REDACTED, Redactor
from copper_async._retry import RetryPolicy
from copper_async._transport import AiohttpTransport
from copper_async.exceptions import InvalidOptionError, RecordError
from copper_async.filters import DEFAULT_PAGE_SIZE, OpportunityFilter

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "ClientStats",
    "CopperClient",
    "CustomFieldDefinition",
    "RawPage",
    "RetryEvent",
    "SearchPage",
]

DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 2**20
_MAX_TIMEOUT = 3600.0


@attrs.frozen
class SearchPage:
    """One page of :meth:`CopperClient.search_page`: typed records and the total."""

    records: list[Opportunity]
    total: int | None
    page_number: int
    page_size: int


def _check_timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidOptionError("timeout", f"must be a number of seconds, not {value!r}")
    if not (math.isfinite(value) and 0 < value <= _MAX_TIMEOUT):
        raise InvalidOptionError("timeout", f"must be above 0 and at most {_MAX_TIMEOUT:g}s")
    return float(value)


def _check_max_bytes(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOptionError("max_response_bytes", f"must be an integer, not {value!r}")
    if not 1024 <= value <= 2**31:
        raise InvalidOptionError("max_response_bytes", "must be between 1 KiB and 2 GiB")
    return value


def _check_trace_configs(value: object, session: object) -> list[aiohttp.TraceConfig]:
    if isinstance(value, aiohttp.TraceConfig) or not isinstance(value, Sequence):
        raise InvalidOptionError("trace_configs", "must be a list of aiohttp.TraceConfig")
    configs = list(value)
    if not all(isinstance(config, aiohttp.TraceConfig) for config in configs):
        raise InvalidOptionError("trace_configs", "must be a list of aiohttp.TraceConfig")
    if configs and session is not None:
        # A session's trace configs are fixed when it is made: give them to it instead.
        raise InvalidOptionError(
            "trace_configs", "cannot be combined with session= (pass them to that session)"
        )
    return configs


def _check_types(
    *,
    session: object,
    rate_limit: object,
    retry: object,
    clock: object,
    on_retry: object,
    allow_insecure_http: object,
) -> None:
    if session is not None and not isinstance(session, aiohttp.ClientSession):
        raise InvalidOptionError("session", "must be an aiohttp.ClientSession or None")
    if rate_limit is not None and not isinstance(rate_limit, RateLimit):
        raise InvalidOptionError("rate_limit", "must be a RateLimit or None")
    if not isinstance(retry, RetryPolicy):
        raise InvalidOptionError("retry", "must be a RetryPolicy")
    if clock is not None and not isinstance(clock, Clock):
        raise InvalidOptionError(
            "clock", "must have time(), monotonic(), async sleep() and random()"
        )
    if on_retry is not None and not callable(on_retry):
        raise InvalidOptionError("on_retry", "must be callable or None")
    if not isinstance(allow_insecure_http, bool):
        raise InvalidOptionError("allow_insecure_http", "must be True or False")


class CopperClient(AsyncClosing):
    """An asyncio client of Copper's opportunity search.

    Use ``async with CopperClient(access_token=..., user_email=...) as
    client:``, or call :meth:`aclose` when done. The client owns one aiohttp
    session, created inside the running loop, unless ``session`` is given:
    then it uses that one and leaves it open. All requests pass one
    :class:`~copper_async._ratelimit.RequestLimiter` (``rate_limit=None``
    turns pacing off) and one :class:`~copper_async._retry.RetryPolicy`.
    Every option is validated here, raising
    :class:`~copper_async.exceptions.InvalidOptionError` naming it.

    A plain-HTTP ``base_url`` is refused unless its host is loopback or
    ``allow_insecure_http`` is set. ``timeout`` bounds each attempt;
    ``max_response_bytes`` each body. ``on_retry`` is called with a
    :class:`RetryEvent` before each retry wait. ``clock`` is the one source
    of time and chance: deadlines, waits, 429 pauses, the backoff jitter and
    the wall time a ``Retry-After`` date is read against. Pacing runs on the
    event loop's clock (aiolimiter's), so with a ``rate_limit`` the clock
    must be a :class:`~copper_async._clock.LoopClock` (the default): tests
    that fake time patch the loop's clock (looptime).

    ``trace_configs`` (aiohttp :class:`aiohttp.TraceConfig` objects, e.g.
    OpenTelemetry's ``create_trace_config()``) go to the session the client
    creates: they see every attempt, retries included.
    """

    def __init__(
        self,
        *,
        access_token: str,
        user_email: str,
        base_url: str = protocol.DEFAULT_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        rate_limit: RateLimit | None = RateLimit(),  # noqa: B008 - frozen, shared safely
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, shared safely
        timeout: float = 30.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        clock: Clock | None = None,
        allow_insecure_http: bool = False,
        user_agent: str = protocol.DEFAULT_USER_AGENT,
        on_retry: Callable[[RetryEvent], None] | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        _check_types(
            session=session,
            rate_limit=rate_limit,
            retry=retry,
            clock=clock,
            on_retry=on_retry,
            allow_insecure_http=allow_insecure_http,
        )
        self.base_url = protocol.validate_base_url(
            base_url, allow_insecure_http=allow_insecure_http
        )
        headers = protocol.request_headers(
            access_token=access_token, user_email=user_email, user_agent=user_agent
        )
        self.user_email = user_email
        self.rate_limit = rate_limit
        self.retry = retry
        self.timeout = _check_timeout(timeout)
        self.max_response_bytes = _check_max_bytes(max_response_bytes)
        self.stats = ClientStats()
        self._clock: Clock = clock if clock is not None else LoopClock()
        # Built here, outside any loop; aiolimiter's bucket binds on first use.
        self._limiter = RequestLimiter(rate_limit, clock=self._clock)
        redactor = Redactor(access_token)
        self._transport = AiohttpTransport(
            session, redactor, _check_trace_configs(trace_configs, session)
        )
        self._closed = False
        self._requester = Requester(
            transport=self._transport,
            headers=headers,
            redactor=redactor,
            retry=retry,
            limiter=self._limiter,
            clock=self._clock,
            timeout=self.timeout,
            max_bytes=self.max_response_bytes,
            stats=self.stats,
            on_retry=on_retry,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, user_email={self.user_email!r}, "
            f"access_token={REDACTED!r}, rate_limit={self.rate_limit}, closed={self.closed})"
        )

    __str__ = __repr__

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> CopperClient:
        self._transport.open()  # the session binds to the loop it is created in
        return self

    async def aclose(self) -> None:
        """Close the session if this client created it; idempotent.

        Requests waiting (out a 429's pause, or before a retry) end at once
        with the closed client's error.
        """
        self._closed = True
        self._requester.interrupt()
        await self._transport.aclose()

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` ran."""
        return self._closed

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The aiohttp session in use; None before first use and after :meth:`aclose`."""
        return self._transport.session

    @property
    def opportunities(self) -> OpportunitiesAPI:
        """Searches over every opportunity: ``client.opportunities.search(...)``."""
        return OpportunitiesAPI(self, clock=self._clock)

    @property
    def limiter(self) -> RequestLimiter:
        """The one limiter every request of this client passes."""
        return self._limiter

    # -- requests --------------------------------------------------------------

    async def search_page(
        self,
        filter: OpportunityFilter | None = None,
        *,
        page_number: int = 1,
        page_size: int = DEFAULT_PAGE_SIZE,
        context: Mapping[str, Any] | None = None,
    ) -> SearchPage:
        """One page of the opportunities ``filter`` matches, as typed records.

        Paging is validated before any request (InvalidFilterError); a
        malformed record raises RecordError with the page in its context.
        """
        query = checked_filter(filter, OpportunityFilter)
        body = query.to_body(page_number=page_number, page_size=page_size)
        raw = await self.fetch_page(body, context=context)
        try:
            records = structure_page(raw.records)
        except RecordError as err:
            # Raised again with the page it was found in, as a new error.
            where = {**protocol.body_paging(body), **dict(context or {}), **err.context}
            raise RecordError(err.path, err.reason, record_id=err.record_id, context=where) from err
        return SearchPage(
            records=records, total=raw.total, page_number=page_number, page_size=page_size
        )

    async def custom_field_definitions(self) -> list[CustomFieldDefinition]:
        """Every custom field definition of the account (``GET /custom_field_definitions``).

        Sent through the same limiter and retries as searches. Use
        :class:`~copper_async._custom_fields.CustomFieldNames` to name columns
        and option values from them. A malformed definition raises RecordError.
        """
        url = protocol.endpoint_url(self.base_url, DEFINITIONS_PATH)
        self._transport.open()
        page = await self._requester.get(url, {"path": DEFINITIONS_PATH})
        return structure_definitions(page.records)

    async def fetch_page(
        self,
        body: Mapping[str, Any],
        *,
        path: str = protocol.SEARCH_PATH,
        context: Mapping[str, Any] | None = None,
    ) -> RawPage:
        """POST one search ``body`` to ``path``; the records as dicts, retried per the policy.

        ``context`` (e.g. the window) is in any error raised, with the body's
        ``page_number`` and ``page_size`` and the number of attempts.
        """
        data = protocol.encode_body(body)
        url = protocol.endpoint_url(self.base_url, path)
        where = {**protocol.body_paging(body), **dict(context or {})}
        self._transport.open()
        return await self._requester.post(url, data, where)
