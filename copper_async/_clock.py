"""The time source every component takes, so tests can run on virtual time."""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "LoopClock"]


@runtime_checkable
class Clock(Protocol):
    """Monotonic seconds and a way to wait; nothing else reads time."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    """The running event loop's clock, which is also what aiolimiter reads.

    Tests that patch the loop's time (looptime) therefore move the limiter,
    the retries and the deadlines together.
    """

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))
