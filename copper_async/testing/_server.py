"""An embedded Copper-compatible opportunities search server, on loopback.

``async with FakeCopperServer(dataset, options=FakeServerOptions(...)) as
server:`` serves ``POST /developer_api/v1/opportunities/search`` at
``server.url``: Copper's filters, sorts and paging (from
:mod:`copper_async.testing._query` and :mod:`copper_async.testing._dataset`),
the search cap, the ``X-PW-TOTAL`` header in every plausible mode and, when
asked, a rolling rate limit, seeded faults, 429 bursts, latency and drift.

Every error answer is a JSON object, the shape Copper's own errors take::

    {"success": false, "status": 422, "message": "page_size must be ..."}

401: missing or wrong ``X-PW-AccessToken`` / ``X-PW-UserEmail`` /
``X-PW-Application: developer_api``; 400: a body that is not JSON, is JSON
this server cannot represent (a number beyond a double, like ``1e400``) or
is not an object; 404: an unknown path; 405: a known path with the wrong
method (``Allow`` names the right one); 413: a body over 1 MiB; 422: a bad
field, or (``past_cap="error"``) a page that starts past the cap; 429: over
the rate limit or in a burst (``Retry-After`` when ``retry_after`` is on);
500/502/503: injected faults.

Admin endpoints, behind the same auth headers and outside every fault and
limit: ``GET /_fake/stats`` (the counters of :attr:`FakeCopperServer.stats`)
and ``POST /_fake/truth`` (a search body: every matching id in sort order;
``page_number`` and ``page_size`` are ignored, as is the cap) and
``POST /_fake/changes`` (``{"edits": n, "creates": n, "deletes": n, "seed": s, "over": s}``:
plays that user activity at the server's clock, see :meth:`FakeCopperServer.play_changes`,
and answers the ids edited, created and deleted).
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final

from aiohttp import web

from copper_async.exceptions import InvalidOptionError
from copper_async.testing._admin import CHANGES_ROUTE, STATS_ROUTE, TRUTH_ROUTE, add_admin_routes
from copper_async.testing._answers import (
    _JSON,
    APPLICATION,
    MAX_BODY,
    _error,
    _json_errors,
    _parse_json,
)
from copper_async.testing._dataset import Changes, Dataset
from copper_async.testing._definitions import (
    DEFINITIONS_ROUTE,
    dates_as_text,
    definitions_handler,
)
from copper_async.testing._faults import FAULT_KINDS, Fault
from copper_async.testing._options import (
    DriftUnit,
    FakeServerOptions,
    PastCap,
    TotalMode,
    total_header,
)
from copper_async.testing._query import QueryError, parse_search_body

__all__ = [
    "CHANGES_ROUTE",
    "SEARCH_ROUTE",
    "STATS_ROUTE",
    "TRUTH_ROUTE",
    "DriftUnit",
    "FakeCopperServer",
    "FakeServerOptions",
    "PastCap",
    "TotalMode",
    "total_header",
]

SEARCH_ROUTE: Final = "/developer_api/v1/opportunities/search"


def _new_stats() -> dict[str, Any]:
    return {
        "requests": 0,
        "requests_by_status": {},
        "sent_429": 0,
        "rate_limited": 0,
        "burst_429": 0,
        "faults": dict.fromkeys(FAULT_KINDS, 0),
        "records_served": 0,
        "pages_served": 0,
        "drift": {"inserted": 0, "deleted": 0, "modified": 0},
        "in_flight": 0,
        "max_in_flight": 0,
        "busy_seconds": 0.0,
    }


class FakeCopperServer:
    """Copper's opportunity search on loopback, over a :class:`Dataset`.

    ``url`` (set once started) is the base URL to give a client; it ends in
    ``/developer_api/v1``. ``options`` may be reassigned between requests to
    switch modes; the fault, latency and drift sequences then start over from
    the new options' seed, as does the draw of per-request tie orders (the
    rate-limit window and the stats carry on).
    ``clock`` is the server's wall clock (Unix seconds), which stamps the
    changes :meth:`play_changes` makes and every answer's ``Date``; replace it
    to play days of activity, or a clock other than the client's.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        options: FakeServerOptions | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.dataset = dataset
        self.host = host
        self.port = port
        self.url = ""
        self._options = self._checked(options if options is not None else FakeServerOptions())
        self._plan = self._options.plan()
        # Searches that reached the records since the options were set: under
        # ties="per_request", each one's number draws its order of ties.
        self._tie_draws = 0
        self._stats = _new_stats()
        self._windows: dict[str, collections.deque[float]] = {}
        self._handlers: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._drift_clock: float | None = None
        # The dataset's ids for drift picks, kept in step with our own edits;
        # rebuilt when the dataset changed behind our back.
        self._drift_ids: list[int] = []
        self._drift_version: int | None = None
        self.clock: Callable[[], float] = time.time
        # Search requests ever received (no reset), and who waits for a count of them.
        self._searches = 0
        self._awaited: list[tuple[int, asyncio.Event]] = []

    @staticmethod
    def _checked(options: Any) -> FakeServerOptions:
        if not isinstance(options, FakeServerOptions):
            raise InvalidOptionError("options", f"must be FakeServerOptions, not {options!r}")
        return options

    @property
    def options(self) -> FakeServerOptions:
        """The options in force; assign new ones to change behaviour between requests."""
        return self._options

    @options.setter
    def options(self, options: FakeServerOptions) -> None:
        self._options = self._checked(options)
        self._plan = options.plan()
        self._tie_draws = 0

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters (what ``GET /_fake/stats`` answers).

        ``requests`` counts every search request; ``requests_by_status`` every
        answer sent (resets have none); ``sent_429`` every 429, split into
        ``rate_limited`` (the rolling limit) and ``burst_429``; ``faults`` by
        kind; ``records_served`` / ``pages_served`` for complete 200 pages;
        ``drift`` the edits made; ``busy_seconds`` the time spent handling
        searches, injected latency and stalls left out.
        """
        stats = dict(self._stats)
        for key in ("requests_by_status", "faults", "drift"):
            stats[key] = dict(stats[key])
        return stats

    def after_searches(self, count: int) -> asyncio.Event:
        """An event set when ``count`` more search requests have arrived: a test
        acts at that moment (stops or kills a client mid-run) without sleeping."""
        event = asyncio.Event()
        self._awaited.append((self._searches + count, event))
        return event

    def reset_stats(self) -> None:
        """Zero every counter (``in_flight`` keeps counting requests still open)."""
        in_flight = self._stats["in_flight"]
        self._stats = _new_stats()
        self._stats["in_flight"] = in_flight

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> FakeCopperServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind and serve; ``url`` and ``port`` are set once this returns."""
        if self._runner is not None:
            return
        app = web.Application(client_max_size=MAX_BODY, middlewares=[_json_errors])
        app.on_response_prepare.append(self._date_header)
        app.router.add_post(SEARCH_ROUTE, self._search)
        app.router.add_get(DEFINITIONS_ROUTE, definitions_handler(self))
        add_admin_routes(app, self)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.port = port
        self.url = f"http://{host}:{port}/developer_api/v1"
        self._drift_clock = asyncio.get_running_loop().time()

    async def _date_header(self, _request: web.Request, response: web.StreamResponse) -> None:
        # By the server's own clock, as Copper's answers carry Copper's time.
        response.headers["Date"] = email.utils.formatdate(self.clock(), usegmt=True)

    async def close(self) -> None:
        """Stop serving; requests still stalled or waiting are cut off."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.gather(*handlers, return_exceptions=True)
        await runner.cleanup()

    # -- the search endpoint -----------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        headers = request.headers
        options = self._options
        return (
            headers.get("X-PW-AccessToken") == options.access_token
            and headers.get("X-PW-UserEmail") == options.user_email
            and headers.get("X-PW-Application") == APPLICATION
        )

    def _sent(self, status: int) -> None:
        by_status = self._stats["requests_by_status"]
        by_status[status] = by_status.get(status, 0) + 1

    async def _search(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        stats = self._stats
        stats["requests"] += 1
        self._searches += 1
        for target, event in self._awaited:
            if self._searches >= target:
                event.set()
        self._awaited = [(t, e) for t, e in self._awaited if not e.is_set()]
        stats["in_flight"] += 1
        stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
        started = time.perf_counter()
        paused = [0.0]
        try:
            return await self._answer(request, paused)
        finally:
            self._stats["in_flight"] -= 1
            self._stats["busy_seconds"] += time.perf_counter() - started - paused[0]
            if task is not None:
                self._handlers.discard(task)

    async def _pause(self, seconds: float, paused: list[float]) -> None:
        """Sleep as an injected delay: left out of ``busy_seconds``."""
        before = time.perf_counter()
        try:
            await asyncio.sleep(seconds)
        finally:
            paused[0] += time.perf_counter() - before

    async def _answer(self, request: web.Request, paused: list[float]) -> web.StreamResponse:
        options = self._options
        plan = self._plan
        refusal: web.Response | None = None
        fault: Fault | None = None
        if not self._authorised(request):
            refusal = _error(
                401, "missing or invalid X-PW-AccessToken, X-PW-UserEmail or X-PW-Application"
            )
        else:
            refusal = self._over_rate_limit(options)
            if refusal is None:
                fault = plan.next_fault()
        delay = plan.next_latency()
        if delay:
            await self._pause(delay, paused)
        if refusal is not None:
            self._sent(refusal.status)
            return refusal
        if fault is not None and fault != "truncated" and fault != "non_json":
            early = await self._early_fault(request, fault, options, paused)
            if early is not None:
                return early
        return await self._page(request, fault, options)

    async def _early_fault(
        self, request: web.Request, fault: Fault, options: FakeServerOptions, paused: list[float]
    ) -> web.StreamResponse | None:
        """Play a fault that replaces the answer; None when the page follows (stall)."""
        stats = self._stats
        if fault == "429":
            stats["sent_429"] += 1
            stats["burst_429"] += 1
            self._sent(429)
            headers = {"Retry-After": "1"} if options.retry_after else None
            return _error(429, "rate limit exceeded", headers)
        stats["faults"][fault] += 1
        if fault == "reset":
            if request.transport is not None:
                request.transport.abort()
            # Never sent: the connection is gone.
            return web.Response(status=500)
        if fault == "stall":
            await self._pause(options.stall_seconds, paused)
            return None
        status = int(fault)
        self._sent(status)
        return _error(status, f"injected {status} server error")

    def _over_rate_limit(self, options: FakeServerOptions) -> web.Response | None:
        """Count this request on its token's rolling window, or refuse it (429)."""
        if options.rate_limit is None:
            return None
        limit, period = options.rate_limit
        now = asyncio.get_running_loop().time()
        window = self._windows.get(options.access_token)
        if window is None:
            window = self._windows[options.access_token] = collections.deque()
        while window and window[0] <= now - period:
            window.popleft()
        if len(window) < limit:
            window.append(now)
            return None
        self._stats["sent_429"] += 1
        self._stats["rate_limited"] += 1
        headers = None
        if options.retry_after:
            # The oldest request in the window leaves it at window[0] + period.
            wait = window[-limit] + period - now
            headers = {"Retry-After": str(max(math.ceil(wait), 1))}
        return _error(429, f"rate limit exceeded: {limit} requests per {period:g} s", headers)

    async def _page(
        self, request: web.Request, fault: Fault | None, options: FakeServerOptions
    ) -> web.StreamResponse:
        stats = self._stats
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._sent(413)
            return _error(413, f"the body is larger than {MAX_BODY} bytes")
        except ConnectionError:
            # The client went away (a cancelled search) while its answer was
            # delayed: routine for code under test, not a server error to log.
            return web.Response(status=499)  # never sent: the connection is gone
        try:
            query, paging = parse_search_body(_parse_json(raw))
        except QueryError as error:
            self._sent(error.status)
            return _error(error.status, error.message)
        self._drift(options)
        self._tie_draws += 1
        draw = hash((options.seed, self._tie_draws))  # ints hash alike in every process
        ids = self.dataset.search(query, ties=options.ties, draw=draw)
        start = (paging.page_number - 1) * paging.page_size
        cap = options.cap
        if start >= cap and options.past_cap == "error":
            self._sent(422)
            return _error(
                422,
                f"page_number: search results are limited to the first {cap} records "
                f"(page {paging.page_number} of size {paging.page_size} starts at {start})",
            )
        page = ids[start : min(start + paging.page_size, cap)] if start < cap else ()
        payload = self.dataset.encode_page(page)
        if options.custom_dates == "text":
            payload = dates_as_text(payload)
        total = total_header(len(ids), options)
        headers = {"X-PW-TOTAL": total} if total is not None else None
        self._sent(200)
        if fault == "non_json":
            stats["faults"]["non_json"] += 1
            return web.Response(
                body=b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                content_type="text/html",
            )
        if fault == "truncated":
            stats["faults"]["truncated"] += 1
            return await self._truncated(request, payload, headers)
        stats["pages_served"] += 1
        stats["records_served"] += len(page)
        return web.Response(body=payload, content_type=_JSON, headers=headers)

    @staticmethod
    async def _truncated(
        request: web.Request, payload: bytes, headers: Mapping[str, str] | None
    ) -> web.StreamResponse:
        """Announce the whole body, send a valid prefix, then drop the connection."""
        response = web.StreamResponse(headers=headers)
        response.content_type = _JSON
        response.content_length = len(payload)
        await response.prepare(request)
        await response.write(payload[: max(len(payload) // 2, 1)])
        if request.transport is not None:
            request.transport.abort()
        return response

    # -- drift -----------------------------------------------------------------------

    def _drift(self, options: FakeServerOptions) -> None:
        units = 1.0
        if options.drift_per == "second":
            now = asyncio.get_running_loop().time()
            last, self._drift_clock = self._drift_clock, now
            units = now - last if last is not None else 0.0
        plan = self._plan.next_drift(units)
        if not plan:
            return
        rng = self._plan.drift_rng
        dataset, counts = self.dataset, self._stats["drift"]
        ids = self._drift_ids
        if self._drift_version != dataset.version:
            ids[:] = dataset.ids()
        for _ in range(plan.inserts):
            ids.append(dataset.insert_generated(rng))
            counts["inserted"] += 1
        for _ in range(plan.deletes):
            if not ids:
                break
            # Swap-remove: O(1), and still a seeded pick.
            position = rng.randrange(len(ids))
            ids[position], ids[-1] = ids[-1], ids[position]
            dataset.delete(ids.pop())
            counts["deleted"] += 1
        for _ in range(plan.modifies):
            if not ids:
                break
            dataset.modify(ids[rng.randrange(len(ids))], rng)
            counts["modified"] += 1
        self._drift_version = dataset.version

    def play_changes(
        self, *, edits: int = 0, creates: int = 0, deletes: int = 0, seed: int = 0, over: int = 0
    ) -> Changes:
        """Users edit, create and delete records, as in Copper: an edit or a
        creation stamps ``date_modified`` with the server's time. With
        ``over`` = 0 all of it happens now (by :attr:`clock`), in one second;
        otherwise at random seconds of the ``over`` seconds up to now, as a
        day of users' edits spreads. The same seed on the same data picks
        the same records and moments."""
        now = int(self.clock())
        return self.dataset.apply_changes(
            random.Random(seed), now=now, edits=edits, creates=creates, deletes=deletes, over=over
        )
