"""One search request, sent until it succeeds or fails for good.

Everything between the facade (:mod:`copper_async.client`) and the aiohttp
binding (:mod:`copper_async._transport`) is here, in one place: the retry
loop and its total deadline, the limiter, 429 pauses, ``on_retry`` events,
the statistics, the meaning of a status (by :mod:`copper_async._protocol`'s
classes) and the redaction of the token from error bodies and messages.

Time and chance come from one :class:`~copper_async._clock.Clock`: the
deadline and the waits read its monotonic time, the backoff jitter its
``random()``, a ``Retry-After`` date its wall time. The limiter runs on the
same clock (see :class:`~copper_async._ratelimit.RequestLimiter`).

Every error leaves with its context (the caller's, the page, the number of
attempts, the ``Retry-After``, whether the deadline ended it) given when it
is made, here.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Final, NoReturn, TypeVar

import attrs

from copper_async import _protocol as protocol
from copper_async._clock import Clock
from copper_async._pages import RawPage
from copper_async._protocol import StatusClass
from copper_async._ratelimit import RequestLimiter
from copper_async._redact import Redactor
from copper_async._retry import Failure, GiveUp, RetryPolicy
from copper_async._transport import AiohttpTransport, Response
from copper_async.exceptions import (
    APIError,
    AuthenticationError,
    ClientClosedError,
    CopperError,
    InvalidRequestError,
    RateLimitedError,
    RequestTimeoutError,
    ResponseFormatError,
    ResponseTooLargeError,
    ServerError,
    TransportError,
)

__all__ = ["ClientStats", "Requester", "RetryEvent"]

T = TypeVar("T")

# The client's public logger: its name does not follow the private module layout.
logger = logging.getLogger("copper_async.client")


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
class _Failed:
    """One failed attempt, and what explains it.

    ``error`` is the transport's or the body's error, still without context;
    an error status keeps its ``status``, redacted ``body`` and ``retry_after``.
    """

    failure: Failure
    status: int | None = None
    body: str = ""
    retry_after: float | None = None
    error: CopperError | None = None


@attrs.define
class _Progress:
    """One request's attempts so far; the deadline starts at the first send."""

    attempts: int = 0
    rate_limited: int = 0
    started: float = math.inf
    ends: float = math.inf
    last: _Failed | None = None  # the previous attempt, which failed


_FAILURES: Final = {
    StatusClass.AUTHENTICATION: Failure.AUTHENTICATION,
    StatusClass.RATE_LIMITED: Failure.RATE_LIMITED,
    StatusClass.SERVER: Failure.SERVER_ERROR,
    StatusClass.INVALID: Failure.INVALID_REQUEST,
}
_STATUS_ERRORS: Final[dict[Failure, tuple[type[APIError], str]]] = {
    Failure.AUTHENTICATION: (AuthenticationError, "Copper refused the credentials"),
    Failure.RATE_LIMITED: (RateLimitedError, "Copper kept answering 429 Too Many Requests"),
    Failure.SERVER_ERROR: (ServerError, "Copper kept answering with a server error"),
    Failure.INVALID_REQUEST: (InvalidRequestError, "Copper rejected the request"),
}


@attrs.frozen(kw_only=True)
class Requester:
    """Sends requests through ``transport`` under one policy, limiter and clock."""

    transport: AiohttpTransport
    headers: Mapping[str, str] = attrs.field(repr=False)
    redactor: Redactor
    retry: RetryPolicy
    limiter: RequestLimiter
    clock: Clock
    timeout: float
    max_bytes: int
    stats: ClientStats
    on_retry: Callable[[RetryEvent], None] | None = None
    # The waits in progress (for the limiter, before a retry), for interrupt() to end.
    _waits: set[asyncio.Task[Any]] = attrs.field(factory=set, init=False, repr=False)

    async def post(self, url: str, data: bytes, where: Mapping[str, Any]) -> RawPage:
        """POST ``data`` to ``url``, retried per the policy; errors carry ``where``."""
        return await self.send("POST", url, data, where)

    async def get(self, url: str, where: Mapping[str, Any]) -> RawPage:
        """GET ``url`` (a JSON array, as a page), retried and paced as a POST is."""
        return await self.send("GET", url, b"", where)

    async def send(self, method: str, url: str, data: bytes, where: Mapping[str, Any]) -> RawPage:
        """Send one request until it succeeds or fails for good."""
        progress = _Progress()
        policy, clock = self.retry, self.clock
        while True:
            await self._unless_closed(self._acquire(progress, where), where)
            # Checked with no await before the send: a closed client must not keep retrying.
            self._check_open(where)
            now = clock.monotonic()
            if progress.last is not None and now >= progress.ends:
                # The wait for a paced slot used up what the deadline left.
                extra = {"deadline_reached": True, "deadline": policy.deadline}
                self._give_up(
                    progress.last,
                    progress,
                    where,
                    extra,
                    f"the {policy.deadline:g}s deadline passed",
                )
            if progress.last is None:
                progress.started, progress.ends = now, now + policy.deadline
            progress.attempts += 1
            outcome = await self._attempt(method, url, data, min(self.timeout, progress.ends - now))
            if isinstance(outcome, RawPage):
                return attrs.evolve(
                    outcome, attempts=progress.attempts, rate_limited=progress.rate_limited
                )
            self._check_open(where)
            delay = self._next_wait(outcome, progress, where)
            progress.last = outcome
            await self._unless_closed(clock.sleep(delay), where)

    def interrupt(self) -> None:
        """End every wait in progress (a 429 pause, a backoff): the client is closing.

        Each request waiting raises the closed client's error at once instead of
        sleeping out a ``Retry-After`` that can last minutes.
        """
        for wait in self._waits:
            wait.cancel()

    async def _unless_closed(self, wait: Coroutine[Any, Any, T], where: Mapping[str, Any]) -> T:
        """Await ``wait`` in a task of its own, which :meth:`interrupt` cancels."""
        try:
            # A close that came as the previous wait ended: do not begin another.
            self._check_open(where)
        except CopperError:
            wait.close()
            raise
        task = asyncio.create_task(wait)
        self._waits.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            caller = asyncio.current_task()
            # Cancelled by interrupt(), not through the caller: the client closed.
            if task.cancelled() and caller is not None and not caller.cancelling():
                raise _closed_error(where) from None
            raise
        finally:
            self._waits.discard(task)

    def _check_open(self, where: Mapping[str, Any]) -> None:
        if self.transport.closed:
            raise _closed_error(where)

    async def _acquire(self, progress: _Progress, where: Mapping[str, Any]) -> None:
        """Wait for the limiter; give up when a 429 pause outlasts what this request may wait."""
        if await self.limiter.acquire(latest=progress.ends, max_pause=self.retry.max_wait):
            return
        now = self.clock.monotonic()
        held = max((self.limiter.paused_until or now) - now, 0.0)
        extra: dict[str, Any] = {"retry_after": held}
        if now + held > progress.ends:
            extra.update(deadline_reached=True, deadline=self.retry.deadline)
        reason = f"every request is paused for {held:.3f}s"
        if progress.last is not None:
            self._give_up(progress.last, progress, where, extra, reason)
        error = RateLimitedError(
            f"not sent: a 429 paused this client for {held:.3f}s more, longer than "
            f"its retry policy waits ({self.retry.max_wait:g}s)",
            status=429,
            attempts=0,
            context={**where, "attempts": 0, **extra},
        )
        logger.info("giving up: %s; %s", reason, error)
        raise error

    def _next_wait(self, failed: _Failed, progress: _Progress, where: Mapping[str, Any]) -> float:
        """The wait before the next attempt, after pausing the limiter for a 429;
        raises the request's error when the policy gives up."""
        policy, limiter = self.retry, self.limiter
        now = self.clock.monotonic()
        if failed.failure is Failure.RATE_LIMITED:
            progress.rate_limited += 1
            if failed.retry_after is not None:
                # The server counts this client's calls: hold all of them for as
                # long as it asked, whether or not this request waits that long.
                limiter.pause_until(now + failed.retry_after)
        decision = policy.decide(
            failed.failure,
            attempt=progress.attempts,
            elapsed=now - progress.started,
            jitter=self.clock.random(),
            retry_after=failed.retry_after,
        )
        if isinstance(decision, GiveUp):
            self._give_up_on(decision, failed, progress, where)
        delay = decision.delay
        self.stats.retries += 1
        logger.info(
            "retrying after %s (attempt %d of %d, status %s) in %.3fs %r",
            failed.failure.value,
            progress.attempts,
            policy.attempts,
            failed.status,
            delay,
            where,
        )
        if failed.failure is Failure.RATE_LIMITED and failed.retry_after is None:
            limiter.pause_until(now + delay)
        if self.on_retry is not None:
            self.on_retry(
                RetryEvent(failed.failure, progress.attempts, delay, failed.status, where)
            )
        return delay

    def _give_up_on(
        self, decision: GiveUp, failed: _Failed, progress: _Progress, where: Mapping[str, Any]
    ) -> NoReturn:
        extra: dict[str, Any] = {}
        if failed.retry_after is not None:
            extra["retry_after"] = failed.retry_after
        if decision.deadline_reached:
            extra.update(deadline_reached=True, deadline=self.retry.deadline)
        # A Retry-After that ended the request is what the caller must know.
        told = decision.retry_after is not None
        message = f"not retried: {decision.reason}" if told else None
        self._give_up(failed, progress, where, extra, decision.reason, message=message)

    def _give_up(
        self,
        failed: _Failed,
        progress: _Progress,
        where: Mapping[str, Any],
        extra: Mapping[str, Any],
        reason: str,
        *,
        message: str | None = None,
    ) -> NoReturn:
        """Raise the error of a request that failed for good, with all its context."""
        context = {**where, "attempts": progress.attempts, **extra}
        error, cause = _final_error(failed, context, progress.attempts, message)
        logger.info("giving up: %s; %s", reason, error)
        raise error from cause

    async def _attempt(
        self, method: str, url: str, data: bytes, budget: float
    ) -> RawPage | _Failed:
        """One send, given ``budget`` seconds: a page, or what failed."""
        stats = self.stats
        stats.requests += 1
        started = self.clock.monotonic()
        try:
            response = await self.transport.send(
                method,
                url,
                headers=self.headers,
                body=data,
                timeout=budget,
                max_bytes=self.max_bytes,
            )
        except TransportError as err:
            timed_out = isinstance(err, RequestTimeoutError)
            if timed_out:
                stats.timeouts += 1
            else:
                stats.connection_errors += 1
            return _Failed(Failure.TIMEOUT if timed_out else Failure.CONNECTION, error=err)
        except ResponseTooLargeError as err:
            return _Failed(Failure.TOO_LARGE, error=err)
        elapsed = self.clock.monotonic() - started
        status, size = response.status, len(response.body)
        logger.debug("%s %s -> %d, %d bytes in %.3fs", method, url, status, size, elapsed)
        stats.responses[status] = stats.responses.get(status, 0) + 1
        stats.bytes_read += size
        kind = protocol.classify_status(status)
        if kind is not StatusClass.OK:
            return self._failed_status(response, kind)
        return self._page(response, elapsed)

    def _failed_status(self, response: Response, kind: StatusClass) -> _Failed:
        retry_after = None
        if kind is StatusClass.RATE_LIMITED:
            self.stats.rate_limited += 1
        if kind in (StatusClass.RATE_LIMITED, StatusClass.SERVER):
            retry_after = protocol.read_retry_after(response.headers, self.clock.time())
        text = protocol.error_text(self.redactor.bytes(response.body))
        return _Failed(_FAILURES[kind], response.status, text, retry_after)

    def _page(self, response: Response, elapsed: float) -> RawPage | _Failed:
        body = response.body
        try:
            value = protocol.decode_json(body)
        except ResponseFormatError as err:
            return self._bad_body(Failure.MALFORMED_BODY, response, err)
        try:
            records = protocol.check_records(value, body)
        except ResponseFormatError as err:
            return self._bad_body(Failure.UNEXPECTED_BODY, response, err)
        total = protocol.parse_total(response.headers)
        server_date = protocol.parse_http_date(protocol.header(response.headers, "Date"))
        return RawPage(records, total, response.status, elapsed, len(body), server_date=server_date)

    def _bad_body(self, failure: Failure, response: Response, err: ResponseFormatError) -> _Failed:
        # The excerpt is cut again from the redacted body: no fragment of the token survives.
        excerpt = protocol.excerpt(self.redactor.bytes(response.body))
        error = ResponseFormatError(err.reason, excerpt=excerpt)
        return _Failed(failure, response.status, error=error)


def _closed_error(where: Mapping[str, Any]) -> ClientClosedError:
    return ClientClosedError("the client was closed while a request was pending", context=where)


def _final_error(
    failed: _Failed, context: dict[str, Any], attempts: int, message: str | None
) -> tuple[CopperError, BaseException | None]:
    """The error a request that failed for good raises, and its cause.

    ``message`` replaces the usual one of an error status.
    """
    error = failed.error
    if isinstance(error, TransportError):
        # The transport's error again, with the context; its cause is aiohttp's, scrubbed.
        return type(error)(error.message, context=context), error.__cause__
    if isinstance(error, ResponseFormatError):
        return type(error)(error.reason, excerpt=error.excerpt, context=context), None
    error_type, usual = _STATUS_ERRORS[failed.failure]
    status = failed.status if failed.status is not None else 0
    final = error_type(
        message or usual, status=status, body=failed.body, attempts=attempts, context=context
    )
    return final, None
