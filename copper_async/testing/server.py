"""An embedded Copper-compatible opportunities search server, on loopback.

``async with FakeCopperServer(dataset, options=FakeServerOptions(...)) as
server:`` serves ``POST /developer_api/v1/opportunities/search`` at
``server.url``: Copper's filters, sorts and paging, the search cap, the
``X-PW-TOTAL`` header in every plausible mode, and, when asked, a rolling
rate limit, seeded faults, latency and drift. Error answers are JSON objects
``{"success": false, "status": N, "message": "..."}``.

Admin endpoints (same auth headers): ``GET /_fake/stats`` and ``POST
/_fake/truth`` (every id a search body matches, in order, ignoring pages and
the cap).
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal

import attrs
import orjson
from aiohttp import web

from copper_async.exceptions import InvalidOptionError
from copper_async.testing.dataset import Dataset
from copper_async.testing.faults import FAULT_KINDS, FaultPlan
from copper_async.testing.query import QueryError, parse_search_body

__all__ = ["SEARCH_ROUTE", "FakeCopperServer", "FakeServerOptions"]

SEARCH_ROUTE = "/developer_api/v1/opportunities/search"
PastCap = Literal["empty", "error"]
TotalMode = Literal["exact", "overcount", "capped", "absent"]


def _rate(name: str) -> Any:
    def check(_instance: Any, _attribute: Any, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise InvalidOptionError(name, f"must be a rate between 0 and 1, not {value!r}")

    return check


def _non_negative(name: str) -> Any:
    def check(_instance: Any, _attribute: Any, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InvalidOptionError(name, f"must be a number >= 0, not {value!r}")

    return check


@attrs.frozen(kw_only=True)
class FakeServerOptions:
    """How the fake server behaves; every real-world play is off by default.

    ``rate_limit`` is ``(max_requests, period_seconds)`` per access token on a
    rolling window; ``fault_rates`` maps kinds of :data:`FAULT_KINDS` to the
    chance per request; ``drift_*_rate`` are edits per served search request
    on average.
    """

    access_token: str = "fake-token"
    user_email: str = "fake@example.com"
    cap: int = 100_000
    past_cap: PastCap = "empty"
    total_mode: TotalMode = "exact"
    rate_limit: tuple[int, float] | None = None
    retry_after: bool = False
    fault_rates: Mapping[str, float] = attrs.field(factory=dict, converter=dict)
    burst_429_rate: float = attrs.field(default=0.0, validator=_rate("burst_429_rate"))
    burst_429_length: int = 3
    stall_seconds: float = attrs.field(default=60.0, validator=_non_negative("stall_seconds"))
    latency: float = attrs.field(default=0.0, validator=_non_negative("latency"))
    latency_jitter: float = attrs.field(default=0.0, validator=_non_negative("latency_jitter"))
    drift_insert_rate: float = attrs.field(
        default=0.0, validator=_non_negative("drift_insert_rate")
    )
    drift_delete_rate: float = attrs.field(
        default=0.0, validator=_non_negative("drift_delete_rate")
    )
    drift_modify_rate: float = attrs.field(
        default=0.0, validator=_non_negative("drift_modify_rate")
    )
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        if not self.access_token or not self.user_email:
            raise InvalidOptionError("access_token", "the token and email must not be empty")
        if isinstance(self.cap, bool) or not isinstance(self.cap, int) or self.cap < 1:
            raise InvalidOptionError("cap", f"must be an integer >= 1, not {self.cap!r}")
        if self.past_cap not in ("empty", "error"):
            raise InvalidOptionError(
                "past_cap", f"must be 'empty' or 'error', not {self.past_cap!r}"
            )
        if self.total_mode not in ("exact", "overcount", "capped", "absent"):
            raise InvalidOptionError("total_mode", f"unknown mode {self.total_mode!r}")
        if self.rate_limit is not None:
            count, period = self.rate_limit
            if count < 1 or period <= 0:
                raise InvalidOptionError("rate_limit", "needs max_requests >= 1 and period > 0")
        for kind, rate in self.fault_rates.items():
            if kind not in FAULT_KINDS:
                raise InvalidOptionError("fault_rates", f"unknown fault {kind!r}")
            _rate(f"fault_rates[{kind}]")(self, None, rate)
        if sum(self.fault_rates.values()) > 1:
            raise InvalidOptionError("fault_rates", "the rates add up to more than 1")
        if self.burst_429_length < 1:
            raise InvalidOptionError("burst_429_length", "must be at least 1")


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    body = orjson.dumps({"success": False, "status": status, "message": message})
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def _new_stats() -> dict[str, Any]:
    return {
        "requests": 0,
        "requests_by_status": {},
        "rate_limited": 0,
        "faults": dict.fromkeys(FAULT_KINDS, 0),
        "records_served": 0,
        "pages_served": 0,
        "drift": {"inserted": 0, "deleted": 0, "modified": 0},
        "in_flight": 0,
        "max_in_flight": 0,
    }


class FakeCopperServer:
    """Copper's opportunity search on 127.0.0.1, over a :class:`Dataset`."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        options: FakeServerOptions | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.dataset = dataset
        self._options = options if options is not None else FakeServerOptions()
        self.host, self.port = host, port
        self.stats: dict[str, Any] = _new_stats()
        self._plan = self._new_plan()
        self._windows: dict[str, collections.deque[float]] = {}
        self._handlers: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def options(self) -> FakeServerOptions:
        """The options in force; assign new ones to change behaviour between requests."""
        return self._options

    @options.setter
    def options(self, options: FakeServerOptions) -> None:
        self._options = options
        self._plan = self._new_plan()

    def _new_plan(self) -> FaultPlan:
        o = self._options
        return FaultPlan(
            seed=o.seed,
            fault_rates=o.fault_rates,
            burst_429_rate=o.burst_429_rate,
            burst_429_length=o.burst_429_length,
            latency=o.latency,
            latency_jitter=o.latency_jitter,
            drift_insert_rate=o.drift_insert_rate,
            drift_delete_rate=o.drift_delete_rate,
            drift_modify_rate=o.drift_modify_rate,
        )

    # -- lifecycle ----------------------------------------------------------------

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
        """Bind and serve; ``url`` is set once this returns."""
        app = web.Application(client_max_size=1024**2)
        app.router.add_post(SEARCH_ROUTE, self._search)
        app.router.add_get("/_fake/stats", self._stats)
        app.router.add_post("/_fake/truth", self._truth)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.port = port
        self.url = f"http://{host}:{port}/developer_api/v1"

    async def close(self) -> None:
        """Stop serving; requests still stalled are cut off."""
        for task in list(self._handlers):
            task.cancel()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- handlers -------------------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        headers = request.headers
        return (
            headers.get("X-PW-AccessToken") == self._options.access_token
            and headers.get("X-PW-UserEmail") == self._options.user_email
            and headers.get("X-PW-Application") == "developer_api"
        )

    def _count(self, status: int) -> None:
        by_status = self.stats["requests_by_status"]
        by_status[status] = by_status.get(status, 0) + 1

    async def _search(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.stats["requests"] += 1
        self.stats["in_flight"] += 1
        self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.stats["in_flight"])
        try:
            response = await self._answer(request)
        finally:
            self.stats["in_flight"] -= 1
            self._handlers.discard(task)
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        options = self._options
        if not self._authorised(request):
            self._count(401)
            return _error(
                401, "missing or invalid X-PW-AccessToken, X-PW-UserEmail or X-PW-Application"
            )
        limited = self._over_rate_limit(options)
        if limited is not None:
            return limited
        fault = self._plan.next_fault()
        if fault == "429":
            self.stats["rate_limited"] += 1
            self._count(429)
            return _error(429, "rate limit exceeded")
        if fault in ("500", "502", "503"):
            self.stats["faults"][fault] += 1
            self._count(int(fault))
            return _error(int(fault), "injected server error")
        if fault == "reset":
            self.stats["faults"]["reset"] += 1
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if fault == "stall":
            self.stats["faults"]["stall"] += 1
            await asyncio.sleep(options.stall_seconds)
        self._drift()
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            self._count(400)
            return _error(400, "the body is not valid JSON")
        try:
            query, paging = parse_search_body(body)
        except QueryError as error:
            self._count(error.status)
            return _error(error.status, error.message)
        ids = self.dataset.search(query)
        offset = (paging.page_number - 1) * paging.page_size
        if offset >= options.cap and options.past_cap == "error":
            self._count(422)
            return _error(422, f"search results are limited to the first {options.cap} records")
        page = (
            ids[offset : min(offset + paging.page_size, options.cap)]
            if offset < options.cap
            else []
        )
        payload = self.dataset.encode_page(page)
        headers = self._total_header(len(ids), options)
        delay = self._plan.next_latency()
        if delay:
            await asyncio.sleep(delay)
        if fault == "non_json":
            self.stats["faults"]["non_json"] += 1
            self._count(200)
            return web.Response(
                body=b"<html><body>Bad gateway</body></html>", content_type="text/html"
            )
        if fault == "truncated":
            self.stats["faults"]["truncated"] += 1
            self._count(200)
            return await self._truncated(request, payload, headers)
        self._count(200)
        self.stats["pages_served"] += 1
        self.stats["records_served"] += len(page)
        return web.Response(body=payload, content_type="application/json", headers=headers)

    def _over_rate_limit(self, options: FakeServerOptions) -> web.Response | None:
        if options.rate_limit is None:
            return None
        limit, period = options.rate_limit
        now = asyncio.get_running_loop().time()
        window = self._windows.setdefault(options.access_token, collections.deque())
        while window and window[0] <= now - period:
            window.popleft()
        if len(window) < limit:
            window.append(now)
            return None
        self.stats["rate_limited"] += 1
        self._count(429)
        headers = None
        if options.retry_after:
            wait = max(window[0] + period - now, 0.0)
            headers = {"Retry-After": str(max(math.ceil(wait), 1))}
        return _error(429, "rate limit exceeded", headers)

    @staticmethod
    def _total_header(count: int, options: FakeServerOptions) -> dict[str, str]:
        mode = options.total_mode
        if mode == "absent":
            return {}
        if mode == "capped":
            count = min(count, options.cap)
        elif mode == "overcount":
            count += count // 10 + 7
        return {"X-PW-TOTAL": str(count)}

    async def _truncated(
        self, request: web.Request, payload: bytes, headers: Mapping[str, str]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers=headers)
        response.content_type = "application/json"
        response.content_length = len(payload)
        await response.prepare(request)
        await response.write(payload[: max(len(payload) // 2, 1)])
        if request.transport is not None:
            request.transport.abort()
        return response

    def _drift(self) -> None:
        plan = self._plan.next_drift()
        if not (plan.inserts or plan.deletes or plan.modifies):
            return
        rng = self._plan.drift_rng
        dataset, drift = self.dataset, self.stats["drift"]
        for _ in range(plan.inserts):
            dataset.insert_generated(rng)
            drift["inserted"] += 1
        ids = dataset.ids() if plan.deletes or plan.modifies else []
        for _ in range(plan.deletes):
            if ids:
                dataset.delete(ids.pop(rng.randrange(len(ids))))
                drift["deleted"] += 1
        for _ in range(plan.modifies):
            if ids:
                dataset.modify(ids[rng.randrange(len(ids))], rng)
                drift["modified"] += 1

    async def _stats(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _error(401, "missing or invalid auth headers")
        return web.Response(
            body=orjson.dumps(self.stats, option=orjson.OPT_NON_STR_KEYS),
            content_type="application/json",
        )

    async def _truth(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _error(401, "missing or invalid auth headers")
        try:
            query, _ = parse_search_body(orjson.loads(await request.read()))
        except orjson.JSONDecodeError:
            return _error(400, "the body is not valid JSON")
        except QueryError as error:
            return _error(error.status, error.message)
        return web.Response(
            body=orjson.dumps(list(self.dataset.search(query))), content_type="application/json"
        )
