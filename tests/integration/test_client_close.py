"""Closing a client ends its requests' waits at once.

A direct ``fetch_page`` held by a 429's ``Retry-After`` (in its own retry
wait, or in the limiter's pause another request's 429 began) must not sleep
out the pause after :meth:`CopperClient.aclose`: it ends with the error a
closed client gives. The fake server plays the 429 (a rate limit of one
request per 100 s, with ``Retry-After``); the loop runs on looptime's virtual
clock, so a wait sleeping out the pause would show as 100 s of loop time.
"""

from __future__ import annotations

import asyncio

import pytest

from copper_async._clock import LoopClock
from copper_async.client import CopperClient
from copper_async.exceptions import ClientClosedError
from tests.fakes import Account
from tests.reference import reference_examples

ACCOUNT = Account("tok-close-0123456789abcdef", "robot@example.com")
BODY = {"page_size": 200, "page_number": 1}
PAUSE = 100.0


class WatchedClock(LoopClock):
    """The loop's clock, telling the test each time a wait begins."""

    def __init__(self) -> None:
        super().__init__(seed=1)
        self.waits: list[float] = []
        self._began = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self._began.set()
        await super().sleep(seconds)

    async def until_waiting(self, count: int) -> None:
        while len(self.waits) < count:
            self._began.clear()
            await self._began.wait()


async def paused_fetches(client: CopperClient, clock: WatchedClock) -> list[asyncio.Task[object]]:
    """One fetch in its retry wait after a 429, one waiting for the limiter's pause."""
    await client.fetch_page(BODY)  # takes the server's only slot
    retrying = asyncio.create_task(client.fetch_page(BODY, context={"which": "retrying"}))
    await clock.until_waiting(1)
    assert client.limiter.paused_until is not None
    queued = asyncio.create_task(client.fetch_page(BODY, context={"which": "queued"}))
    await clock.until_waiting(2)
    assert clock.waits == [pytest.approx(PAUSE, abs=1.0)] * 2
    return [retrying, queued]


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("how", ["aclose", "async with"])
async def test_closing_the_client_ends_a_429_pause_at_once(how: str) -> None:
    loop = asyncio.get_running_loop()
    clock = WatchedClock()
    records = reference_examples()[0].records
    server = ACCOUNT.server(records, rate_limit=(1, PAUSE), retry_after=True)
    async with server:
        client = ACCOUNT.client(server, clock=clock)
        if how == "aclose":
            await client.__aenter__()
            tasks = await paused_fetches(client, clock)
            closed_at = loop.time()
            await client.aclose()
        else:
            async with client:
                tasks = await paused_fetches(client, clock)
                closed_at = loop.time()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        ended_at = loop.time()
        assert server.stats["sent_429"] == 1
    for which, result in zip(["retrying", "queued"], results, strict=True):
        assert type(result) is ClientClosedError, result
        assert "closed while a request was pending" in str(result)
        assert result.context["which"] == which
    assert ended_at - closed_at < 1.0, "a wait slept out the pause after the close"
    assert client.session is None
    assert client.closed


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_cancelling_a_paused_fetch_still_cancels_it() -> None:
    """The close ends a wait with an error; a cancellation stays a cancellation."""
    clock = WatchedClock()
    records = reference_examples()[0].records
    server = ACCOUNT.server(records, rate_limit=(1, PAUSE), retry_after=True)
    async with server, ACCOUNT.client(server, clock=clock) as client:
        await client.fetch_page(BODY)
        task = asyncio.create_task(client.fetch_page(BODY))
        await clock.until_waiting(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not client.closed
