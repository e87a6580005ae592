"""CopperClient against real aiohttp servers on loopback.

Each test scripts a server's answers ("500, 500, then a page") and reads
back what it received. Waits run on a fake clock that records every sleep
and advances virtual time without sleeping, or, where the loop's own timers
matter (timeouts, pacing), on looptime's virtual loop clock.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import random
import re
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, TypeVar

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from copper_async import exceptions
from copper_async._clock import Clock, LoopClock
from copper_async._ratelimit import RateLimit
from copper_async._records import Opportunity
from copper_async._redact import Redactor
from copper_async._retry import Failure, RetryPolicy
from copper_async._transport import ERROR_BODY_BYTES, AiohttpTransport, Response
from copper_async.client import ClientStats, CopperClient, RawPage, RetryEvent, SearchPage
from copper_async.exceptions import (
    APIError,
    AuthenticationError,
    ClientClosedError,
    CopperError,
    InvalidFilterError,
    InvalidOptionError,
    InvalidRequestError,
    RateLimitedError,
    RecordError,
    RequestTimeoutError,
    ResponseFormatError,
    ResponseTooLargeError,
    ServerError,
    TransportError,
)
from copper_async.filters import OpportunityFilter
from tests.fakes import (
    CLOCK_SEED,
    Account,
    Answer,
    FakeClock,
    Scripted,
    closed_port,
    exception_texts,
    page,
    raw,
    scripted_server,
    status,
)
from tests.reference import reference_examples

TOKEN = "tok-5ecret-0123456789abcdef"
EMAIL = "robot@example.com"
ACCOUNT = Account(TOKEN, EMAIL)
RECORDS = reference_examples()[0].records
BODY = {"page_size": 200, "page_number": 1}
E = TypeVar("E", bound=BaseException)


# -- the scripted server ------------------------------------------------------------


async def stall(_request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(3600)
    return web.Response()


async def stall_mid_body(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": "1000"})
    await response.prepare(request)
    await response.write(b'[{"id": 1')
    await asyncio.sleep(3600)
    return response


async def reset(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()
    return web.Response()


async def cut_short(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": "1000"})
    await response.prepare(request)
    await response.write(b'[{"id": 1')
    assert request.transport is not None
    request.transport.close()
    return response


@pytest_asyncio.fixture
async def server() -> AsyncIterator[Scripted]:
    async with scripted_server() as scripted:
        yield scripted


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(server: Scripted, clock: Clock | None = None, **options: Any) -> CopperClient:
    return ACCOUNT.client(server.base_url, clock=clock, **options)


async def failing_fetch(
    client: CopperClient, error_type: type[E], body: dict[str, Any], **options: Any
) -> pytest.ExceptionInfo[E]:
    """Fetch one page with ``client`` (then closed), which must fail with ``error_type``."""
    async with client:
        with pytest.raises(error_type) as info:
            await client.fetch_page(body, **options)
    return info


def expected_backoffs(policy: RetryPolicy, count: int) -> list[float]:
    """The full-jitter waits a FakeClock's seeded draws give."""
    rng = random.Random(CLOCK_SEED)
    return [rng.random() * policy.backoff_ceiling(n) for n in range(1, count + 1)]


# -- requests and pages ------------------------------------------------------------


@pytest.mark.asyncio
async def test_request_carries_the_documented_headers_and_json_body(server: Scripted) -> None:
    server.play(page())
    async with make_client(server) as client:
        await client.fetch_page({"page_size": 25, "sort_by": "name"})
    (received,) = server.received
    assert received.path == "/v1/opportunities/search"
    assert received.headers["X-PW-AccessToken"] == TOKEN
    assert received.headers["X-PW-Application"] == "developer_api"
    assert received.headers["X-PW-UserEmail"] == EMAIL
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["User-Agent"].startswith("copper-async/")
    assert orjson.loads(received.body) == {"page_size": 25, "sort_by": "name"}


@pytest.mark.asyncio
async def test_fetch_page_returns_records_total_and_size(server: Scripted) -> None:
    server.play(page(total="1234", headers={}))
    async with make_client(server) as client:
        result = await client.fetch_page(BODY)
    assert isinstance(result, RawPage)
    assert result.records == RECORDS
    assert result.total == 1234
    assert result.status == 200
    assert result.nbytes == len(orjson.dumps(RECORDS))
    assert (result.attempts, result.rate_limited) == (1, 0)
    assert result.elapsed >= 0
    assert client.stats == ClientStats(requests=1, bytes_read=result.nbytes, responses={200: 1})


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("headers", "total"),
    [
        ({"x-pw-total": "77"}, 77),
        ({}, None),
        ({"X-PW-TOTAL": "99999999999999"}, None),
        ({"X-PW-TOTAL": "-3"}, None),
    ],
)
async def test_total_header(server: Scripted, headers: dict[str, str], total: int | None) -> None:
    server.play(page(headers=headers))
    async with make_client(server) as client:
        assert (await client.fetch_page(BODY)).total == total


@pytest.mark.asyncio
async def test_empty_page(server: Scripted) -> None:
    server.play(page([]))
    async with make_client(server) as client:
        assert (await client.fetch_page(BODY)).records == []


@pytest.mark.asyncio
async def test_unencodable_body_fails_before_any_request(server: Scripted) -> None:
    server.play(page())
    async with make_client(server) as client:
        with pytest.raises(InvalidFilterError):
            await client.fetch_page({"page_size": {1, 2}})
    assert server.received == []


@pytest.mark.asyncio
async def test_a_redirect_is_not_followed(server: Scripted) -> None:
    server.play(status(302, headers={"Location": "https://evil.example/steal"}))
    info = await failing_fetch(make_client(server), InvalidRequestError, BODY)
    assert info.value.status == 302
    assert len(server.received) == 1


# -- retries ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_server_errors_are_retried_with_full_jitter_backoff(
    server: Scripted, clock: FakeClock
) -> None:
    server.play(status(500), status(503), status(502), page())
    policy = RetryPolicy(initial_backoff=0.5)
    events: list[RetryEvent] = []
    async with make_client(server, clock, retry=policy, on_retry=events.append) as client:
        result = await client.fetch_page(BODY, context={"window": "w1"})
    assert result.attempts == 4
    assert clock.sleeps == expected_backoffs(policy, 3)
    assert all(0 <= d <= c for d, c in zip(clock.sleeps, (0.5, 1.0, 2.0), strict=True))
    assert [(e.failure, e.status, e.attempt) for e in events] == [
        (Failure.SERVER_ERROR, 500, 1),
        (Failure.SERVER_ERROR, 503, 2),
        (Failure.SERVER_ERROR, 502, 3),
    ]
    assert events[0].context == {"page_number": 1, "page_size": 200, "window": "w1"}
    assert client.stats.retries == 3
    assert client.stats.responses == {500: 1, 503: 1, 502: 1, 200: 1}
    assert len(server.received) == 4


@pytest.mark.asyncio
async def test_retry_after_seconds_replaces_the_backoff(server: Scripted, clock: FakeClock) -> None:
    server.play(status(429, headers={"Retry-After": "7"}), page())
    async with make_client(server, clock) as client:
        result = await client.fetch_page(BODY)
    assert clock.sleeps == [7.0]
    assert (result.attempts, result.rate_limited) == (2, 1)
    assert client.stats.rate_limited == 1


@pytest.mark.asyncio
async def test_retry_after_http_date_is_read_against_the_server_date(
    server: Scripted, clock: FakeClock
) -> None:
    # The server's clock is far from ours: only the difference of its two dates counts.
    server_now = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
    headers = {
        "Date": format_datetime(server_now, usegmt=True),
        "Retry-After": format_datetime(server_now + timedelta(seconds=12), usegmt=True),
    }
    server.play(status(429, headers=headers), page())
    async with make_client(server, clock) as client:
        await client.fetch_page(BODY)
    assert clock.sleeps == [12.0]


@pytest.mark.asyncio
async def test_retry_after_http_date_without_a_readable_date_is_read_against_the_clock(
    server: Scripted, clock: FakeClock
) -> None:
    # The clock's wall time, not the machine's: 9 s after the FakeClock's "now".
    # (aiohttp always sends a Date: an unreadable one is as good as none.)
    moment = format_datetime(datetime.fromtimestamp(clock.time() + 9.0, tz=UTC), usegmt=True)
    server.play(status(429, headers={"Retry-After": moment, "Date": "unknown"}), page())
    async with make_client(server, clock) as client:
        await client.fetch_page(BODY)
    assert clock.sleeps == [9.0]


@pytest.mark.asyncio
async def test_retry_after_on_a_503_is_honoured_and_one_too_long_gives_up(
    server: Scripted, clock: FakeClock
) -> None:
    policy = RetryPolicy(max_retry_after=20.0)
    server.play(status(503, headers={"Retry-After": "20"}), page())
    async with make_client(server, clock, retry=policy) as client:
        await client.fetch_page(BODY)
    assert clock.sleeps == [20.0]
    server.answers = [status(503, headers={"Retry-After": "500"}), page()]
    info = await failing_fetch(make_client(server, clock, retry=policy), ServerError, BODY)
    assert clock.sleeps == [20.0]
    assert info.value.context["retry_after"] == 500.0
    assert len(server.received) == 3


@pytest.mark.asyncio
@pytest.mark.parametrize(("code", "error_type"), [(429, RateLimitedError), (503, ServerError)])
async def test_a_retry_after_above_max_retry_after_gives_up_at_once_never_shortened(
    server: Scripted, clock: FakeClock, code: int, error_type: type[APIError]
) -> None:
    server.play(status(code, b"later", headers={"Retry-After": "300"}), page())
    async with make_client(server, clock) as client:  # max_retry_after=120 by default
        with pytest.raises(error_type) as info:
            await client.fetch_page(BODY, context={"window": "w"})
        error = info.value
        assert type(error) is error_type
        assert (error.status, error.attempts, error.body) == (code, 1, "later")
        assert error.context == {
            "page_number": 1,
            "page_size": 200,
            "window": "w",
            "attempts": 1,
            "retry_after": 300.0,
        }
        assert "asked to wait 300s" in str(error)
        assert "max_retry_after=120s" in str(error)
        assert clock.sleeps == []
        assert len(server.received) == 1
        if code == 429:
            # Every caller is held as long as the server asked, not 120 s: a
            # request made now gives up at once rather than send or wait.
            assert client.limiter.paused_until == clock.now + 300.0
            with pytest.raises(RateLimitedError) as held:
                await client.fetch_page(BODY)
            assert (held.value.attempts, held.value.context["retry_after"]) == (0, 300.0)
            assert "300.000s" in str(held.value)
            assert len(server.received) == 1
        else:
            assert client.limiter.paused_until is None
            assert (await client.fetch_page(BODY)).attempts == 1
    assert clock.sleeps == []


@pytest.mark.asyncio
@pytest.mark.parametrize(("code", "error_type"), [(429, RateLimitedError), (503, ServerError)])
async def test_a_retry_after_past_the_deadline_gives_up_at_once(
    server: Scripted, clock: FakeClock, code: int, error_type: type[APIError]
) -> None:
    server.play(status(code, headers={"Retry-After": "60"}), page())
    policy = RetryPolicy(deadline=30.0)
    info = await failing_fetch(make_client(server, clock, retry=policy), error_type, BODY)
    context = info.value.context
    assert (context["retry_after"], context["deadline_reached"], context["deadline"]) == (
        60.0,
        True,
        30.0,
    )
    assert "60s (Retry-After)" in str(info.value)
    assert "30s deadline" in str(info.value)
    assert clock.sleeps == []
    assert len(server.received) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, InvalidRequestError),
        (422, InvalidRequestError),
        (409, InvalidRequestError),
    ],
)
async def test_client_errors_are_never_retried(
    server: Scripted, clock: FakeClock, code: int, error_type: type[APIError]
) -> None:
    server.play(status(code, b'{"message": "no"}'), page())
    client = make_client(server, clock)
    info = await failing_fetch(client, error_type, BODY, context={"window": "2020"})
    error = info.value
    assert type(error) is error_type
    assert (error.status, error.attempts, error.body) == (code, 1, '{"message": "no"}')
    assert error.context == {"page_number": 1, "page_size": 200, "window": "2020", "attempts": 1}
    assert len(server.received) == 1
    assert clock.sleeps == []
    assert error.__cause__ is None


@pytest.mark.asyncio
async def test_429_until_attempts_run_out_is_rate_limited_error(
    server: Scripted, clock: FakeClock
) -> None:
    server.play(status(429, b"slow down"))
    policy = RetryPolicy(attempts=4)
    client = make_client(server, clock, retry=policy)
    info = await failing_fetch(client, RateLimitedError, {"page_number": 3, "page_size": 50})
    error = info.value
    assert (error.status, error.attempts, error.body) == (429, 4, "slow down")
    assert error.context == {"page_number": 3, "page_size": 50, "attempts": 4}
    assert len(server.received) == 4
    assert clock.sleeps == expected_backoffs(policy, 3)
    assert client.stats.rate_limited == 4


@pytest.mark.asyncio
async def test_5xx_until_attempts_run_out_is_server_error_with_a_bounded_body(
    server: Scripted, clock: FakeClock
) -> None:
    server.play(status(500, b"E" * 100_000))
    client = make_client(server, clock, retry=RetryPolicy(attempts=2))
    info = await failing_fetch(client, ServerError, BODY)
    assert info.value.status == 500
    assert info.value.attempts == 2
    assert info.value.body.startswith("EEEE")
    assert len(info.value.body) <= 2001
    assert len(str(info.value)) < 500
    assert client.stats.bytes_read <= 2 * 8192


@pytest.mark.asyncio
async def test_deadline_gives_up_instead_of_sleeping_past_it(
    server: Scripted, clock: FakeClock
) -> None:
    server.play(status(429, headers={"Retry-After": "6"}))
    policy = RetryPolicy(attempts=10, deadline=15.0)
    info = await failing_fetch(make_client(server, clock, retry=policy), RateLimitedError, BODY)
    # 0 + 6 = 6, 6 + 6 = 12 <= 15; 12 + 6 = 18 would pass the deadline.
    assert clock.sleeps == [6.0, 6.0]
    assert info.value.attempts == 3
    assert sum(clock.sleeps) <= policy.deadline
    assert info.value.context["deadline_reached"] is True


@pytest.mark.asyncio
async def test_no_wait_is_taken_that_ends_exactly_at_the_deadline(
    server: Scripted, clock: FakeClock
) -> None:
    """A wait ending at the deadline leaves no time to send: it is not taken
    (the client used to sleep it out, then give up without sending)."""
    server.play(status(429, headers={"Retry-After": "6"}))
    policy = RetryPolicy(attempts=10, deadline=12.0)
    info = await failing_fetch(make_client(server, clock, retry=policy), RateLimitedError, BODY)
    # 0 + 6 = 6 < 12: waited; 6 + 6 = 12 would end at the deadline: given up at once.
    assert clock.sleeps == [6.0]
    assert len(server.received) == info.value.attempts == 2
    assert info.value.context["deadline_reached"] is True
    assert "6s (Retry-After)" in str(info.value)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_deadline_bounds_the_attempt_in_flight(server: Scripted) -> None:
    """A stalled attempt is given what is left of the deadline, not the whole timeout."""
    server.play(status(500), stall)
    loop = asyncio.get_running_loop()
    policy = RetryPolicy(deadline=5.0, initial_backoff=1.0, max_backoff=1.0)
    start = loop.time()
    client = make_client(server, LoopClock(seed=3), timeout=30.0, retry=policy)
    info = await failing_fetch(client, RequestTimeoutError, BODY)
    assert loop.time() - start == pytest.approx(5.0, abs=1e-3)
    assert info.value.context["attempts"] == 2
    assert info.value.context["deadline_reached"] is True
    assert isinstance(info.value.__cause__, TimeoutError)
    first_wait = server.received[1].at - server.received[0].at
    assert f"no response within {5.0 - first_wait:g}s" in str(info.value)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_long_attempt_ends_at_the_deadline_not_the_next_whole_second(
    server: Scripted,
) -> None:
    """aiohttp rounds a timeout of 5 s or more up to a whole second of loop time
    unless told not to; the deadline is not rounded."""
    server.play(stall)
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0.25)  # so that the deadline falls between whole seconds
    start = loop.time()
    policy = RetryPolicy(deadline=20.0)
    client = make_client(server, LoopClock(seed=3), timeout=30.0, retry=policy)
    await failing_fetch(client, RequestTimeoutError, BODY)
    assert loop.time() - start == pytest.approx(20.0, abs=1e-3)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_deadline_bounds_the_wait_for_a_limiter_held_by_429_pauses(
    server: Scripted,
) -> None:
    """Other requests' 429s hold the limiter: a request whose deadline the pause
    outlasts gives up when that is known, with its own last failure."""
    loop = asyncio.get_running_loop()
    paused = [asyncio.Event(), asyncio.Event()]
    sent: dict[int, list[float]] = {1: [], 2: [], 3: []}

    async def route(request: web.Request) -> web.StreamResponse:
        number = orjson.loads(await request.read())["page_number"]
        sent[number].append(loop.time())
        if number == 1:  # this request: always 500, each after another's 429 paused the client
            await paused[len(sent[1]) - 1].wait()
            return await status(500)(request)
        if len(sent[number]) == 1:
            return await status(429, headers={"Retry-After": "8"})(request)
        return await page([])(request)

    def on_retry(event: RetryEvent) -> None:
        if event.failure is Failure.RATE_LIMITED:
            paused[event.context["page_number"] - 2].set()

    server.play(route)
    policy = RetryPolicy(deadline=10.0, initial_backoff=0.5, max_backoff=0.5)
    start = loop.time()
    async with make_client(server, LoopClock(seed=4), retry=policy, on_retry=on_retry) as client:
        mine = asyncio.ensure_future(client.fetch_page({"page_number": 1, "page_size": 200}))
        other = asyncio.ensure_future(client.fetch_page({"page_number": 2, "page_size": 200}))
        await paused[0].wait()  # held until 8 s; then sends, and pauses everyone until 16 s
        late = asyncio.ensure_future(client.fetch_page({"page_number": 3, "page_size": 200}))
        with pytest.raises(ServerError) as info:
            await mine
        gave_up = loop.time() - start
        assert [p.attempts for p in await asyncio.gather(other, late)] == [2, 2]
    assert [round(t - start, 3) for t in sent[1]] == [0.0, 8.0]
    assert [round(t - start, 3) for t in sent[3]] == [8.0, 16.0]
    assert 8.0 < gave_up <= 8.5 + 1e-3
    error = info.value
    assert error.status == 500
    assert error.context["attempts"] == 2
    assert error.context["deadline_reached"] is True
    assert error.context["retry_after"] == pytest.approx(16.0 - gave_up, abs=1e-3)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_deadline_is_checked_after_waiting_for_a_paced_slot(server: Scripted) -> None:
    server.play(status(500))
    loop = asyncio.get_running_loop()
    limit = RateLimit(1, 20.0)  # the next slot is 20.2 s away
    policy = RetryPolicy(deadline=10.0, initial_backoff=0.5, max_backoff=0.5)
    start = loop.time()
    client = make_client(server, rate_limit=limit, retry=policy)
    info = await failing_fetch(client, ServerError, BODY)
    assert len(server.received) == 1
    assert loop.time() - start == pytest.approx(limit.interval, abs=1e-3)
    assert info.value.context["deadline_reached"] is True
    assert info.value.attempts == 1


@pytest.mark.asyncio
async def test_attempts_bound_the_sends(server: Scripted, clock: FakeClock) -> None:
    server.play(status(500))
    policy = RetryPolicy(attempts=3, initial_backoff=0.0, max_backoff=0.0)
    info = await failing_fetch(make_client(server, clock, retry=policy), ServerError, BODY)
    assert info.value.attempts == 3
    assert len(server.received) == 3
    assert clock.sleeps == [0.0, 0.0]


# -- bodies ------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "bad", [b'[{"id": 1}, {"na', b"<html>bad gateway</html>", b"", b'["\xff\xfe"]']
)
async def test_a_malformed_2xx_body_is_retried(
    server: Scripted, clock: FakeClock, bad: bytes
) -> None:
    server.play(raw(bad), page())
    async with make_client(server, clock) as client:
        result = await client.fetch_page(BODY)
    assert result.records == RECORDS
    assert result.attempts == 2
    assert len(clock.sleeps) == 1


@pytest.mark.asyncio
async def test_a_malformed_body_every_time_is_a_format_error_with_an_excerpt(
    server: Scripted, clock: FakeClock
) -> None:
    server.play(raw(b"<html>proxy error</html>"))
    client = make_client(server, clock, retry=RetryPolicy(attempts=3))
    info = await failing_fetch(client, ResponseFormatError, BODY, context={"window": "w"})
    assert info.value.excerpt == "<html>proxy error</html>"
    assert "<html>proxy error" in str(info.value)
    assert info.value.context == {"page_number": 1, "page_size": 200, "window": "w", "attempts": 3}
    assert len(server.received) == 3


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"message": "oops"}', "JSON object"),
        (b'"text"', "JSON string"),
        (b"[1, 2]", "index 0"),
    ],
)
async def test_valid_json_of_the_wrong_shape_is_not_retried(
    server: Scripted, clock: FakeClock, body: bytes, reason: str
) -> None:
    server.play(raw(body), page())
    info = await failing_fetch(make_client(server, clock), ResponseFormatError, BODY)
    assert reason in info.value.reason
    assert info.value.excerpt == body.decode()
    assert len(server.received) == 1


@pytest.mark.asyncio
async def test_a_body_over_the_declared_limit_is_refused_unread(
    server: Scripted, clock: FakeClock
) -> None:
    server.play(raw(b"[" + b"{}," * 100_000 + b"{}]"))
    client = make_client(server, clock, max_response_bytes=64 * 1024)
    info = await failing_fetch(client, ResponseFormatError, BODY)
    assert "exceeds max_response_bytes=65536" in str(info.value)
    assert client.stats.bytes_read == 0
    assert len(server.received) == 1


@pytest.mark.asyncio
async def test_a_streamed_body_over_the_limit_is_cut_off_while_reading(
    server: Scripted, clock: FakeClock
) -> None:
    written: list[int] = []

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no Content-Length to check up front
        response.content_type = "application/json"
        await response.prepare(request)
        try:
            await response.write(b"[")
            for _ in range(10_000):  # 160 MB if the client read it all
                await response.write(b"{}," * 5461)
                written.append(1)
        except (ConnectionError, RuntimeError):
            pass
        return response

    server.play(endless)
    client = make_client(server, clock, max_response_bytes=256 * 1024)
    info = await failing_fetch(client, ResponseFormatError, BODY)
    assert "exceeds max_response_bytes" in str(info.value)
    assert client.stats.bytes_read == 0
    assert len(written) < 10_000


# -- transport errors ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_closed_port_is_a_transport_error(clock: FakeClock) -> None:
    client = CopperClient(
        access_token=TOKEN,
        user_email=EMAIL,
        base_url=f"http://127.0.0.1:{closed_port()}/v1",
        clock=clock,
        rate_limit=None,
        retry=RetryPolicy(attempts=2),
    )
    info = await failing_fetch(client, TransportError, BODY)
    assert type(info.value) is TransportError
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)
    assert info.value.context["attempts"] == 2
    assert len(clock.sleeps) == 1
    assert client.stats.connection_errors == 2


@pytest.mark.asyncio
@pytest.mark.parametrize("answer", [reset, cut_short])
async def test_a_server_that_resets_is_retried_then_a_transport_error(
    server: Scripted, clock: FakeClock, answer: Answer
) -> None:
    server.play(answer, answer, page())
    async with make_client(server, clock) as client:
        assert (await client.fetch_page(BODY)).attempts == 3
    server.answers = [answer]
    client = make_client(server, clock, retry=RetryPolicy(attempts=2))
    info = await failing_fetch(client, TransportError, BODY)
    assert isinstance(info.value.__cause__, aiohttp.ClientError)
    assert info.value.context["attempts"] == 2


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("answer", [stall, stall_mid_body])
async def test_a_server_that_stalls_times_out(server: Scripted, answer: Answer) -> None:
    server.play(answer)
    loop = asyncio.get_running_loop()
    policy = RetryPolicy(attempts=3, initial_backoff=1.0, max_backoff=1.0)
    start = loop.time()
    client = make_client(server, timeout=10.0, retry=policy)
    info = await failing_fetch(client, RequestTimeoutError, BODY)
    assert isinstance(info.value.__cause__, TimeoutError)
    assert info.value.context["attempts"] == 3
    assert client.stats.timeouts == 3
    # three 10 s timeouts and two waits of at most 1 s, on the virtual loop clock
    assert 30.0 <= loop.time() - start <= 32.0 + 1e-3


@pytest.mark.asyncio
async def test_no_aiohttp_exception_leaks_from_a_caller_session_that_raises_for_status(
    server: Scripted, clock: FakeClock
) -> None:
    server.play(status(500))
    async with aiohttp.ClientSession(raise_for_status=True) as session:
        client = make_client(server, clock, session=session, retry=RetryPolicy.never())
        with pytest.raises(ServerError):
            await client.fetch_page(BODY)
        await client.aclose()


# -- the aiohttp binding alone ------------------------------------------------------


def search_url(server: Scripted) -> str:
    return server.base_url + "/opportunities/search"


async def send(transport: AiohttpTransport, url: str, **options: Any) -> Response:
    arguments: dict[str, Any] = {"timeout": 5.0, "max_bytes": 2**20}
    arguments.update(options)
    headers = {"X-PW-AccessToken": TOKEN, "Content-Type": "application/json"}
    return await transport.send("POST", url, headers=headers, body=b"{}", **arguments)


@pytest.mark.asyncio
async def test_the_transport_answers_status_headers_and_body_whatever_the_status(
    server: Scripted,
) -> None:
    server.play(page(total="5"), status(503, b"E" * 20_000, headers={"Retry-After": "3"}))
    transport = AiohttpTransport(None, Redactor(TOKEN))
    try:
        ok = await send(transport, search_url(server))
        failed = await send(transport, search_url(server))
    finally:
        await transport.aclose()
    assert (ok.status, ok.headers["x-pw-total"], orjson.loads(ok.body)) == (200, "5", RECORDS)
    # An error status is no exception here; its body is cut to what people read.
    assert (failed.status, failed.headers["retry-after"]) == (503, "3")
    assert failed.body == b"E" * ERROR_BODY_BYTES
    assert transport.closed
    with pytest.raises(ClientClosedError, match="closed"):
        await send(transport, search_url(server))


@pytest.mark.asyncio
async def test_the_transport_refuses_a_2xx_body_above_max_bytes(server: Scripted) -> None:
    server.play(raw(b"[" + b"{}," * 1000 + b"{}]"))
    async with aiohttp.ClientSession() as session:
        transport = AiohttpTransport(session, Redactor(TOKEN))
        with pytest.raises(ResponseTooLargeError) as info:
            await send(transport, search_url(server), max_bytes=1024)
        await transport.aclose()
        assert not session.closed  # a caller's session is left open
    assert "exceeds max_response_bytes=1024" in str(info.value)
    assert isinstance(info.value, ResponseFormatError)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_transport_translates_a_timeout_once_from_the_asyncio_error(
    server: Scripted,
) -> None:
    server.play(stall)
    transport = AiohttpTransport(None, Redactor(TOKEN))
    try:
        with pytest.raises(RequestTimeoutError) as info:
            await send(transport, search_url(server), timeout=2.5)
    finally:
        await transport.aclose()
    assert str(info.value) == f"no response within 2.5s from {search_url(server)}"
    assert isinstance(info.value.__cause__, TimeoutError)
    # Raised outside the handler: the unscrubbed original is not chained as context.
    assert info.value.__context__ is None


@pytest.mark.asyncio
async def test_the_transport_raises_from_a_copy_of_aiohttp_s_error_without_the_token() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"GARBAGE\r\n\r\n")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(reply, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    transport = AiohttpTransport(None, Redactor(TOKEN))
    try:
        with pytest.raises(TransportError) as info:
            await send(transport, f"http://127.0.0.1:{port}/v1/opportunities/search")
    finally:
        await transport.aclose()
        listener.close()
        await listener.wait_closed()
    cause = info.value.__cause__
    assert isinstance(cause, aiohttp.ClientResponseError)
    assert cause.request_info.headers["X-PW-AccessToken"] == "***"
    assert info.value.__context__ is None
    assert not [text for text in exception_texts(info.value) if TOKEN in text]


# -- the rate limiter in the client --------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_every_request_of_a_client_shares_one_paced_limiter(server: Scripted) -> None:
    server.play(page([]))
    limit = RateLimit(180, 60.0)
    async with make_client(server, rate_limit=limit) as client:
        await asyncio.gather(*(client.fetch_page(BODY) for _ in range(12)))
        await client.fetch_page(BODY)
    times = sorted(r.at for r in server.received)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 13
    assert min(gaps) >= limit.interval - 1e-6


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_429_pauses_every_caller_of_the_client(server: Scripted) -> None:
    server.play(status(429, headers={"Retry-After": "5"}), page([]))
    rate_limited = asyncio.Event()
    loop = asyncio.get_running_loop()
    async with make_client(server, on_retry=lambda _event: rate_limited.set()) as client:
        first = asyncio.ensure_future(client.fetch_page(BODY))
        await rate_limited.wait()
        paused_at = loop.time()
        others = await asyncio.gather(*(client.fetch_page(BODY) for _ in range(3)))
        assert (await first).rate_limited == 1
    assert [page.attempts for page in others] == [1, 1, 1]
    later = [r.at for r in server.received[1:]]
    assert len(later) == 4
    assert min(later) >= paused_at + 5.0 - 1e-6


# -- search_page ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_search_page_sends_the_filter_body_and_types_the_records(
    server: Scripted,
) -> None:
    server.play(page(total="31"))
    query = OpportunityFilter(sort_by="name")
    async with make_client(server) as client:
        result = await client.search_page(query, page_number=2, page_size=25)
    assert isinstance(result, SearchPage)
    assert orjson.loads(server.received[0].body) == query.to_body(page_number=2, page_size=25)
    assert all(isinstance(record, Opportunity) for record in result.records)
    assert [r.id for r in result.records] == [r["id"] for r in RECORDS]
    assert (result.total, result.page_number, result.page_size) == (31, 2, 25)


@pytest.mark.asyncio
async def test_search_page_without_a_filter_pages_everything(server: Scripted) -> None:
    server.play(page([]))
    async with make_client(server) as client:
        result = await client.search_page()
    assert result.records == []
    assert orjson.loads(server.received[0].body) == {"page_size": 200, "page_number": 1}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("paging", "field"),
    [
        ({"page_number": 0}, "page_number"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 201}, "page_size"),
        ({"page_number": True}, "page_number"),
    ],
)
async def test_search_page_validates_paging_before_any_request(
    server: Scripted, paging: dict[str, Any], field: str
) -> None:
    server.play(page())
    async with make_client(server) as client:
        with pytest.raises(InvalidFilterError) as info:
            await client.search_page(**paging)
        with pytest.raises(InvalidOptionError):
            await client.search_page({"page_size": 10})  # type: ignore[arg-type]
    assert info.value.field == field
    assert server.received == []


@pytest.mark.asyncio
async def test_search_page_malformed_record_names_the_page(server: Scripted) -> None:
    server.play(page([{"id": "not-an-int", "name": 5}]))
    async with make_client(server) as client:
        with pytest.raises(RecordError) as info:
            await client.search_page(page_number=4, context={"window": "w"})
    assert info.value.context["page_number"] == 4
    assert info.value.context["window"] == "w"


# -- lifecycle --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_own_session_is_created_inside_the_loop_and_closed(server: Scripted) -> None:
    server.play(page([]))
    client = make_client(server)
    before = client.session
    assert before is None
    async with client:
        session = client.session
        assert session is not None
        await client.fetch_page(BODY)
    assert session.closed
    assert client.closed
    with pytest.raises(CopperError, match="closed"):
        await client.fetch_page(BODY)
    await client.aclose()  # idempotent


@pytest.mark.asyncio
async def test_without_async_with_the_session_is_made_on_first_use(server: Scripted) -> None:
    server.play(page([]))
    client = make_client(server)
    await client.fetch_page(BODY)
    session = client.session
    assert session is not None
    await client.aclose()
    assert session.closed


@pytest.mark.asyncio
async def test_a_caller_session_is_used_and_left_open(server: Scripted) -> None:
    server.play(page([]))
    async with aiohttp.ClientSession() as session:
        async with make_client(server, session=session) as client:
            assert client.session is session
            await client.fetch_page(BODY)
        assert not session.closed
        async with make_client(server, session=session) as client:
            await client.fetch_page(BODY)
        assert not session.closed
    assert len(server.received) == 2


@pytest.mark.asyncio
async def test_a_closed_caller_session_is_a_client_closed_error(server: Scripted) -> None:
    session = aiohttp.ClientSession()
    await session.close()
    client = make_client(server, session=session)
    with pytest.raises(ClientClosedError, match="session given to the client is closed"):
        await client.fetch_page(BODY)
    assert server.received == []


@pytest.mark.asyncio
async def test_a_client_used_after_aclose_is_a_client_closed_error(server: Scripted) -> None:
    server.play(page([]))
    async with make_client(server) as client:
        await client.fetch_page(BODY)
    with pytest.raises(ClientClosedError, match="the client is closed"):
        await client.fetch_page(BODY)
    with pytest.raises(ClientClosedError):
        await client.opportunities.search(OpportunityFilter()).to_list()
    assert len(server.received) == 1


def test_a_caller_session_of_an_ended_event_loop_is_a_copper_error_and_sends_nothing() -> None:
    async def make_session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    async def use(session: aiohttp.ClientSession) -> tuple[bool, str, int]:
        async with scripted_server() as server:
            server.play(page([]))
            client = make_client(server, session=session)
            with pytest.raises(CopperError) as raised:
                await client.fetch_page(BODY)
            # Only text leaves: the error's traceback would keep the session alive.
            retryable = isinstance(raised.value, TransportError)
            return retryable, str(raised.value), len(server.received)

    session = asyncio.run(make_session())
    try:
        retryable, message, received = asyncio.run(use(session))
    finally:
        # The first loop's session cannot be closed any more: the caller's leak.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            del session
            gc.collect()
    assert not retryable  # retrying cannot help
    assert "event loop" in message
    assert received == 0


# -- options ------------------------------------------------------------------------


GOOD: dict[str, Any] = {"access_token": TOKEN, "user_email": EMAIL}


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("access_token", ""),
        ("access_token", "two\nlines"),
        ("user_email", ""),
        ("user_email", "nobody"),
        ("base_url", "http://api.copper.com/developer_api/v1"),
        ("base_url", "not a url"),
        ("base_url", "https://u:p@api.copper.com/v1"),
        ("timeout", 0),
        ("timeout", -1.0),
        ("timeout", float("nan")),
        ("timeout", float("inf")),
        ("timeout", "30"),
        ("max_response_bytes", 0),
        ("max_response_bytes", 1.5),
        ("rate_limit", "180/60"),
        ("retry", None),
        ("session", "session"),
        ("clock", object()),
        ("allow_insecure_http", "yes"),
        ("user_agent", ""),
        ("on_retry", 5),
    ],
)
def test_options_are_validated_up_front(option: str, value: object) -> None:
    with pytest.raises(InvalidOptionError) as info:
        CopperClient(**{**GOOD, option: value})
    assert info.value.option == option
    assert TOKEN not in str(info.value)


def test_pacing_needs_the_loop_s_clock() -> None:
    """Pacing (aiolimiter) runs on the loop's clock: a client whose clock is another
    one must not pace, or its pauses and its pacing would drift apart."""
    with pytest.raises(InvalidOptionError) as info:
        CopperClient(**GOOD, clock=FakeClock())
    assert info.value.option == "clock"
    assert CopperClient(**GOOD, clock=FakeClock(), rate_limit=None).rate_limit is None
    assert CopperClient(**GOOD, clock=LoopClock(seed=2)).rate_limit == RateLimit()


def test_insecure_http_needs_the_opt_in_or_a_loopback_host() -> None:
    url = "http://proxy.internal/v1"
    assert CopperClient(**GOOD, base_url=url, allow_insecure_http=True).base_url == url
    assert CopperClient(**GOOD, base_url="http://localhost:8080/v1").base_url.startswith("http:")


def test_defaults() -> None:
    client = CopperClient(**GOOD)
    assert client.base_url == "https://api.copper.com/developer_api/v1"
    assert client.rate_limit == RateLimit(180, 60.0)
    assert client.retry == RetryPolicy()
    assert client.timeout == 30.0
    assert client.max_response_bytes == 64 * 2**20


# -- the token stays secret -----------------------------------------------------------


def test_repr_and_str_hide_the_token() -> None:
    client = CopperClient(**GOOD)
    for text in (repr(client), str(client), repr(client.stats)):
        assert TOKEN not in text
    assert "***" in repr(client)


@pytest.mark.asyncio
async def test_the_token_is_in_no_log_line_and_no_error(
    server: Scripted, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("aiohttp", "aiohttp.client", "aiohttp.server", "aiohttp.access"):
        caplog.set_level(logging.DEBUG, logger=name)
    echo = f'{{"error": "bad token {TOKEN}"}}'.encode()
    server.play(
        status(500),
        status(429, headers={"Retry-After": "1"}),
        raw(b"<html>"),
        page(),
        status(401, echo),
        raw(b"<b>" + TOKEN.encode() + b"</b>"),
        cut_short,
    )
    errors: list[CopperError] = []
    async with make_client(server, clock, retry=RetryPolicy(attempts=4)) as client:
        assert len((await client.fetch_page(BODY)).records) == len(RECORDS)
        for _ in range(2):
            with pytest.raises(CopperError) as info:
                await client.fetch_page(BODY, context={"window": "w"})
            errors.append(info.value)
        server.answers = [raw(b'{"token": "' + TOKEN.encode() + b'"}')]
        with pytest.raises(ResponseFormatError) as format_info:
            await client.fetch_page(BODY)
        errors.append(format_info.value)
        texts = [repr(client), str(client)]
    async with CopperClient(
        **GOOD, base_url=f"http://127.0.0.1:{closed_port()}/v1", clock=clock, rate_limit=None
    ) as client:
        with pytest.raises(TransportError) as transport_info:
            await client.fetch_page(BODY)
        errors.append(transport_info.value)
    assert [type(e) for e in errors] == [
        AuthenticationError,
        TransportError,
        ResponseFormatError,
        TransportError,
    ]
    assert "***" in str(errors[0])
    assert "***" in format_info.value.excerpt
    for error in errors:
        texts.extend(exception_texts(error))
    assert any("retrying" in record.getMessage() for record in caplog.records)
    texts.extend(record.getMessage() for record in caplog.records)
    texts.extend(repr(record.args) for record in caplog.records)
    texts.append(caplog.text)
    assert not [text for text in texts if TOKEN in text]


@pytest.mark.asyncio
async def test_retries_are_logged_at_info_on_the_client_logger(
    server: Scripted, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="copper_async.client")
    server.play(status(503), page())
    async with make_client(server, clock) as client:
        await client.fetch_page(BODY, context={"window": "2021"})
    (record,) = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert record.name == "copper_async.client"
    assert record.levelno == logging.INFO
    assert "server_error" in record.getMessage()
    assert "2021" in record.getMessage()


def test_stats_as_dict() -> None:
    stats = ClientStats(requests=3, responses={200: 3})
    assert stats.as_dict()["responses"] == {200: 3}
    assert stats.as_dict()["requests"] == 3


# -- the error tree -----------------------------------------------------------------


def test_the_error_tree_drawn_in_the_docstring_is_the_class_tree() -> None:
    """Every error is drawn once, under the class it derives from."""
    drawn: dict[str, str | None] = {}
    parents: list[str] = []
    for line in (exceptions.__doc__ or "").splitlines():
        match = re.fullmatch(r" {4}((?:[│ ] {3})*)(?:[├└]── )?([A-Z]\w+)\b.*", line)
        if match is None or match.group(2) == "SearchCapWarning":
            continue
        depth = len(match.group(1)) // 4 + (1 if "──" in line else 0)
        del parents[depth:]
        drawn[match.group(2)] = parents[-1] if parents else None
        parents.append(match.group(2))
    errors = {
        name: getattr(exceptions, name)
        for name in exceptions.__all__
        if issubclass(getattr(exceptions, name), CopperError)
    }
    assert set(drawn) == set(errors)
    for name, error_type in errors.items():
        bases = [b.__name__ for b in error_type.__bases__ if issubclass(b, CopperError)]
        assert bases == ([drawn[name]] if drawn[name] else []), name
