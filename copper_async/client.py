"""``CopperClient``: the aiohttp layer that sends search requests.

It sends, waits and retries; nothing more. What a request and a response
mean is in :mod:`copper_async._protocol`, when to retry in
:mod:`copper_async._retry`, pacing in :mod:`copper_async._ratelimit`. aiohttp
and asyncio errors are translated into :mod:`copper_async.exceptions` in one
place, :meth:`CopperClient._send`, and raised from one place,
:meth:`CopperClient.fetch_page`. The access token lives only in the request
headers: it is in no repr, log line or error.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import aiohttp
import attrs
from multidict import CIMultiDict, CIMultiDictProxy

from copper_async import _protocol as protocol
from copper_async._clock import Clock, LoopClock
from copper_async._closing import AsyncClosing
from copper_async._opportunities import OpportunitiesAPI
from copper_async._pages import RawPage
from copper_async._protocol import StatusClass
from copper_async._ratelimit import RateLimit, RequestLimiter
from copper_async._records import Opportunity, structure_page
from copper_async._retry import Failure, GiveUp, RetryPolicy
from copper_async.exceptions import (
    APIError,
    AuthenticationError,
    CopperError,
    InvalidOptionError,
    InvalidRequestError,
    RateLimitedError,
    RecordError,
    RequestTimeoutError,
    ResponseFormatError,
    ServerError,
    TransportError,
)
from copper_async.filters import DEFAULT_PAGE_SIZE, OpportunityFilter

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "ClientStats",
    "CopperClient",
    "RawPage",
    "RetryEvent",
    "SearchPage",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 2**20
# An error body is only shown to people: a few KiB is plenty.
_ERROR_BODY_BYTES = 8192
_MAX_TIMEOUT = 3600.0
_REDACTED = "***"


@attrs.frozen
class SearchPage:
    """One page of :meth:`CopperClient.search_page`: typed records and the total."""

    records: list[Opportunity]
    total: int | None
    page_number: int
    page_size: int


@attrs.frozen
class RetryEvent:
    """Passed to ``on_retry`` before the client waits to send again."""

    failure: Failure
    attempt: int
    delay: float
    status: int | None
    context: Mapping[str, Any]


@attrs.define
class ClientStats:
    """Live counters of one client, shared by every request it makes."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    timeouts: int = 0
    connection_errors: int = 0
    bytes_read: int = 0
    responses: dict[int, int] = attrs.field(factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The counters as plain data."""
        return attrs.asdict(self)


@attrs.frozen
class _Attempt:
    """The outcome of one send: a page, or a failure with what explains it."""

    page: RawPage | None = None
    failure: Failure | None = None
    status: int | None = None
    body: str = ""
    retry_after: float | None = None
    reason: str = ""  # why a 2xx body was refused
    excerpt: str = ""
    cause: BaseException | None = None  # the aiohttp / asyncio error, token scrubbed
    timeout: float = 0.0  # the time this attempt was given


_STATUS_ERRORS: Final[dict[Failure | None, tuple[type[APIError], str]]] = {
    Failure.AUTHENTICATION: (AuthenticationError, "Copper refused the credentials"),
    Failure.RATE_LIMITED: (RateLimitedError, "Copper kept answering 429 Too Many Requests"),
    Failure.SERVER_ERROR: (ServerError, "Copper kept answering with a server error"),
}


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
    :class:`RetryEvent` before each retry wait. ``clock`` times retries,
    backoff, deadlines and 429 pauses; the pacing between sends runs on the
    event loop's own clock (aiolimiter's), so tests that fake time patch the
    loop's clock (looptime), as aiolimiter's own tests do.
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
    ) -> None:
        if not isinstance(allow_insecure_http, bool):
            raise InvalidOptionError("allow_insecure_http", "must be True or False")
        self.base_url = protocol.validate_base_url(
            base_url, allow_insecure_http=allow_insecure_http
        )
        self._headers = protocol.request_headers(
            access_token=access_token, user_email=user_email, user_agent=user_agent
        )
        self._token = access_token
        self.user_email = user_email
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
        self.rate_limit = rate_limit
        self.retry = retry
        self.timeout = _check_timeout(timeout)
        self._timeout = aiohttp.ClientTimeout(total=self.timeout)
        self.max_response_bytes = _check_max_bytes(max_response_bytes)
        self.stats = ClientStats()
        self._clock: Clock = clock if clock is not None else LoopClock()
        self._on_retry = on_retry
        self._session = session
        self._owns_session = session is None
        self._limiter: RequestLimiter | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, user_email={self.user_email!r}, "
            f"access_token={_REDACTED!r}, rate_limit={self.rate_limit}, closed={self._closed})"
        )

    __str__ = __repr__

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> CopperClient:
        self._ensure_session()
        self.limiter  # noqa: B018 - built here, inside the loop it will run in
        return self

    async def aclose(self) -> None:
        """Close the session if this client created it; idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session and not session.closed:
            await session.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` ran."""
        return self._closed

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The aiohttp session in use; None before first use and after :meth:`aclose`."""
        return self._session

    @property
    def opportunities(self) -> OpportunitiesAPI:
        """Searches over every opportunity: ``client.opportunities.search(...)``."""
        return OpportunitiesAPI(self, clock=self._clock)

    @property
    def limiter(self) -> RequestLimiter:
        """The one limiter every request of this client passes (built on first use)."""
        if self._limiter is None:
            self._limiter = RequestLimiter(self.rate_limit, clock=self._clock)
        return self._limiter

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise CopperError("the client is closed")
        if self._session is None:
            # Created lazily so it binds to the running loop.
            self._session = aiohttp.ClientSession()
        elif self._session.closed:
            raise CopperError("the aiohttp session given to the client is closed")
        return self._session

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
        if filter is not None and not isinstance(filter, OpportunityFilter):
            raise InvalidOptionError(
                "filter", f"must be an OpportunityFilter or None, not {type(filter).__name__}"
            )
        query = filter if filter is not None else OpportunityFilter()
        body = query.to_body(page_number=page_number, page_size=page_size)
        raw = await self.fetch_page(body, context=context)
        try:
            records = structure_page(raw.records)
        except (RecordError, ResponseFormatError) as err:
            err.context.update(protocol.body_paging(body))
            err.context.update(context or {})
            raise
        return SearchPage(
            records=records, total=raw.total, page_number=page_number, page_size=page_size
        )

    async def fetch_page(
        self,
        body: Mapping[str, Any],
        *,
        path: str = protocol.SEARCH_PATH,
        context: Mapping[str, Any] | None = None,
    ) -> RawPage:
        """POST one search ``body``; the records as dicts, retried per the policy.

        ``context`` (e.g. the window) is added to any error raised, with the
        body's ``page_number`` and ``page_size`` and the number of attempts.
        """
        data = protocol.encode_body(body)
        url = protocol.endpoint_url(self.base_url, path)
        where = {**protocol.body_paging(body), **dict(context or {})}
        session = self._ensure_session()
        limiter = self.limiter
        policy = self.retry
        clock = self._clock
        started = ends = math.inf  # the first send starts the deadline
        attempt = 0
        rate_limited = 0
        last: _Attempt | None = None  # the previous attempt, which failed
        while True:
            if not await limiter.acquire(latest=ends, max_pause=policy.max_wait):
                # A 429 paused every caller for longer than this request may wait.
                now = clock.monotonic()
                held = max((limiter.paused_until or now) - now, 0.0)
                extra: dict[str, Any] = {"attempts": attempt, "retry_after": held}
                if now + held > ends:
                    extra.update(deadline_reached=True, deadline=policy.deadline)
                error = self._held(last, {**where, **extra}, held)
                logger.info("giving up: every request is paused for %.3fs; %s", held, error)
                raise error from (last.cause if last is not None else None)
            # Checked with no await before the send: aiohttp raises RuntimeError on a
            # closed session, and a closed client must not keep retrying.
            self._check_open(session, where)
            now = clock.monotonic()
            if last is not None and now >= ends:
                # The wait for a paced slot used up what the deadline left.
                extra = {"attempts": attempt, "deadline_reached": True, "deadline": policy.deadline}
                error = self._error(last, {**where, **extra}, attempt)
                logger.info("giving up: the %gs deadline passed; %s", policy.deadline, error)
                raise error from last.cause
            if last is None:
                started, ends = now, now + policy.deadline
            attempt += 1
            result = await self._send(session, url, data, min(self.timeout, ends - now))
            if result.page is not None:
                return attrs.evolve(result.page, attempts=attempt, rate_limited=rate_limited)
            self._check_open(session, where)
            failure = result.failure
            assert failure is not None
            now = clock.monotonic()
            if failure is Failure.RATE_LIMITED:
                rate_limited += 1
                if result.retry_after is not None:
                    # The server counts this client's calls: hold all of them for as
                    # long as it asked, whether or not this request waits that long.
                    limiter.pause_until(now + result.retry_after)
            decision = policy.decide(
                failure,
                attempt=attempt,
                elapsed=now - started,
                retry_after=result.retry_after,
            )
            if isinstance(decision, GiveUp):
                extra = {"attempts": attempt}
                if result.retry_after is not None:
                    extra["retry_after"] = result.retry_after
                if decision.deadline_reached:
                    extra.update(deadline_reached=True, deadline=policy.deadline)
                # A Retry-After that ended the request is what the caller must know.
                told = decision.retry_after is not None
                message = f"not retried: {decision.reason}" if told else None
                error = self._error(result, {**where, **extra}, attempt, message=message)
                logger.info("giving up: %s; %s", decision.reason, error)
                raise error from result.cause
            delay = decision.delay
            self.stats.retries += 1
            logger.info(
                "retrying after %s (attempt %d of %d, status %s) in %.3fs %r",
                failure.value,
                attempt,
                policy.attempts,
                result.status,
                delay,
                where,
            )
            if failure is Failure.RATE_LIMITED and result.retry_after is None:
                limiter.pause_until(now + delay)
            if self._on_retry is not None:
                self._on_retry(RetryEvent(failure, attempt, delay, result.status, where))
            last = result
            await clock.sleep(delay)

    def _check_open(self, session: aiohttp.ClientSession, where: Mapping[str, Any]) -> None:
        if self._closed or session.closed:
            raise CopperError("the client was closed while a request was pending", context=where)

    async def _send(
        self, session: aiohttp.ClientSession, url: str, data: bytes, budget: float
    ) -> _Attempt:
        """One attempt, given ``budget`` seconds. The only place aiohttp and
        asyncio errors are caught; what is kept of them holds no token."""
        stats = self.stats
        stats.requests += 1
        started = self._clock.monotonic()
        limit = self._timeout if budget >= self.timeout else aiohttp.ClientTimeout(total=budget)
        try:
            async with session.post(
                url,
                data=data,
                headers=self._headers,
                timeout=limit,
                allow_redirects=False,  # a redirect would carry the token elsewhere
                raise_for_status=False,
            ) as response:
                status = response.status
                stats.responses[status] = stats.responses.get(status, 0) + 1
                kind = protocol.classify_status(status)
                if kind is not StatusClass.OK:
                    return await self._failed_status(response, kind)
                declared = response.content_length
                if declared is not None and declared > self.max_response_bytes:
                    response.close()
                    return self._too_large(status, declared)
                body = await _read_bounded(response.content, self.max_response_bytes)
                if body is None:
                    response.close()
                    return self._too_large(status, None)
                stats.bytes_read += len(body)
                total = protocol.parse_total(response.headers)
        except TimeoutError as err:  # asyncio's and aiohttp's timeouts alike
            stats.timeouts += 1
            cause = _scrubbed(err, self._token)
            return _Attempt(failure=Failure.TIMEOUT, cause=cause, timeout=budget)
        except (aiohttp.ClientError, OSError) as err:
            stats.connection_errors += 1
            return _Attempt(failure=Failure.CONNECTION, cause=_scrubbed(err, self._token))
        try:
            value = protocol.decode_json(body)
        except ResponseFormatError as err:
            return self._bad_body(Failure.MALFORMED_BODY, status, err.reason, body)
        try:
            records = protocol.check_records(value, body)
        except ResponseFormatError as err:
            return self._bad_body(Failure.UNEXPECTED_BODY, status, err.reason, body)
        elapsed = self._clock.monotonic() - started
        logger.debug("POST %s -> %d, %d bytes in %.3fs", url, status, len(body), elapsed)
        return _Attempt(page=RawPage(records, total, status, elapsed, len(body)), status=status)

    async def _failed_status(self, response: aiohttp.ClientResponse, kind: StatusClass) -> _Attempt:
        status = response.status
        raw = await _read_bounded(response.content, _ERROR_BODY_BYTES, truncate=True) or b""
        self.stats.bytes_read += len(raw)
        text = protocol.error_text(self._redact_bytes(raw))
        retry_after = None
        if kind is StatusClass.RATE_LIMITED:
            self.stats.rate_limited += 1
        if kind in (StatusClass.RATE_LIMITED, StatusClass.SERVER):
            # The server's Date as "now" cancels clock skew between us and it.
            server_now = protocol.parse_http_date(response.headers.get("Date"))
            retry_after = protocol.parse_retry_after(
                response.headers.get("Retry-After"),
                server_now if server_now is not None else time.time(),
            )
        failure = {
            StatusClass.AUTHENTICATION: Failure.AUTHENTICATION,
            StatusClass.RATE_LIMITED: Failure.RATE_LIMITED,
            StatusClass.SERVER: Failure.SERVER_ERROR,
            StatusClass.INVALID: Failure.INVALID_REQUEST,
        }[kind]
        logger.debug("POST %s -> %d", response.url, status)
        return _Attempt(failure=failure, status=status, body=text, retry_after=retry_after)

    def _too_large(self, status: int, declared: int | None) -> _Attempt:
        size = f"{declared} bytes" if declared is not None else "more than that"
        reason = f"response body of {size} exceeds max_response_bytes={self.max_response_bytes}"
        return _Attempt(failure=Failure.TOO_LARGE, status=status, reason=reason)

    def _bad_body(self, failure: Failure, status: int, reason: str, body: bytes) -> _Attempt:
        excerpt = protocol.excerpt(self._redact_bytes(body))
        return _Attempt(failure=failure, status=status, reason=reason, excerpt=excerpt)

    # A proxy's error page may echo request headers back: redact before
    # anything is cut to length, so no fragment of the token survives.
    def _redact_bytes(self, body: bytes) -> bytes:
        token = self._token.encode()
        return body.replace(token, _REDACTED.encode()) if token in body else body

    def _redact(self, text: str) -> str:
        return text.replace(self._token, _REDACTED) if self._token in text else text

    def _held(self, last: _Attempt | None, where: dict[str, Any], held: float) -> CopperError:
        """The exception for a request a pause keeps from being sent in time."""
        if last is not None:
            return self._error(last, where, where["attempts"])
        return RateLimitedError(
            f"not sent: a 429 paused this client for {held:.3f}s more, longer than "
            f"its retry policy waits ({self.retry.max_wait:g}s)",
            status=429,
            attempts=0,
            context=where,
        )

    def _error(
        self,
        result: _Attempt,
        where: dict[str, Any],
        attempts: int,
        *,
        message: str | None = None,
    ) -> CopperError:
        """The exception for a request that failed for good; ``message`` replaces
        the usual one of an error status."""
        failure = result.failure
        cause = result.cause
        if failure is Failure.TIMEOUT:
            return RequestTimeoutError(
                f"no response within {result.timeout:g}s from {self.base_url}", context=where
            )
        if failure is Failure.CONNECTION:
            detail = self._redact(f"{type(cause).__name__}: {cause}")
            return TransportError(f"request to {self.base_url} failed: {detail}", context=where)
        if failure in (Failure.MALFORMED_BODY, Failure.UNEXPECTED_BODY, Failure.TOO_LARGE):
            return ResponseFormatError(result.reason, excerpt=result.excerpt, context=where)
        status = result.status if result.status is not None else 0
        error_type, usual = _STATUS_ERRORS.get(
            failure, (InvalidRequestError, "Copper rejected the request")
        )
        return error_type(
            message or usual, status=status, body=result.body, attempts=attempts, context=where
        )


async def _read_bounded(
    content: aiohttp.StreamReader, limit: int, *, truncate: bool = False
) -> bytes | None:
    """Read a body up to ``limit`` bytes without buffering more.

    Past the limit: None, or with ``truncate`` the first ``limit`` bytes.
    """
    chunks: list[bytes] = []
    size = 0
    while chunk := await content.readany():
        size += len(chunk)
        if size > limit:
            if not truncate:
                return None
            chunks.append(chunk[: limit - (size - len(chunk))])
            break
        chunks.append(chunk)
    return b"".join(chunks)


# -- keeping the token out of exception chains ----------------------------------------


def _scrubbed(error: BaseException, token: str) -> BaseException:
    """``error``, or a copy of it and its chain in which ``token`` is nowhere.

    aiohttp's ClientResponseError (bad status line, chunking, Content-Length,
    an oversized header) keeps the request's headers, the token among them, in
    ``request_info``: an error reporter that serialises exception chains would
    record it. The copy keeps the type, message and traceback.
    """
    clean = _scrub(error, token, {}, set())
    assert clean is not None  # only a link back to an exception in progress is cut
    return clean


def _scrub(
    error: BaseException, token: str, done: dict[int, BaseException], active: set[int]
) -> BaseException | None:
    key = id(error)
    if key in done:
        return done[key]
    if key in active:
        return None  # a cycle: the copy ends here
    active.add(key)
    links = [
        None if link is None else _scrub(link, token, done, active)
        for link in (error.__cause__, error.__context__)
    ]
    active.discard(key)
    clean = error
    holds = isinstance(error, aiohttp.ClientResponseError) or token in repr(
        (error.args, vars(error))
    )
    if holds or links != [error.__cause__, error.__context__]:
        clean = _copy(error, token)
        clean.__cause__, clean.__context__ = links
        clean.__suppress_context__ = error.__suppress_context__
    done[key] = clean
    return clean


def _copy(error: BaseException, token: str) -> BaseException:
    kind = type(error)
    try:
        # No __init__: exception constructors differ; the state is copied below.
        clean = kind.__new__(kind)
        clean.__dict__.update({name: _clean(value, token) for name, value in vars(error).items()})
        clean.args = tuple(_clean(value, token) for value in error.args)
        if isinstance(clean, aiohttp.ClientResponseError):
            # Redirects are never followed, but each response holds its request_info.
            clean.history = ()
            clean.args = (clean.request_info, ())
    except Exception:  # an exotic exception must not hide the failure it reports
        return aiohttp.ClientError(_clean(f"{kind.__name__}: {error}", token))
    return clean.with_traceback(error.__traceback__)


def _clean(value: Any, token: str) -> Any:
    if isinstance(value, aiohttp.RequestInfo):
        headers = _clean_headers(value.headers, token)
        return aiohttp.RequestInfo(value.url, value.method, headers, value.real_url)
    if isinstance(value, str):
        return value.replace(token, _REDACTED)
    if isinstance(value, bytes):
        return value.replace(token.encode(), _REDACTED.encode())
    if token not in repr(value):
        return value
    if isinstance(value, Mapping):
        return _clean_headers(value, token)
    if type(value) is tuple:
        return tuple(_clean(item, token) for item in value)
    return _REDACTED


def _clean_headers(headers: Mapping[str, str], token: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(
        CIMultiDict((name, _clean(str(value), token)) for name, value in headers.items())
    )
