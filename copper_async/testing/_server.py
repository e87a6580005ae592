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
import json
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, Final, Literal

import attrs
import orjson
from aiohttp import web

from copper_async.exceptions import InvalidOptionError
from copper_async.testing._dataset import Changes, Dataset
from copper_async.testing._definitions import DEFINITIONS_ROUTE, definitions_handler
from copper_async.testing._faults import FAULT_KINDS, Fault, FaultPlan
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
STATS_ROUTE: Final = "/_fake/stats"
TRUTH_ROUTE: Final = "/_fake/truth"
CHANGES_ROUTE: Final = "/_fake/changes"
APPLICATION: Final = "developer_api"
MAX_BODY: Final = 1024**2
_PAGING_FIELDS: Final = frozenset({"page_number", "page_size"})

PastCap = Literal["empty", "error"]
TotalMode = Literal["exact", "overcount", "capped", "absent"]
DriftUnit = Literal["request", "second"]

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


# -- option validation -------------------------------------------------------------


def _fail(attribute: attrs.Attribute[Any], reason: str) -> InvalidOptionError:
    return InvalidOptionError(attribute.name, reason)


def _real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(low: float, high: float) -> _Validator:
    """A finite number in [low, high]."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not _real(value) or not low <= value <= high:
            raise _fail(attribute, f"must be a number from {low} to {high}, not {value!r}")

    return check


def _integer(low: int, high: int) -> _Validator:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _fail(attribute, f"must be an integer from {low} to {high}, not {value!r}")

    return check


def _one_of(*allowed: str) -> _Validator:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in allowed:
            raise _fail(attribute, f"must be one of {', '.join(allowed)}, not {value!r}")

    return check


def _header_text(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value or value != value.strip() or not value.isprintable():
        raise _fail(attribute, "must be a non-empty printable string without outer spaces")


def _boolean(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise _fail(attribute, f"must be True or False, not {value!r}")


def _rate_limit(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or len(value) != 2:
        raise _fail(attribute, f"must be (max_requests, period_seconds) or None, not {value!r}")
    count, period = value
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise _fail(attribute, f"max_requests must be an integer >= 1, not {count!r}")
    if not _real(period) or period <= 0:
        raise _fail(attribute, f"the period must be a number of seconds > 0, not {period!r}")


def _fault_rates(value: Any) -> Mapping[str, float]:
    """A read-only copy, checked: known kinds, rates in [0, 1] adding up to at most 1."""
    if not isinstance(value, Mapping):
        raise InvalidOptionError("fault_rates", f"must be a mapping of kind to rate: {value!r}")
    for kind, rate in value.items():
        if kind not in FAULT_KINDS:
            raise InvalidOptionError(
                "fault_rates", f"unknown fault {kind!r} (known: {', '.join(FAULT_KINDS)})"
            )
        if not _real(rate) or not 0 <= rate <= 1:
            raise InvalidOptionError(
                "fault_rates", f"the rate of {kind!r} must be from 0 to 1, not {rate!r}"
            )
    if sum(value.values()) > 1 + 1e-9:
        raise InvalidOptionError("fault_rates", "the rates add up to more than 1")
    return MappingProxyType(dict(value))


# Generous bounds: wide enough for any test, narrow enough to catch unit slips.
_MAX_SECONDS = 3600.0
_MAX_DRIFT = 1000.0


@attrs.frozen(kw_only=True)
class FakeServerOptions:
    """How the fake server behaves. Every real-world play is off by default.

    - ``access_token`` / ``user_email``: the credentials it accepts.
    - ``cap``: no record past the first ``cap`` of a sorted result is ever
      served; a page that starts at or past it is empty (``past_cap="empty"``)
      or a 422 (``"error"``); a page straddling it is cut at it.
    - ``total_mode``: ``X-PW-TOTAL`` is the exact match count, an
      ``"overcount"`` (plus 1-10%, fixed for a count and seed),
      ``"capped"`` at ``cap``, or ``"absent"``.
    - ``rate_limit``: ``(max_requests, period_seconds)`` per access token on a
      rolling window (e.g. ``(180, 60.0)``), counted at arrival; over it a 429
      (with ``Retry-After``, whole seconds until a slot frees, when
      ``retry_after``), and the refused request takes no slot.
    - ``fault_rates``: chance per request of each kind of
      :data:`~copper_async.testing._faults.FAULT_KINDS` (500, 502, 503, reset,
      stall, truncated, non_json), adding up to at most 1; a stall sleeps
      ``stall_seconds`` then answers (too late for the client).
    - ``burst_429_rate``: chance per request that a burst of
      ``burst_429_length`` consecutive 429s starts.
    - ``latency`` +- ``latency_jitter`` (uniform) seconds before each answer.
    - ``drift_*_rate``: records inserted, deleted and modified, on average
      per served search (``drift_per="request"``) or per second of serving
      (``"second"``), before the answer.
    - ``seed``: the same seed gives the same faults, latencies, drift and
      overcounts. It seeds only this play, never the records (the command's
      ``--play-seed``, which defaults to its records' ``--seed``).
    """

    access_token: str = attrs.field(default="fake-token", validator=_header_text)
    user_email: str = attrs.field(default="fake@example.com", validator=_header_text)
    cap: int = attrs.field(default=100_000, validator=_integer(1, 2**31))
    past_cap: PastCap = attrs.field(default="empty", validator=_one_of("empty", "error"))
    total_mode: TotalMode = attrs.field(
        default="exact", validator=_one_of("exact", "overcount", "capped", "absent")
    )
    rate_limit: tuple[int, float] | None = attrs.field(default=None, validator=_rate_limit)
    retry_after: bool = attrs.field(default=False, validator=_boolean)
    fault_rates: Mapping[str, float] = attrs.field(factory=dict, converter=_fault_rates, hash=False)
    burst_429_rate: float = attrs.field(default=0.0, validator=_number(0, 1))
    burst_429_length: int = attrs.field(default=3, validator=_integer(1, 10_000))
    stall_seconds: float = attrs.field(default=60.0, validator=_number(0, _MAX_SECONDS))
    latency: float = attrs.field(default=0.0, validator=_number(0, _MAX_SECONDS))
    latency_jitter: float = attrs.field(default=0.0, validator=_number(0, _MAX_SECONDS))
    drift_insert_rate: float = attrs.field(default=0.0, validator=_number(0, _MAX_DRIFT))
    drift_delete_rate: float = attrs.field(default=0.0, validator=_number(0, _MAX_DRIFT))
    drift_modify_rate: float = attrs.field(default=0.0, validator=_number(0, _MAX_DRIFT))
    drift_per: DriftUnit = attrs.field(default="request", validator=_one_of("request", "second"))
    seed: int = attrs.field(default=0, validator=_integer(-(2**63), 2**63))

    def plan(self) -> FaultPlan:
        """A fresh :class:`FaultPlan` for these options (its sequences start over)."""
        return FaultPlan(
            seed=self.seed,
            fault_rates=self.fault_rates,
            burst_429_rate=self.burst_429_rate,
            burst_429_length=self.burst_429_length,
            latency=self.latency,
            latency_jitter=self.latency_jitter,
            drift_insert_rate=self.drift_insert_rate,
            drift_delete_rate=self.drift_delete_rate,
            drift_modify_rate=self.drift_modify_rate,
        )


# -- answers -----------------------------------------------------------------------

_JSON = "application/json"


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    body = orjson.dumps({"success": False, "status": status, "message": message})
    return web.Response(status=status, body=body, content_type=_JSON, headers=headers)


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own refusals (no such route, wrong method) in Copper's error shape."""
    try:
        return await handler(request)
    except web.HTTPException as refusal:
        if refusal.status < 400:
            raise
        allow = refusal.headers.get("Allow")
        if refusal.status == 405 and allow is not None:
            message = f"{request.method} is not allowed on {request.path}; use {allow}"
        elif refusal.status == 404:
            message = f"no such endpoint: {request.path}"
        else:
            message = refusal.reason
        return _error(refusal.status, message, {"Allow": allow} if allow is not None else None)


def _parse_json(raw: bytes) -> Any:
    """The body's JSON, or a 400 :class:`QueryError` that says what is wrong with it."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        where = f"{error.msg} at byte {error.pos}"
        try:
            # orjson refuses some valid JSON (1e400: beyond a double); ask the standard
            # parser, which keeps such numbers (as inf), whether it is valid at all.
            json.loads(raw.decode(), parse_constant=_not_json)
        except (ValueError, RecursionError):
            raise QueryError(400, f"the body is not valid JSON: {where}") from None
        raise QueryError(
            400, f"the body is valid JSON, but not JSON this server can represent: {where}"
        ) from None


def _not_json(name: str) -> Any:
    """The standard parser's NaN and Infinity extensions are not JSON."""
    raise ValueError(name)


def total_header(matches: int, options: FakeServerOptions) -> str | None:
    """The ``X-PW-TOTAL`` value for ``matches`` records under ``options.total_mode``."""
    mode = options.total_mode
    if mode == "exact":
        return str(matches)
    if mode == "capped":
        return str(min(matches, options.cap))
    if mode == "overcount":
        # 1% to 10% more, fixed for a (count, seed): repeated page-1 reads agree.
        percent = 1 + (matches * 2_654_435_761 + options.seed) % 10
        return str(matches + math.ceil(matches * percent / 100))
    return None


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
    the new options' seed (the rate-limit window and the stats carry on).
    ``clock`` is the server's wall clock (Unix seconds), which stamps the
    changes :meth:`play_changes` makes; replace it to play days of activity.
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
        app.router.add_post(SEARCH_ROUTE, self._search)
        app.router.add_get(DEFINITIONS_ROUTE, definitions_handler(self))
        app.router.add_get(STATS_ROUTE, self._admin_stats)
        app.router.add_post(TRUTH_ROUTE, self._admin_truth)
        app.router.add_post(CHANGES_ROUTE, self._admin_changes)
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
        try:
            query, paging = parse_search_body(_parse_json(raw))
        except QueryError as error:
            self._sent(error.status)
            return _error(error.status, error.message)
        self._drift(options)
        ids = self.dataset.search(query)
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

    # -- admin endpoints -----------------------------------------------------------------

    async def _admin_changes(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _error(401, "missing or invalid auth headers")
        try:
            body = _parse_json(await request.read())
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"the body is larger than {MAX_BODY} bytes")
        except QueryError as error:
            return _error(error.status, error.message)
        known = {"edits", "creates", "deletes", "seed", "over"}
        if not isinstance(body, Mapping) or not set(body) <= known:
            return _error(422, f"the body must be an object with keys among {sorted(known)}")
        try:
            changes = self.play_changes(**body)
        except InvalidOptionError as error:
            return _error(422, str(error))
        return web.Response(body=orjson.dumps(attrs.asdict(changes)), content_type=_JSON)

    async def _admin_stats(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _error(401, "missing or invalid auth headers")
        return web.Response(
            body=orjson.dumps(self.stats, option=orjson.OPT_NON_STR_KEYS), content_type=_JSON
        )

    async def _admin_truth(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _error(401, "missing or invalid auth headers")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"the body is larger than {MAX_BODY} bytes")
        try:
            body = _parse_json(raw)
            if isinstance(body, Mapping):  # the truth is every match: no page to check
                body = {k: v for k, v in body.items() if k not in _PAGING_FIELDS}
            query, _paging = parse_search_body(body)
        except QueryError as error:
            return _error(error.status, error.message)
        return web.Response(body=orjson.dumps(list(self.dataset.search(query))), content_type=_JSON)
