"""The one seam for time and chance: every component takes a :class:`Clock`.

Wall time (the search's upper bound, an HTTP ``Date``), monotonic time
(deadlines, pacing, pauses), sleeping and the jitter of retries all come from
it, so tests run on virtual time with seeded randomness and nothing reads the
real clock behind their back.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "LoopClock"]


@runtime_checkable
class Clock(Protocol):
    """Wall and monotonic seconds, a way to wait, and uniform random numbers."""

    def time(self) -> float:
        """Wall-clock Unix seconds."""
        ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def random(self) -> float:
        """A uniform number in ``[0, 1)``, for backoff jitter."""
        ...


class LoopClock:
    """The running event loop's clock, which is also what aiolimiter reads.

    Tests that patch the loop's time (looptime) therefore move the limiter,
    the retries and the deadlines together. ``seed`` fixes the jitter.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    def random(self) -> float:
        return self._random.random()
