"""RateLimit and RequestLimiter, on looptime's virtual loop clock."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random

import pytest
from aiolimiter import AsyncLimiter

from copper_async._clock import LoopClock
from copper_async._ratelimit import RateLimit, RequestLimiter
from copper_async.exceptions import InvalidOptionError

EPSILON = 1e-6


def max_in_window(times: list[float], period: float) -> int:
    """The most events any closed window of ``period`` seconds holds."""
    ordered = sorted(times)
    return max(
        bisect.bisect_right(ordered, start + period) - index for index, start in enumerate(ordered)
    )


async def send_times(limiter: RequestLimiter | AsyncLimiter, count: int) -> list[float]:
    """``count`` concurrent callers; the loop time at which each may send."""
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def caller() -> None:
        await limiter.acquire()
        times.append(loop.time())

    await asyncio.gather(*(caller() for _ in range(count)))
    return times


# -- RateLimit ------------------------------------------------------------------


def test_default_is_copper_s_180_per_minute() -> None:
    limit = RateLimit()
    assert (limit.max_requests, limit.period) == (180, 60.0)
    assert limit.jitter_allowance == 0.25
    assert limit.interval == pytest.approx(60.25 / 180)
    assert limit.sustained_fraction >= 0.98


@pytest.mark.parametrize(
    ("max_requests", "period"), [(180, 60.0), (1, 1.0), (10, 1.0), (5000, 3600.0), (3, 0.5)]
)
def test_pacing_arithmetic_holds_for_any_limit(max_requests: int, period: float) -> None:
    limit = RateLimit(max_requests, period)
    assert limit.sustained_fraction >= 0.99
    # floor((period + J) / interval) + 1 <= max_requests for every jitter J below the allowance
    worst = (period + limit.jitter_allowance * 0.999) / limit.interval
    assert int(worst) + 1 <= max_requests


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("180/60", RateLimit(180, 60.0)),
        (" 180 / 60 ", RateLimit(180, 60.0)),
        ("180/1m", RateLimit(180, 60.0)),
        ("5/1s", RateLimit(5, 1.0)),
        ("10/0.5", RateLimit(10, 0.5)),
        ("1000/1h", RateLimit(1000, 3600.0)),
    ],
)
def test_parse(text: str, expected: RateLimit) -> None:
    assert RateLimit.parse(text) == expected
    assert RateLimit.parse(str(expected)) == expected


@pytest.mark.parametrize("text", ["", "180", "180/", "/60", "a/b", "180/60x", "-1/60", "0/60"])
def test_parse_refuses_garbage(text: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        RateLimit.parse(text)
    assert info.value.option.startswith("rate_limit")


@pytest.mark.parametrize(
    ("args", "option"),
    [
        ((0, 60.0), "rate_limit.max_requests"),
        ((1.5, 60.0), "rate_limit.max_requests"),
        ((True, 60.0), "rate_limit.max_requests"),
        ((180, 0), "rate_limit.period"),
        ((180, -1.0), "rate_limit.period"),
        ((180, float("inf")), "rate_limit.period"),
        ((180, float("nan")), "rate_limit.period"),
        ((180, "60"), "rate_limit.period"),
    ],
)
def test_rate_limit_is_validated(args: tuple[object, object], option: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        RateLimit(*args)  # type: ignore[arg-type]
    assert info.value.option == option


def test_request_limiter_refuses_a_non_rate_limit() -> None:
    with pytest.raises(InvalidOptionError):
        RequestLimiter("180/60")  # type: ignore[arg-type]


# -- RequestLimiter pacing -------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_sends_are_paced_one_interval_apart() -> None:
    limit = RateLimit()
    start = asyncio.get_running_loop().time()
    times = await send_times(RequestLimiter(limit), 50)
    assert times[0] == pytest.approx(start)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= limit.interval - EPSILON
    assert times[-1] - start == pytest.approx(49 * limit.interval, abs=1e-3)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_no_burst_and_no_rolling_window_over_the_limit_even_with_jitter() -> None:
    limit = RateLimit()
    start = asyncio.get_running_loop().time()
    times = await send_times(RequestLimiter(limit), 600)
    first_minute = [t for t in times if t <= start + limit.period]
    assert 179 <= len(first_minute) <= limit.max_requests
    assert max_in_window(times, limit.period) <= limit.max_requests
    # The server counts arrivals: up to ~250 ms of network jitter still fits.
    rng = random.Random(3)
    for spread in (0.1, 0.2, 0.249):
        arrivals = [t + rng.uniform(0, spread) for t in times]
        assert max_in_window(arrivals, limit.period) <= limit.max_requests
    # Adversarial jitter: the first send of a window late, the last one early.
    arrivals = [t + (0.0 if i % 180 == 179 else 0.2499) for i, t in enumerate(times)]
    assert max_in_window(arrivals, limit.period) <= limit.max_requests


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_sustained_rate_is_at_least_98_percent_of_the_limit() -> None:
    limit = RateLimit()
    start = asyncio.get_running_loop().time()
    times = await send_times(RequestLimiter(limit), 400)
    rate = (len(times) - 1) / (max(times) - start)
    assert rate >= 0.98 * limit.max_requests / limit.period


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_window_checker_catches_aiolimiter_s_default_burst() -> None:
    """The plain AsyncLimiter(180, 60) puts ~360 sends in the first minute: the
    checks above would fail on it, which is why the limiter paces instead."""
    start = asyncio.get_running_loop().time()
    times = await send_times(AsyncLimiter(180, 60), 400)
    assert len([t for t in times if t <= start + 60]) > 300
    assert max_in_window(times, 60) > 180


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_idle_limiter_sends_at_once_but_never_two_together() -> None:
    limiter = RequestLimiter(RateLimit(180, 60))
    loop = asyncio.get_running_loop()
    await limiter.acquire()
    await asyncio.sleep(600)  # idle: no credit may pile up
    idle_end = loop.time()
    times = await send_times(limiter, 3)
    assert times[0] == pytest.approx(idle_end)
    assert times[1] - times[0] >= limiter.rate_limit.interval - EPSILON  # type: ignore[union-attr]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_async_with_acquires() -> None:
    limiter = RequestLimiter(RateLimit(2, 1.0))
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with limiter:
        pass
    async with limiter:
        pass
    assert loop.time() - start == pytest.approx(RateLimit(2, 1.0).interval, abs=1e-4)


# -- pauses ---------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_pause_until_delays_every_caller_then_paces_again() -> None:
    limit = RateLimit()
    limiter = RequestLimiter(limit)
    loop = asyncio.get_running_loop()
    await limiter.acquire()
    resume = loop.time() + 30.0
    limiter.pause_until(resume)
    assert limiter.paused_until == resume
    times = await send_times(limiter, 20)
    assert min(times) >= resume
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= limit.interval - EPSILON  # no burst when the pause ends
    assert limiter.paused_until is None


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_pause_during_the_queue_holds_callers_already_waiting() -> None:
    limit = RateLimit(60, 60.0)  # one per ~second
    limiter = RequestLimiter(limit)
    loop = asyncio.get_running_loop()
    start = loop.time()
    waiting = asyncio.ensure_future(send_times(limiter, 10))
    await asyncio.sleep(3.5)  # a few went; the rest are queued in the bucket
    limiter.pause_until(start + 100.0)
    times = await waiting
    early = [t for t in times if t < start + 4]
    late = [t for t in times if t >= start + 100.0]
    assert len(early) + len(late) == 10
    assert 3 <= len(early) <= 4
    gaps = [b - a for a, b in itertools.pairwise(late)]
    assert min(gaps) >= limit.interval - EPSILON


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_pause_never_shortens() -> None:
    limiter = RequestLimiter(None)
    loop = asyncio.get_running_loop()
    now = loop.time()
    limiter.pause_until(now + 50)
    limiter.pause_until(now + 10)
    limiter.pause_until(float("nan"))
    await limiter.acquire()
    assert loop.time() == pytest.approx(now + 50)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_unlimited_limiter_does_not_pace_but_still_pauses() -> None:
    limiter = RequestLimiter(None)
    loop = asyncio.get_running_loop()
    start = loop.time()
    times = await send_times(limiter, 1000)
    assert max(times) == pytest.approx(start)
    limiter.pause_until(start + 5)
    times = await send_times(limiter, 10)
    assert min(times) == pytest.approx(start + 5)
    assert "unlimited" in repr(limiter)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_pause_uses_the_injected_clock() -> None:
    class StepClock:
        def __init__(self) -> None:
            self.now = 1000.0
            self.sleeps: list[float] = []

        def time(self) -> float:
            return 1_700_000_000.0 + self.now

        def monotonic(self) -> float:
            return self.now

        def random(self) -> float:
            return 0.5

        async def sleep(self, seconds: float) -> None:
            self.sleeps.append(seconds)
            self.now += seconds

    clock = StepClock()
    limiter = RequestLimiter(None, clock=clock)
    limiter.pause_until(1012.5)
    await limiter.acquire()
    assert clock.sleeps == [12.5]


def test_pacing_refuses_a_clock_other_than_the_loop_s() -> None:
    """aiolimiter paces on the loop's clock: pauses on another clock would drift from it."""

    class WallClock:
        def time(self) -> float:
            return 0.0

        def monotonic(self) -> float:
            return 0.0

        def random(self) -> float:
            return 0.5

        async def sleep(self, seconds: float) -> None:
            return None

    with pytest.raises(InvalidOptionError) as info:
        RequestLimiter(RateLimit(), clock=WallClock())
    assert info.value.option == "clock"
    assert RequestLimiter(RateLimit(), clock=LoopClock(seed=1)).rate_limit == RateLimit()
    assert RequestLimiter(None, clock=WallClock()).rate_limit is None


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_pacing_and_pauses_read_one_clock() -> None:
    """A pause set from the limiter's clock ends at that time on the loop, and the
    paced slot that follows is counted on the same clock."""
    clock = LoopClock(seed=1)
    limit = RateLimit(60, 60.0)
    limiter = RequestLimiter(limit, clock=clock)
    await limiter.acquire()
    limiter.pause_until(clock.monotonic() + 7.0)
    resume = clock.monotonic() + 7.0
    times = await send_times(limiter, 2)
    assert times[0] == pytest.approx(resume)
    assert times[1] - times[0] == pytest.approx(limit.interval, abs=1e-4)


def test_limiter_is_built_outside_a_loop_and_binds_to_the_loop_it_runs_in() -> None:
    limit = RateLimit(1000, 1.0)  # 1 ms apart: a real loop, but no real waiting
    limiter = RequestLimiter(limit)
    assert "1000/1" in repr(limiter)
    times = asyncio.run(send_times(limiter, 2))
    assert times[1] - times[0] >= limit.interval - EPSILON


# -- bounded waits --------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_pause_past_latest_is_not_waited_out_and_takes_no_slot() -> None:
    limit = RateLimit(60, 60.0)
    limiter = RequestLimiter(limit)
    loop = asyncio.get_running_loop()
    start = loop.time()
    limiter.pause_until(start + 30.0)
    assert await limiter.acquire(latest=start + 29.0) is False
    assert loop.time() == start
    assert await limiter.acquire(latest=start + 30.0) is True
    # The refusal took no slot: the first send after the pause goes at once.
    assert loop.time() == pytest.approx(start + 30.0)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_pause_extended_while_waiting_past_latest_ends_the_wait() -> None:
    limiter = RequestLimiter(None)
    loop = asyncio.get_running_loop()
    start = loop.time()
    limiter.pause_until(start + 10.0)
    waiting = asyncio.ensure_future(limiter.acquire(latest=start + 20.0))
    await asyncio.sleep(5.0)
    limiter.pause_until(start + 300.0)
    assert await waiting is False
    # Learnt when the first pause ended, not at the end of the second.
    assert loop.time() == pytest.approx(start + 10.0)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_pause_that_begins_while_queued_is_checked_against_latest() -> None:
    limit = RateLimit(60, 60.0)  # one per ~second
    limiter = RequestLimiter(limit)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await limiter.acquire()
    queued = asyncio.ensure_future(limiter.acquire(latest=start + 50.0))
    await asyncio.sleep(0.5)  # queued in the bucket for the next slot
    limiter.pause_until(start + 100.0)
    assert await queued is False
    assert loop.time() < start + limit.interval + EPSILON


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_max_pause_counts_from_when_the_caller_meets_the_pause() -> None:
    limiter = RequestLimiter(None)
    loop = asyncio.get_running_loop()
    start = loop.time()
    limiter.pause_until(start + 10.0)
    assert await limiter.acquire(max_pause=9.0) is False
    assert loop.time() == start
    limiter.pause_until(start + 4.0)  # never shortens: still 10
    waiting = asyncio.ensure_future(limiter.acquire(max_pause=10.0))
    await asyncio.sleep(3.0)
    limiter.pause_until(start + 19.0)  # 9 s more when the first pause ends: still acceptable
    assert await waiting is True
    assert loop.time() == pytest.approx(start + 19.0)
