"""A wall clock that stands still until moved: the demo's and the tests' time.

The fake server stamps its changes with it (``server.clock = clock``) and the
sync runner reads the same seconds (``run_sync(..., clock=clock)``), so a
"day later" is one call, not a day. Monotonic time and sleeping stay the
event loop's (:class:`~copper_async._clock.LoopClock`).
"""

from __future__ import annotations

from copper_async._clock import LoopClock

__all__ = ["SettableClock"]


class SettableClock(LoopClock):
    def __init__(self, now: float) -> None:
        super().__init__()
        self.now = now

    def time(self) -> float:
        return self.now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
