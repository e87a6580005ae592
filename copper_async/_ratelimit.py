"""Client-side rate limiting: :class:`RateLimit` (the budget) and
:class:`RequestLimiter` (the gate every request of one client passes).

Copper allows 180 requests per rolling minute and answers 429 beyond. The
limiter paces sends evenly instead of letting a burst through, and it learns
from the server: a 429 pauses every caller until the time it asked for (its
``Retry-After``, never shortened) or the client's backoff ends.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import attrs
from aiolimiter import AsyncLimiter

from copper_async._clock import Clock, LoopClock
from copper_async.exceptions import InvalidOptionError

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["RateLimit", "RequestLimiter"]

# Largest jitter between our send and Copper's count that pacing absorbs:
# 250 ms, but never more than 1% of the period so the sustained rate stays >= 99%.
_JITTER_ALLOWANCE = 0.25
_JITTER_FRACTION = 0.01
_RATE = re.compile(r"\s*([0-9]+)\s*/\s*([0-9]*\.?[0-9]+)\s*(s|m|h)?\s*")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _check_max_requests(_instance: object, _attribute: object, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOptionError("rate_limit.max_requests", f"must be an integer, not {value!r}")
    if not 1 <= value <= 1_000_000:
        raise InvalidOptionError(
            "rate_limit.max_requests", f"must be between 1 and 1000000, not {value}"
        )


def _check_period(_instance: object, _attribute: object, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidOptionError("rate_limit.period", f"must be a number of seconds, not {value!r}")
    if not (math.isfinite(value) and 0 < value <= 86_400):
        raise InvalidOptionError(
            "rate_limit.period", f"must be above 0 and at most 86400 seconds, not {value}"
        )


@attrs.frozen
class RateLimit:
    """At most ``max_requests`` sends in any rolling ``period`` seconds.

    The default is Copper's documented 180 per minute. Sends are paced one
    every :attr:`interval` seconds, never in a burst::

        interval = (period + allowance) / max_requests
        allowance = min(0.25 s, period / 100)

    Why this holds the limit: sends ``interval`` apart put at most
    ``floor(W / interval) + 1`` sends into any closed window of ``W`` seconds.
    The server counts arrivals, and an arrival lags its send by a jitter
    ``j`` in ``[0, J]``, so a window of ``period`` arrivals holds sends from
    a window of ``period + J``: at most ``floor((period + J) / interval) + 1``,
    which is ``<= max_requests`` whenever ``(period + J) / interval <
    max_requests``, i.e. ``J < allowance``. For 180/60: interval = 60.25 / 180
    = 0.33472 s, jitter up to 250 ms is absorbed (the brief's ~100 ms twice
    over), the first minute holds floor(60 / 0.33472) + 1 = 180 sends, and the
    sustained rate is 60 / 60.25 = 99.59% of the limit (never below 99%, by
    the 1% cap on the allowance).
    """

    max_requests: int = attrs.field(default=180, validator=_check_max_requests)
    period: float = attrs.field(default=60.0, validator=_check_period)

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Read ``"180/60"`` (requests / seconds); ``"180/1m"``, ``"5/1s"``, ``"1000/1h"`` too."""
        match = _RATE.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidOptionError(
                "rate_limit", f"expected REQUESTS/SECONDS such as '180/60', not {text!r}"
            )
        count, amount, unit = match.groups()
        return cls(int(count), float(amount) * _UNIT_SECONDS[unit])

    @property
    def jitter_allowance(self) -> float:
        """The send-to-arrival jitter, in seconds, that pacing still absorbs."""
        return min(_JITTER_ALLOWANCE, self.period * _JITTER_FRACTION)

    @property
    def interval(self) -> float:
        """Seconds between two sends."""
        return (self.period + self.jitter_allowance) / self.max_requests

    @property
    def sustained_fraction(self) -> float:
        """The paced rate as a fraction of the limit."""
        return self.period / (self.period + self.jitter_allowance)

    def __str__(self) -> str:
        return f"{self.max_requests}/{self.period:g}"


class RequestLimiter:
    """The gate all requests of one client pass before they are sent.

    :meth:`acquire` (or ``async with limiter:``) waits for the next paced
    slot, and first for any pause, unless the pause outlasts what the caller
    would wait. :meth:`pause_until` holds every caller until a time on
    ``clock`` (the client calls it on a 429). With
    ``rate_limit=None`` there is no pacing, only pauses.

    The aiolimiter bucket is built on first use, inside the running loop it
    belongs to. Pacing and pauses run on one clock. aiolimiter reads the
    event loop's time and sets the loop's timers, so with pacing on, the
    clock is the loop's: a :class:`~copper_async._clock.LoopClock` (whose
    ``monotonic()`` is the loop's time and whose ``sleep()`` is the loop's),
    and any other clock is refused. Tests that fake time patch the loop's
    clock (looptime), as aiolimiter's own tests do. With ``rate_limit=None``
    there is no pacing, and pauses run on whatever clock is given.
    """

    def __init__(self, rate_limit: RateLimit | None = None, *, clock: Clock | None = None) -> None:
        if rate_limit is not None and not isinstance(rate_limit, RateLimit):
            raise InvalidOptionError("rate_limit", "must be a RateLimit or None")
        if rate_limit is not None and clock is not None and not isinstance(clock, LoopClock):
            raise InvalidOptionError(
                "clock",
                "pacing runs on the event loop's clock (aiolimiter's): with a rate limit "
                "the clock must be a LoopClock; fake time by patching the loop's clock",
            )
        self.rate_limit = rate_limit
        self._clock: Clock = clock if clock is not None else LoopClock()
        self._bucket: AsyncLimiter | None = None
        self._paused_until = -math.inf

    @property
    def paused_until(self) -> float | None:
        """The clock time the current pause ends, or None if not paused."""
        if self._paused_until <= self._clock.monotonic():
            return None
        return self._paused_until

    def pause_until(self, when: float) -> None:
        """Hold every caller until ``when`` (clock time); a pause never shortens."""
        if math.isfinite(when):
            self._paused_until = max(self._paused_until, when)

    async def _wait_for_pause(self, latest: float, max_pause: float) -> bool:
        while (remaining := self._paused_until - self._clock.monotonic()) > 0:
            if self._paused_until > latest or remaining > max_pause:
                return False
            await self._clock.sleep(remaining)
        return True

    async def acquire(self, *, latest: float = math.inf, max_pause: float = math.inf) -> bool:
        """Wait until this caller may send one request, and return True.

        A pause that would hold the caller past ``latest`` (clock time), or
        for more than ``max_pause`` seconds from when the caller meets it, is
        not waited out: False, as soon as that is known, and no slot is taken.
        Pacing waits are bounded by neither: check the time after.
        """
        while True:
            if not await self._wait_for_pause(latest, max_pause):
                return False
            if self.rate_limit is None:
                return True
            if self._bucket is None:
                # One slot, refilled every interval: even pacing with no burst.
                self._bucket = AsyncLimiter(1, self.rate_limit.interval)
            await self._bucket.acquire()
            if self._paused_until <= self._clock.monotonic():
                return True
            # A pause began while we queued: this slot is spent; queue again
            # after it so the callers held by it do not all go at once.

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __repr__(self) -> str:
        limit = "unlimited" if self.rate_limit is None else str(self.rate_limit)
        # No clock read here: a repr must work outside a running loop.
        pause = (
            f", paused_until={self._paused_until!r}" if math.isfinite(self._paused_until) else ""
        )
        return f"RequestLimiter({limit}{pause})"
