"""FakeCopperServer over real loopback HTTP, with a plain aiohttp client.

Timing tests (latency, stalls, the rolling rate limit, drift per second) run
on looptime's virtual loop clock, so none of them really waits.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
import math
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import click
import orjson
import pytest
import pytest_asyncio
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from copper_async.exceptions import InvalidOptionError
from copper_async.testing import (
    FAULT_KINDS,
    SEARCH_ROUTE,
    Dataset,
    FakeCopperServer,
    FakeServerOptions,
    FaultPlan,
    HotSpot,
    parse_search_body,
)
from copper_async.testing._command import (
    build_options,
    fake_server,
    load_dataset,
    parse_fault,
    parse_hot_spot,
    serve_until_stopped,
)
from copper_async.testing._server import TotalMode, total_header
from tests.fakes import generated_records, load_benchmark, until
from tests.reference import reference_examples

TOKEN, EMAIL = "fake-token", "fake@example.com"
AUTH = {"X-PW-AccessToken": TOKEN, "X-PW-Application": "developer_api", "X-PW-UserEmail": EMAIL}
COUNT = 300
OPEN = {"statuses": ["Open"], "sort_by": "date_created"}

Serve = Callable[..., Awaitable[FakeCopperServer]]


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    """300 generated records, shared read-only; each test builds its own Dataset."""
    return generated_records(COUNT, seed=21)


@pytest_asyncio.fixture
async def serve(records: list[dict[str, Any]]) -> AsyncIterator[Serve]:
    """Start servers (a fresh copy of ``records`` unless given a dataset); close them after."""
    opened: list[FakeCopperServer] = []

    async def start(dataset: Dataset | None = None, **options: Any) -> FakeCopperServer:
        server = FakeCopperServer(
            dataset if dataset is not None else Dataset.from_records(records),
            options=FakeServerOptions(**options),
        )
        await server.start()
        opened.append(server)
        return server

    yield start
    for server in opened:
        await server.close()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # A connection per request: a reset or a cut body never spoils the next one.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as client:
        yield client


@attrs.frozen
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def ids(self) -> list[int]:
        return [record["id"] for record in self.json()]


async def post(
    session: aiohttp.ClientSession,
    server: FakeCopperServer,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    data: bytes | io.BytesIO | None = None,
    path: str = "/opportunities/search",
    seconds: float | None = None,
) -> Answer:
    payload = data if data is not None else orjson.dumps({} if body is None else body)
    async with session.post(
        server.url + path,
        data=payload,
        headers=AUTH if headers is None else headers,
        timeout=aiohttp.ClientTimeout(total=seconds),
    ) as response:
        return Answer(response.status, dict(response.headers), await response.read())


async def search_ok(session: aiohttp.ClientSession, server: FakeCopperServer, times: int) -> None:
    """``times`` default searches, each answered 200."""
    for _ in range(times):
        assert (await post(session, server)).status == 200


def truth(server: FakeCopperServer, body: dict[str, Any]) -> list[int]:
    return list(server.dataset.search(parse_search_body(body)[0]))


def error_of(answer: Answer, status: int) -> str:
    """Check ``answer`` is the documented JSON error shape; return its message."""
    assert answer.status == status
    assert answer.headers["Content-Type"].startswith("application/json")
    error = answer.json()
    assert error["success"] is False
    assert error["status"] == status
    assert isinstance(error["message"], str)
    assert error["message"]
    return str(error["message"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- options ---------------------------------------------------------------------------


def test_every_real_world_play_is_off_by_default() -> None:
    options = FakeServerOptions()
    assert (options.access_token, options.user_email) == (TOKEN, EMAIL)
    assert (options.cap, options.past_cap, options.total_mode) == (100_000, "empty", "exact")
    assert options.rate_limit is None
    assert not options.retry_after
    assert dict(options.fault_rates) == {}
    assert options.burst_429_rate == options.latency == options.latency_jitter == 0
    assert options.drift_insert_rate == options.drift_delete_rate == options.drift_modify_rate == 0


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("cap", 0),
        ("cap", True),
        ("cap", 1.5),
        ("past_cap", "wrap"),
        ("total_mode", "guess"),
        ("rate_limit", (0, 60.0)),
        ("rate_limit", (180, 0)),
        ("rate_limit", (180, math.inf)),
        ("rate_limit", (180.5, 60)),
        ("rate_limit", (180,)),
        ("rate_limit", "180/60"),
        ("retry_after", "yes"),
        ("fault_rates", {"404": 0.1}),
        ("fault_rates", {"500": 1.5}),
        ("fault_rates", {"500": -0.1}),
        ("fault_rates", {"500": 0.6, "503": 0.6}),
        ("fault_rates", [("500", 0.1)]),
        ("burst_429_rate", -0.01),
        ("burst_429_rate", 1.01),
        ("burst_429_rate", math.nan),
        ("burst_429_length", 0),
        ("stall_seconds", -1),
        ("stall_seconds", math.inf),
        ("latency", -0.1),
        ("latency_jitter", "0.05"),
        ("drift_insert_rate", -1),
        ("drift_delete_rate", 1e9),
        ("drift_modify_rate", None),
        ("drift_per", "minute"),
        ("seed", 1.5),
        ("access_token", ""),
        ("access_token", " padded"),
        ("user_email", "a\nb@example.com"),
    ],
)
def test_invalid_options_are_refused_naming_the_option(option: str, value: Any) -> None:
    with pytest.raises(InvalidOptionError) as raised:
        FakeServerOptions(**{option: value})
    assert raised.value.option == option


def test_options_are_frozen_and_evolve_revalidates() -> None:
    options = FakeServerOptions(fault_rates={"500": 0.1}, rate_limit=(180, 60))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        options.cap = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        options.fault_rates["500"] = 0.9  # type: ignore[index]
    assert attrs.evolve(options, cap=7).fault_rates == {"500": 0.1}
    with pytest.raises(InvalidOptionError):
        attrs.evolve(options, cap=0)


def test_the_server_takes_only_options_objects(records: list[dict[str, Any]]) -> None:
    dataset = Dataset.from_records(records[:3])
    with pytest.raises(InvalidOptionError):
        FakeCopperServer(dataset, options={"cap": 5})  # type: ignore[arg-type]
    server = FakeCopperServer(dataset)
    with pytest.raises(InvalidOptionError):
        server.options = "fast"  # type: ignore[assignment]
    assert server.options == FakeServerOptions()


# -- lifecycle -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_serves_on_loopback_and_closes_cleanly(records: list[dict[str, Any]]) -> None:
    before = asyncio.all_tasks()
    port = free_port()
    async with (
        FakeCopperServer(Dataset.from_records(records), port=port) as server,
        aiohttp.ClientSession() as session,
    ):
        assert server.url == f"http://127.0.0.1:{port}/developer_api/v1"
        assert server.url + "/opportunities/search" == f"http://127.0.0.1:{port}{SEARCH_ROUTE}"
        await server.start()  # a second start is a no-op
        assert (await post(session, server)).status == 200
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await post(session, server)
    await server.close()  # a second close is a no-op
    assert asyncio.all_tasks() - before == set()


@pytest.mark.asyncio
async def test_closing_cuts_off_a_stalled_request(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    before = asyncio.all_tasks()
    server = await serve(fault_rates={"stall": 1.0}, stall_seconds=60.0)
    request = asyncio.ensure_future(post(session, server))
    await until(lambda: bool(server.stats["in_flight"]), "the request to reach the server")
    assert server.stats["in_flight"] == 1
    await server.close()
    with pytest.raises(aiohttp.ClientError):
        await request
    assert server.stats["in_flight"] == 0
    assert server.stats["faults"]["stall"] == 1
    assert asyncio.all_tasks() - before == set()


@pytest.mark.asyncio
async def test_the_first_free_port_is_used_when_none_is_given(serve: Serve) -> None:
    first, second = await serve(), await serve()
    assert first.port != second.port
    assert first.port > 0


# -- auth and refused bodies -----------------------------------------------------------


def without(key: str) -> dict[str, str]:
    return {k: v for k, v in AUTH.items() if k != key}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "headers",
    [
        {},
        without("X-PW-AccessToken"),
        without("X-PW-UserEmail"),
        without("X-PW-Application"),
        {**AUTH, "X-PW-AccessToken": "wrong"},
        {**AUTH, "X-PW-UserEmail": "other@example.com"},
        {**AUTH, "X-PW-Application": "web_app"},
    ],
    ids=["none", "no-token", "no-email", "no-app", "bad-token", "bad-email", "bad-app"],
)
async def test_missing_or_wrong_auth_is_a_401(
    serve: Serve, session: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    server = await serve()
    message = error_of(await post(session, server, headers=headers), 401)
    assert "X-PW-AccessToken" in message
    stats = server.stats
    assert stats["requests_by_status"] == {401: 1}
    assert stats["records_served"] == 0


@pytest.mark.asyncio
async def test_the_configured_credentials_are_the_ones_accepted(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(access_token="secret", user_email="me@example.org")
    assert (await post(session, server)).status == 401
    headers = {**AUTH, "X-PW-AccessToken": "secret", "X-PW-UserEmail": "me@example.org"}
    assert (await post(session, server, headers=headers)).status == 200


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("data", "status", "named"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "not valid JSON"),
        (b'{"name": NaN}', 400, "not valid JSON"),  # Python's extension, not JSON
        (b'{"name": "\xff"}', 400, "not valid JSON"),  # not UTF-8
        # Valid JSON that orjson cannot represent: beyond a double.
        (b'{"minimum_monetary_value": 1e400}', 400, "valid JSON, but not JSON this server"),
        (b"[1, 2]", 400, "object"),
        (b'{"page_size": 500}', 422, "page_size"),
        (b'{"page_number": 0}', 422, "page_number"),
        (b'{"sort_by": "colour"}', 422, "sort_by"),
        (b'{"assignee_ids": "7"}', 422, "assignee_ids"),
    ],
)
async def test_refused_bodies_are_json_errors_naming_the_problem(
    serve: Serve, session: aiohttp.ClientSession, data: bytes, status: int, named: str
) -> None:
    server = await serve(drift_insert_rate=1.0)
    assert named in error_of(await post(session, server, data=data), status)
    # Refused requests are not served: nothing drifts.
    assert len(server.dataset) == COUNT
    assert server.stats["drift"]["inserted"] == 0
    assert server.stats["requests_by_status"] == {status: 1}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", SEARCH_ROUTE, 405, "POST"),
        ("PUT", SEARCH_ROUTE, 405, "POST"),
        ("GET", "/_fake/truth", 405, "POST"),
        ("POST", "/_fake/stats", 405, "GET,HEAD"),
        ("POST", "/developer_api/v1/people/search", 404, None),
        ("GET", "/", 404, None),
    ],
)
async def test_unknown_routes_and_methods_are_json_errors(
    serve: Serve,
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    status: int,
    allow: str | None,
) -> None:
    server = await serve()
    base = server.url.removesuffix("/developer_api/v1")
    async with session.request(method, base + path, headers=AUTH) as response:
        answer = Answer(response.status, dict(response.headers), await response.read())
    assert path in error_of(answer, status)
    assert answer.headers.get("Allow") == allow
    assert server.stats["requests"] == 0


@pytest.mark.asyncio
async def test_an_oversized_body_is_a_413(serve: Serve, session: aiohttp.ClientSession) -> None:
    server = await serve()
    data = io.BytesIO(orjson.dumps({"name": "x" * (2 * 1024**2)}))
    assert "larger" in error_of(await post(session, server, data=data), 413)


# -- paging ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_pages_slice_the_sorted_result(serve: Serve, session: aiohttp.ClientSession) -> None:
    server = await serve()
    body = {"sort_by": "date_modified", "sort_direction": "desc", "page_size": 40}
    expected = truth(server, body)
    assert len(expected) == COUNT
    pages = [await post(session, server, {**body, "page_number": n}) for n in range(1, 10)]
    assert [len(page.ids()) for page in pages] == [40] * 7 + [20, 0]
    assert [i for page in pages for i in page.ids()] == expected
    assert all(page.headers["Content-Type"] == "application/json" for page in pages)
    first = pages[0].json()
    assert first == [server.dataset.record(i) for i in expected[:40]]
    stats = server.stats
    assert stats["pages_served"] == 9
    assert stats["records_served"] == COUNT


@pytest.mark.asyncio
async def test_the_default_page_is_the_first_20_by_name(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve()
    assert (await post(session, server)).ids() == truth(server, {"sort_by": "name"})[:20]


# -- the search cap ----------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("past_cap", ["empty", "error"])
async def test_no_record_past_the_cap_is_ever_served(
    serve: Serve, session: aiohttp.ClientSession, past_cap: str
) -> None:
    server = await serve(cap=50, past_cap=past_cap)
    body = {"sort_by": "date_created", "page_size": 20}
    expected = truth(server, body)
    pages = [await post(session, server, {**body, "page_number": n}) for n in (1, 2, 3)]
    # The third page straddles the cap: cut at it.
    assert [len(page.ids()) for page in pages] == [20, 20, 10]
    assert [i for page in pages for i in page.ids()] == expected[:50]
    past = [await post(session, server, {**body, "page_number": n}) for n in (4, 15)]
    for answer in past:
        if past_cap == "empty":
            assert answer.status == 200
            assert answer.json() == []
            assert answer.headers["X-PW-TOTAL"] == str(COUNT)
        else:
            assert "50" in error_of(answer, 422)
    # A page of size 1 at the very cap.
    at_cap = await post(session, server, {**body, "page_size": 1, "page_number": 51})
    assert at_cap.status == (200 if past_cap == "empty" else 422)
    last = await post(session, server, {**body, "page_size": 1, "page_number": 50})
    assert last.ids() == [expected[49]]


@pytest.mark.asyncio
@pytest.mark.parametrize("past_cap", ["empty", "error"])
async def test_a_cap_on_a_page_boundary_ends_the_pages_there(
    serve: Serve, session: aiohttp.ClientSession, past_cap: str
) -> None:
    server = await serve(cap=40, past_cap=past_cap)
    body = {"page_size": 20, "page_number": 3}
    answer = await post(session, server, body)
    assert answer.status == (200 if past_cap == "empty" else 422)
    if past_cap == "empty":
        assert answer.json() == []
    assert len((await post(session, server, {**body, "page_number": 2})).ids()) == 20


@pytest.mark.asyncio
async def test_a_cap_above_the_matches_changes_nothing(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(cap=COUNT + 1, past_cap="error")
    answer = await post(session, server, {"page_size": 200, "page_number": 2})
    assert answer.ids() == truth(server, {})[200:]


# -- X-PW-TOTAL ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_total_exact(serve: Serve, session: aiohttp.ClientSession) -> None:
    server = await serve(cap=50)
    assert (await post(session, server)).headers["X-PW-TOTAL"] == str(COUNT)
    answer = await post(session, server, OPEN)
    assert answer.headers["X-PW-TOTAL"] == str(len(truth(server, OPEN)))
    nothing = await post(session, server, {"ids": [10**9]})
    assert (nothing.headers["X-PW-TOTAL"], nothing.json()) == ("0", [])


@pytest.mark.asyncio
async def test_total_capped(serve: Serve, session: aiohttp.ClientSession) -> None:
    server = await serve(cap=50, total_mode="capped")
    assert (await post(session, server)).headers["X-PW-TOTAL"] == "50"
    few = {"ids": list(range(1, 13))}
    assert (await post(session, server, few)).headers["X-PW-TOTAL"] == "12"


@pytest.mark.asyncio
async def test_ties_per_query_are_stable_for_a_query_and_differ_for_a_narrower_one(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    dataset = Dataset.generate(300, seed=5, hot_spots=[HotSpot(created=1_600_000_000, count=200)])
    server = await serve(dataset, ties="per_query")
    wide = {"sort_by": "date_created", "page_size": 200}
    narrow = {**wide, "minimum_created_date": 1_599_999_000}

    async def ids_of(body: dict[str, Any]) -> list[int]:
        pages = [await post(session, server, {**body, "page_number": n}) for n in (1, 2, 3)]
        return [record["id"] for page in pages for record in page.json()]

    first, again, narrower = await ids_of(wide), await ids_of(wide), await ids_of(narrow)
    assert first == again, "one query's order is stable"
    assert sorted(first) == sorted(truth_of(dataset, wide))
    created = {i: dataset.record(i)["date_created"] for i in first}
    assert [created[i] for i in first] == sorted(created[i] for i in first)
    hot = [i for i in first if created[i] == 1_600_000_000]
    assert len(hot) == 200
    assert hot != sorted(hot), "ties are not in id order"
    assert [i for i in narrower if created[i] == 1_600_000_000] != hot


@pytest.mark.asyncio
async def test_total_overcount_is_a_stable_upper_bound(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(total_mode="overcount")
    exact = len(truth(server, OPEN))
    totals = {
        int((await post(session, server, {**OPEN, "page_number": n})).headers["X-PW-TOTAL"])
        for n in (1, 2, 1)
    }
    assert len(totals) == 1
    (total,) = totals
    assert exact < total <= math.ceil(exact * 1.1)


@pytest.mark.asyncio
async def test_total_absent(serve: Serve, session: aiohttp.ClientSession) -> None:
    server = await serve(total_mode="absent")
    answer = await post(session, server)
    assert answer.status == 200
    assert "X-PW-TOTAL" not in answer.headers
    assert len(answer.ids()) == 20


@given(matches=st.integers(0, 10**7), seed=st.integers(-(2**40), 2**40), cap=st.integers(1, 10**6))
def test_every_total_mode_bounds_the_count(matches: int, seed: int, cap: int) -> None:
    def total(mode: TotalMode) -> str | None:
        return total_header(matches, FakeServerOptions(total_mode=mode, seed=seed, cap=cap))

    assert total("exact") == str(matches)
    assert total("capped") == str(min(matches, cap))
    assert total("absent") is None
    over = int(total("overcount") or "")
    assert matches + (matches > 0) <= over <= math.ceil(matches * 1.1)


# -- faults ------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_injected_as_json_errors(
    serve: Serve, session: aiohttp.ClientSession, status: int
) -> None:
    server = await serve(fault_rates={str(status): 1.0})
    for _ in range(3):
        error_of(await post(session, server), status)
    stats = server.stats
    assert stats["faults"][str(status)] == 3
    assert stats["requests_by_status"] == {status: 3}
    assert stats["pages_served"] == 0


@pytest.mark.asyncio
async def test_a_reset_drops_the_connection(serve: Serve, session: aiohttp.ClientSession) -> None:
    server = await serve(fault_rates={"reset": 1.0})
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(session, server)
    stats = server.stats
    assert stats["faults"]["reset"] == 1
    assert stats["requests"] == 1
    assert stats["requests_by_status"] == {}


@pytest.mark.asyncio
async def test_non_json_is_a_200_with_html(serve: Serve, session: aiohttp.ClientSession) -> None:
    server = await serve(fault_rates={"non_json": 1.0})
    answer = await post(session, server)
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(answer.body)
    assert server.stats["faults"]["non_json"] == 1
    assert server.stats["records_served"] == 0


async def raw_exchange(server: FakeCopperServer, body: dict[str, Any]) -> tuple[bytes, bytes]:
    """POST over a bare socket; return the head and whatever body came before EOF."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    data = orjson.dumps(body)
    head = [f"POST {SEARCH_ROUTE} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
    head += [f"{k}: {v}" for k, v in AUTH.items()]
    head += ["Content-Type: application/json", f"Content-Length: {len(data)}", "", ""]
    writer.write("\r\n".join(head).encode() + data)
    await writer.drain()
    received = await reader.read()
    writer.close()
    await writer.wait_closed()
    response_head, _, rest = received.partition(b"\r\n\r\n")
    return response_head, rest


@pytest.mark.asyncio
async def test_a_truncated_body_is_a_valid_prefix_then_a_close(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(fault_rates={"truncated": 1.0})
    body = {"page_size": 50}
    full = server.dataset.encode_page(truth(server, body)[:50])
    head, received = await raw_exchange(server, body)
    assert head.startswith(b"HTTP/1.1 200")
    assert f"Content-Length: {len(full)}".encode() in head
    assert 0 < len(received) < len(full)
    assert full.startswith(received)
    with pytest.raises(aiohttp.ClientPayloadError):
        await post(session, server, body)
    assert server.stats["faults"]["truncated"] == 2
    assert server.stats["records_served"] == 0


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_stall_outlasts_the_client_timeout(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    loop = asyncio.get_running_loop()
    server = await serve(fault_rates={"stall": 1.0}, stall_seconds=30.0)
    started = loop.time()
    with pytest.raises(TimeoutError):
        await post(session, server, seconds=5.0)
    assert loop.time() - started == pytest.approx(5.0, abs=0.01)
    # A patient client gets the page, late.
    started = loop.time()
    answer = await post(session, server, seconds=100.0)
    assert answer.ids() == truth(server, {})[:20]
    assert loop.time() - started == pytest.approx(30.0, abs=0.01)
    assert server.stats["faults"]["stall"] == 2


async def outcome(session: aiohttp.ClientSession, server: FakeCopperServer) -> str:
    try:
        answer = await post(session, server, {"page_size": 5})
    except aiohttp.ClientPayloadError:
        return "truncated"
    except aiohttp.ClientConnectionError:
        return "reset"
    if answer.status == 200 and answer.headers["Content-Type"].startswith("text/html"):
        return "non_json"
    if answer.status == 200:
        assert len(answer.ids()) == 5
        return "ok"
    error_of(answer, answer.status)
    return str(answer.status)


MIXED = {"500": 0.15, "502": 0.1, "503": 0.1, "reset": 0.1, "truncated": 0.1, "non_json": 0.1}


@pytest.mark.asyncio
async def test_the_same_seed_replays_the_same_faults(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    sequences = []
    for seed in (8, 8, 9):
        server = await serve(fault_rates=MIXED, seed=seed)
        sequence = [await outcome(session, server) for _ in range(40)]
        faults = server.stats["faults"]
        for kind in FAULT_KINDS:
            assert faults[kind] == sequence.count(kind)
        sequences.append(sequence)
    assert sequences[0] == sequences[1]
    assert sequences[0] != sequences[2]
    assert set(sequences[0]) == {"ok", *MIXED}
    # The server plays exactly the plan's sequence.
    plan = FaultPlan(seed=8, fault_rates=MIXED)
    assert sequences[0] == [plan.next_fault() or "ok" for _ in range(40)]


@pytest.mark.asyncio
async def test_options_can_switch_between_requests(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve()
    assert (await post(session, server)).status == 200
    server.options = attrs.evolve(server.options, fault_rates={"503": 1.0})
    assert (await post(session, server)).status == 503
    server.options = attrs.evolve(server.options, fault_rates={}, total_mode="absent")
    answer = await post(session, server)
    assert answer.status == 200
    assert "X-PW-TOTAL" not in answer.headers
    assert server.stats["requests_by_status"] == {200: 2, 503: 1}
    server.reset_stats()
    assert server.stats["requests"] == 0


# -- latency -----------------------------------------------------------------------------


async def timed(session: aiohttp.ClientSession, server: FakeCopperServer) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await post(session, server)).status == 200
    return loop.time() - started


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_latency_is_jittered_and_seeded(serve: Serve, session: aiohttp.ClientSession) -> None:
    runs = []
    for seed in (3, 3, 4):
        server = await serve(latency=0.15, latency_jitter=0.05, seed=seed)
        runs.append([await timed(session, server) for _ in range(15)])
    for delay in runs[0]:
        assert 0.1 - 1e-3 <= delay <= 0.2 + 1e-3
    assert max(runs[0]) - min(runs[0]) > 0.02
    assert runs[0] == pytest.approx(runs[1], abs=1e-3)
    assert runs[0] != pytest.approx(runs[2], abs=1e-3)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_latency_without_jitter_delays_every_answer_alike(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(latency=0.25)
    assert [await timed(session, server) for _ in range(3)] == pytest.approx([0.25] * 3, abs=1e-3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await post(session, server, headers={})).status == 401
    assert loop.time() - started == pytest.approx(0.25, abs=1e-3)


@pytest.mark.asyncio
async def test_a_client_that_goes_away_while_its_answer_is_delayed_logs_no_error(
    serve: Serve, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A search cancelled mid-request (a ``break``, a timeout) is routine for
    code under test: the server drops the answer quietly, logging no error."""
    caplog.set_level(logging.ERROR)
    server = await serve(latency=0.3, latency_jitter=0.0)
    arrived = server.after_searches(1)
    gone = asyncio.ensure_future(post(session, server))
    await arrived.wait()
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    # Asked after the first, answered after its delay ended: by then the
    # first handler has found its client gone.
    assert (await post(session, server)).status == 200
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.asyncio
async def test_busy_time_leaves_out_injected_latency(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(latency=0.005)
    await search_ok(session, server, 4)
    assert 0 < server.stats["busy_seconds"] < 0.015


# -- 429 bursts and the rolling rate limit ---------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("retry_after", [False, True])
async def test_429s_come_in_seeded_bursts(
    serve: Serve, session: aiohttp.ClientSession, retry_after: bool
) -> None:
    server = await serve(burst_429_rate=0.2, burst_429_length=3, seed=4, retry_after=retry_after)
    answers = [await post(session, server) for _ in range(60)]
    statuses = [answer.status for answer in answers]
    plan = FaultPlan(seed=4, burst_429_rate=0.2, burst_429_length=3)
    assert statuses == [429 if plan.next_fault() else 200 for _ in range(60)]
    assert 429 in statuses
    while statuses[-1] == 429:
        statuses.pop()
    for key, group in itertools.groupby(statuses):
        if key == 429:
            assert len(list(group)) % 3 == 0
    for answer in answers:
        if answer.status == 429:
            error_of(answer, 429)
            assert answer.headers.get("Retry-After") == ("1" if retry_after else None)
    stats = server.stats
    assert stats["burst_429"] == stats["sent_429"] == stats["requests_by_status"][429]
    assert stats["rate_limited"] == 0


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("retry_after", [False, True])
async def test_the_rolling_rate_limit(
    serve: Serve, session: aiohttp.ClientSession, retry_after: bool
) -> None:
    loop = asyncio.get_running_loop()
    server = await serve(rate_limit=(3, 60.0), retry_after=retry_after)
    start = loop.time()

    async def at(moment: float) -> Answer:
        await asyncio.sleep(max(start + moment - loop.time(), 0.0))
        return await post(session, server)

    def retry_after_of(answer: Answer) -> str | None:
        assert "rate limit" in error_of(answer, 429)
        return answer.headers.get("Retry-After")

    assert [(await at(t)).status for t in (0, 10, 20)] == [200, 200, 200]
    refused = [await at(t) for t in (30, 30.5, 59)]
    expected_waits = ["30", "30", "1"] if retry_after else [None] * 3
    assert [retry_after_of(answer) for answer in refused] == expected_waits
    # Refused requests took no slot: the first one frees at t=60, and only it.
    assert (await at(60.5)).status == 200
    after = await at(61)
    assert retry_after_of(after) == ("9" if retry_after else None)
    assert (await at(70.5)).status == 200
    stats = server.stats
    assert stats["rate_limited"] == stats["sent_429"] == 4
    assert stats["burst_429"] == 0


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_rate_limit_counts_a_request_at_arrival(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    loop = asyncio.get_running_loop()
    server = await serve(rate_limit=(1, 60.0), latency=10.0)
    start = loop.time()
    assert (await post(session, server)).status == 200  # arrives at 0, answered at 10
    await asyncio.sleep(start + 60.5 - loop.time())
    assert (await post(session, server)).status == 200


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_rate_limit_is_per_token_and_ignores_refused_auth(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(rate_limit=(2, 60.0))
    for _ in range(3):
        assert (await post(session, server, headers={})).status == 401
    assert [(await post(session, server)).status for _ in range(3)] == [200, 200, 429]
    server.options = attrs.evolve(server.options, access_token="other-token")
    other = {**AUTH, "X-PW-AccessToken": "other-token"}
    assert (await post(session, server, headers=other)).status == 200
    server.options = attrs.evolve(server.options, access_token=TOKEN)
    assert (await post(session, server)).status == 429


# -- drift -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_drift_inserts_records_while_serving(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(drift_insert_rate=1.0)
    before = set(server.dataset.ids())
    await search_ok(session, server, 5)
    new = set(server.dataset.ids()) - before
    assert len(new) == 5
    assert len(server.dataset) == COUNT + 5
    assert server.stats["drift"] == {"inserted": 5, "deleted": 0, "modified": 0}
    found = await post(session, server, {"ids": sorted(new), "page_size": 200})
    assert sorted(found.ids()) == sorted(new)


@pytest.mark.asyncio
async def test_drift_deletes_records_while_serving(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(drift_delete_rate=2.0)
    await search_ok(session, server, 5)
    assert len(server.dataset) == COUNT - 10
    assert server.stats["drift"]["deleted"] == 10
    everything = await post(session, server, {"page_size": 200, "page_number": 2})
    assert len(everything.ids()) == COUNT - 10 - 200 - 2  # the last request deleted 2 more


@pytest.mark.asyncio
async def test_drift_modifies_records_but_never_their_creation(
    serve: Serve, session: aiohttp.ClientSession, records: list[dict[str, Any]]
) -> None:
    server = await serve(drift_modify_rate=1.0)
    await search_ok(session, server, 5)
    changed = [r for r in records if server.dataset.record(r["id"]) != r]
    assert 1 <= len(changed) <= 5
    for old in changed:
        new = server.dataset.record(old["id"])
        assert new["date_modified"] > old["date_modified"]
        assert new["date_created"] == old["date_created"]
    assert server.stats["drift"]["modified"] == 5


@pytest.mark.asyncio
async def test_drift_is_seeded(serve: Serve, session: aiohttp.ClientSession) -> None:
    def snapshot(server: FakeCopperServer) -> list[dict[str, Any]]:
        return [server.dataset.record(i) for i in server.dataset.ids()]

    rates = {"drift_insert_rate": 0.5, "drift_delete_rate": 0.5, "drift_modify_rate": 0.7}
    finals = []
    for seed in (1, 1, 2):
        server = await serve(seed=seed, **rates)
        await search_ok(session, server, 12)
        finals.append(snapshot(server))
    assert finals[0] == finals[1]
    assert finals[0] != finals[2]


@pytest.mark.asyncio
async def test_drift_copes_with_edits_made_behind_its_back(
    serve: Serve, session: aiohttp.ClientSession, records: list[dict[str, Any]]
) -> None:
    server = await serve(Dataset.from_records(records[:10]), drift_delete_rate=1.0)
    assert (await post(session, server)).status == 200
    for record_id in server.dataset.ids()[:5]:
        server.dataset.delete(record_id)
    await search_ok(session, server, 6)
    assert len(server.dataset) == 0
    assert server.stats["drift"]["deleted"] == 5


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_drift_per_second(serve: Serve, session: aiohttp.ClientSession) -> None:
    server = await serve(drift_insert_rate=2.0, drift_per="second")
    await asyncio.sleep(10.0)
    assert (await post(session, server)).status == 200
    assert 20 <= server.stats["drift"]["inserted"] <= 21
    assert (await post(session, server)).status == 200
    assert server.stats["drift"]["inserted"] <= 22


# -- admin endpoints ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_stats_endpoint_reports_the_counters(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(fault_rates={"500": 0.5}, seed=2)
    for _ in range(10):
        await post(session, server)
    await post(session, server, headers={})
    async with session.get(server.url.removesuffix("/developer_api/v1") + "/_fake/stats") as r:
        assert r.status == 401
    async with session.get(
        server.url.removesuffix("/developer_api/v1") + "/_fake/stats", headers=AUTH
    ) as response:
        assert response.status == 200
        served = orjson.loads(await response.read())
    stats = server.stats
    assert served == orjson.loads(orjson.dumps(stats, option=orjson.OPT_NON_STR_KEYS))
    assert stats["requests"] == 11  # admin requests are not counted
    by_status = stats["requests_by_status"]
    assert by_status[401] == 1
    assert by_status[500] == stats["faults"]["500"] > 0
    assert stats["pages_served"] == by_status[200]
    assert stats["records_served"] == 20 * by_status[200]


@pytest.mark.asyncio
async def test_the_truth_endpoint_ignores_pages_and_the_cap(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(cap=10, fault_rates={"503": 1.0}, rate_limit=(1, 60.0))
    base = server.url.removesuffix("/developer_api/v1")

    async def ask(body: bytes, headers: dict[str, str] = AUTH) -> Answer:
        async with session.post(base + "/_fake/truth", data=body, headers=headers) as response:
            return Answer(response.status, dict(response.headers), await response.read())

    body = {**OPEN, "sort_direction": "desc", "page_size": 3, "page_number": 7}
    for _ in range(2):  # neither faults nor the rate limit apply
        answer = await ask(orjson.dumps(body))
        assert answer.status == 200
        assert answer.json() == truth(server, body)
        assert len(answer.json()) > 10
    # Paging fields are ignored whatever they hold, even values a search refuses.
    for paging in ({"page_size": 500}, {"page_number": 0, "page_size": "all"}):
        answer = await ask(orjson.dumps({**OPEN, **paging}))
        assert answer.status == 200
        assert answer.json() == truth(server, OPEN)
    error_of(await ask(b"{"), 400)
    assert "valid JSON, but" in error_of(await ask(b'{"minimum_created_date": -1e999}'), 400)
    assert "sort_by" in error_of(await ask(b'{"sort_by": 1}'), 422)
    error_of(await ask(b"{}", headers={}), 401)
    assert server.stats["requests"] == 0


# -- the reference examples, end to end ------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("example", reference_examples(), ids=lambda e: e.title)
async def test_every_reference_example_is_answered_as_documented(
    serve: Serve, session: aiohttp.ClientSession, example: Any
) -> None:
    followed = example.body.get("followed") == 1
    loaded = [dict(r, followed=True) if followed else r for r in reversed(example.records)]
    server = await serve(Dataset.from_records(loaded))
    answer = await post(session, server, example.body)
    assert answer.status == 200
    assert answer.json() == example.records
    assert answer.headers["X-PW-TOTAL"] == str(len(example.records))


def test_there_are_22_reference_examples() -> None:
    assert len(reference_examples()) == 22


# -- the command line (copper_async.testing._command) -------------------------------------


def test_faults_and_hot_spots_parse() -> None:
    assert parse_fault("503=0.02") == ("503", 0.02)
    assert parse_fault("non_json=1") == ("non_json", 1.0)
    assert parse_hot_spot("1600000000:25") == HotSpot(created=1_600_000_000, count=25)
    assert parse_hot_spot("1600000000:25:0") == HotSpot(1_600_000_000, 25, 0)
    for bad in ("503", "404=0.1", "503=x", "503=1.5", "503=-0.1", "=0.1"):
        with pytest.raises(InvalidOptionError):
            parse_fault(bad)
    for bad in ("1600000000", "x:5", "1600000000:0", "-1:5", "1:2:3:4", "1:2:-1"):
        with pytest.raises(InvalidOptionError):
            parse_hot_spot(bad)


def test_the_help_shows_every_part_of_a_hot_spot() -> None:
    result = CliRunner().invoke(fake_server, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--hot-spot SECOND:COUNT[:SPREAD]" in text
    assert "modified over SPREAD seconds" in text


def parse_flags(args: list[str]) -> dict[str, Any]:
    """The command's parameters for these flags, parsed by click without serving."""
    return dict(fake_server.make_context("fake-server", args).params)


def test_every_flag_becomes_its_option() -> None:
    args = [
        *("--token", "t", "--email", "e@example.com", "--cap", "500"),
        *("--past-cap", "error", "--total-mode", "overcount", "--rate-limit", "180/60"),
        *("--ties", "per_query", "--custom-dates", "text"),
        *("--retry-after", "--fault", "500=0.1", "--fault", "reset=0.05"),
        *("--fault", "non_json=0.01", "--stall-seconds", "2", "--burst-429-rate", "0.02"),
        *("--burst-429-length", "4", "--latency", "0.15", "--latency-jitter", "0.05"),
        *("--drift-insert-rate", "0.1", "--drift-delete-rate", "0.2"),
        *("--drift-modify-rate", "0.3", "--drift-per", "second", "--seed", "9"),
        *("--play-seed", "17", "--generate", "10", "--hot-spot", "1600000000:3"),
        *("--host", "127.0.0.1", "--port", "0"),
    ]
    # Every flag but --records (the other source of records) is given.
    flags = {opt for param in fake_server.params for opt in param.opts}
    assert flags - set(args) == {"--records"}
    params = parse_flags(args)
    assert build_options(params) == FakeServerOptions(
        access_token="t",
        user_email="e@example.com",
        cap=500,
        past_cap="error",
        total_mode="overcount",
        ties="per_query",
        custom_dates="text",
        rate_limit=(180, 60.0),
        retry_after=True,
        fault_rates={"500": 0.1, "reset": 0.05, "non_json": 0.01},
        stall_seconds=2.0,
        burst_429_rate=0.02,
        burst_429_length=4,
        latency=0.15,
        latency_jitter=0.05,
        drift_insert_rate=0.1,
        drift_delete_rate=0.2,
        drift_modify_rate=0.3,
        drift_per="second",
        seed=17,  # the play's seed; --seed 9 is the records'
    )
    assert (params["host"], params["port"], params["generate"]) == ("127.0.0.1", 0, 10)
    assert params["seed"] == 9
    assert params["hot_spots"] == [HotSpot(1_600_000_000, 3)]
    assert build_options(parse_flags(["--generate", "1"])) == FakeServerOptions()
    # The rate limit is read as the client's --rate-limit is.
    assert build_options(parse_flags(["--rate-limit", "5/1m"])).rate_limit == (5, 60.0)
    # Without --play-seed, --seed seeds the play too, as before --play-seed existed.
    assert build_options(parse_flags(["--seed", "9"])).seed == 9


def test_the_play_seed_varies_the_faults_over_the_same_records() -> None:
    def serve_with(*play: str) -> tuple[list[dict[str, Any]], list[str | None]]:
        params = parse_flags(["--generate", "30", "--seed", "4", "--fault", "500=0.5", *play])
        records = load_dataset(generate=30, records=None, seed=params["seed"])
        plan = build_options(params).plan()
        return [records.record(i) for i in records.ids()], [plan.next_fault() for _ in range(40)]

    data, faults = serve_with()
    assert serve_with("--play-seed", "4") == (data, faults)
    for play_seed in ("5", "6"):
        other_data, other_faults = serve_with("--play-seed", play_seed)
        assert other_data == data
        assert other_faults != faults


def test_the_dataset_comes_from_a_file_or_generation(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records[:7]))
    loaded = load_dataset(generate=None, records=path, seed=0)
    assert loaded.ids() == [r["id"] for r in records[:7]]
    spot = HotSpot(1_600_000_000, 12)
    generated = load_dataset(generate=30, records=None, seed=2, hot_spots=[spot])
    assert len(generated) == 42
    window = {"minimum_created_date": 1600000000, "maximum_created_date": 1600000000}
    assert len(truth_of(generated, window)) >= 12
    again = load_dataset(generate=30, records=None, seed=2, hot_spots=[spot])
    assert [again.record(i) for i in again.ids()] == [generated.record(i) for i in again.ids()]


def truth_of(dataset: Dataset, body: dict[str, Any]) -> list[int]:
    return list(dataset.search(parse_search_body(body)[0]))


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--generate", "3", "--fault", "500=2"], "--fault"),
        (["--generate", "3", "--fault", "404=0.1"], "--fault"),
        (["--generate", "3", "--fault", "500"], "KIND=RATE"),
        (["--generate", "3", "--fault", "500=0.1", "--fault", "500=0.2"], "twice"),
        (["--generate", "3", "--fault", "500=0.7", "--fault", "503=0.7"], "fault_rates"),
        (["--generate", "3", "--rate-limit", "fast"], "--rate-limit"),
        (["--generate", "3", "--hot-spot", "soon"], "--hot-spot"),
        (["--generate", "3", "--token", ""], "access_token"),
        (["--generate", "3", "--cap", "0"], "--cap"),
        (["--generate", "3", "--total-mode", "guess"], "--total-mode"),
        (["--generate", "3", "--latency", "-1"], "--latency"),
        (["--generate", "3", "--port", "70000"], "--port"),
        (["--generate", "3", "--colour", "red"], "--colour"),
        ([], "--generate"),
        (["--generate", "3", "--records", "{good}"], "not both"),
        (["--records", "{good}", "--hot-spot", "1:2"], "--hot-spot"),
        (["--records", "{bad}"], "cannot load"),
        (["--records", "{missing}"], "--records"),
    ],
)
def test_bad_flags_are_one_line_usage_errors(
    tmp_path: Path, records: list[dict[str, Any]], args: list[str], complaint: str
) -> None:
    (tmp_path / "good.jsonl").write_bytes(orjson.dumps(records[0]) + b"\n")
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n{not json\n')
    paths = {name: str(tmp_path / f"{name}.jsonl") for name in ("good", "bad", "missing")}
    result = CliRunner().invoke(fake_server, [arg.format(**paths) for arg in args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    assert complaint in lines[0]


def test_the_command_is_registered_on_the_main_cli() -> None:
    from copper_async.cli import main

    assert main.get_command(click.Context(main), "fake-server") is fake_server


@pytest.mark.asyncio
async def test_serve_until_stopped_prints_then_serves_until_told(
    records: list[dict[str, Any]], session: aiohttp.ClientSession
) -> None:
    out, stop = io.StringIO(), asyncio.Event()
    serving = asyncio.ensure_future(
        serve_until_stopped(
            Dataset.from_records(records), FakeServerOptions(cap=7), out=out, stop=stop
        )
    )
    await until(lambda: "serving until" in out.getvalue(), "the server to say it serves")
    url, token, email, _ = out.getvalue().splitlines()
    assert (token, email) == (f"X-PW-AccessToken: {TOKEN}", f"X-PW-UserEmail: {EMAIL}")
    async with session.post(url.split()[-1] + "/opportunities/search", json={}, headers=AUTH) as r:
        assert r.status == 200
        assert len(orjson.loads(await r.read())) == 7
    stop.set()
    stats = await serving
    assert stats["requests"] == 1
    assert out.getvalue().endswith("stopped after 1 requests\n")


# -- the benchmark script ----------------------------------------------------------------


def test_the_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    bench = load_benchmark("bench_fake_server")
    out = tmp_path / "bench.json"
    assert bench.main(["--records", "600", "--pages", "20", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["records"] == 600
    assert results["pages"] == 20
    for key in bench.TARGETS:
        assert results[key] > 0
        assert results["met"][key] == (results[key] < results["targets"][key])
    assert 0 < results["window_matches"] <= 300
    assert 0 < results["filter_matches"] < 600
    # The shapes that sort every record on a column without an index.
    for name in ("wide_range", "company_sort", "value_sort"):
        assert results[f"{name}_matches"] == 600


@pytest.mark.asyncio
async def test_after_searches_is_set_by_the_nth_search_request_from_now(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve()
    await post(session, server)  # before the call: not counted
    second, third = server.after_searches(2), server.after_searches(3)
    server.reset_stats()  # the counters' reset does not move the moment
    await post(session, server)
    assert not second.is_set()
    await post(session, server)
    assert second.is_set()
    assert not third.is_set()
    await post(session, server)
    assert third.is_set()
