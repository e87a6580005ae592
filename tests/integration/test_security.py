"""Security: the access token stays secret, plain HTTP is refused, bodies are bounded.

The token test runs whole exports (faults, retries, a refusal whose body
echoes the request headers, a resume) and greps every output there is: log
records of every logger at every level (aiohttp's included), reprs, exception
messages, attributes, contexts and tracebacks, retry events, the checkpoint
file, the progress bar and the command's ``--verbose`` output.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner

from copper_async._cli_support import Progress
from copper_async._engine import SearchOptions
from copper_async._export import run_export
from copper_async._retry import RetryPolicy
from copper_async.cli import ExitCode, main
from copper_async.client import CopperClient, RetryEvent
from copper_async.exceptions import (
    AuthenticationError,
    InvalidOptionError,
    ResponseFormatError,
    ServerError,
    TransportError,
)
from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions
from tests.fakes import (
    EchoProxy,
    Terminal,
    exception_texts,
    generated_records,
    secret_leaks,
    serve_echo_proxy,
)

TOKEN = "sekrit-5f0c1a2b9d8e7f60a1b2c3d4"
EMAIL = "secure@example.com"
CAP, PAGE = 1_000, 50
# About a third of the proxy's answers are faults (its echoes and the fake
# server's), and which request meets which depends on how concurrent pages
# interleave: six attempts once ran out for a page in a loaded suite run.
# Twelve cost nothing here (millisecond backoffs) and square that chance.
FAST_RETRY = RetryPolicy(
    attempts=12, initial_backoff=0.001, max_backoff=0.005, max_retry_after=0.005
)


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return generated_records(2_500, seed=77)


def leaks(texts: list[str]) -> list[str]:
    """The texts that hold the token or a piece of it."""
    return secret_leaks(texts, TOKEN)


ECHO_PROXY_OPTIONS = FakeServerOptions(
    cap=CAP,
    access_token=TOKEN,
    user_email=EMAIL,
    seed=5,
    fault_rates={"503": 0.05, "reset": 0.03, "truncated": 0.02, "non_json": 0.02},
    burst_429_rate=0.02,
    # No Retry-After: its whole seconds would be waited out in full (test_client
    # covers it); the 429s still go through the retries.
    retry_after=False,
)


@pytest_asyncio.fixture
async def echo_proxy(records: list[dict[str, Any]]) -> AsyncIterator[EchoProxy]:
    async with serve_echo_proxy(Dataset.from_records(records), ECHO_PROXY_OPTIONS) as proxy:
        yield proxy


@pytest.mark.asyncio
async def test_the_token_is_nowhere_in_a_whole_export_with_faults_a_failure_and_a_resume(
    echo_proxy: EchoProxy,
    records: list[dict[str, Any]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("copper_async", "aiohttp", "aiohttp.client", "aiohttp.server", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    out, checkpoint = tmp_path / "out.jsonl", tmp_path / "out.ckpt"
    terminal = Terminal()
    progress = Progress(stream=terminal, enabled=True)
    events: list[RetryEvent] = []
    texts: list[str] = []
    written = 0

    def refuse_later(stats: Any, count: int) -> None:
        nonlocal written
        progress(stats, count)
        written = count
        if count >= 1_200:
            echo_proxy.refuse = True

    options = SearchOptions(page_size=PAGE, cap=CAP)
    client = CopperClient(
        access_token=TOKEN,
        user_email=EMAIL,
        base_url=echo_proxy.url,
        rate_limit=None,
        retry=FAST_RETRY,
        on_retry=events.append,
    )
    async with client:
        with pytest.raises(AuthenticationError) as raised:
            await run_export(
                client, out=out, options=options, checkpoint=checkpoint, progress=refuse_later
            )
        texts.extend(exception_texts(raised.value))
        texts.append(checkpoint.read_text())
        echo_proxy.refuse = False
        result = await run_export(
            client, out=out, options=options, checkpoint=checkpoint, resume=True, progress=progress
        )
        texts += [repr(client), str(client), repr(client.stats), repr(result)]
        search = client.opportunities.search(raw=True, page_size=PAGE, cap=CAP)
        texts += [repr(search), repr(search.stats), repr(search.options), repr(search.planner)]
        await search.aclose()
    progress.close()
    # The export really went through faults, retries and the echoing answers.
    assert events
    assert written >= 1_200
    assert {e.failure.value for e in events} >= {"server_error", "malformed_body"}
    assert "***" in str(raised.value)
    ids = [orjson.loads(line)["id"] for line in out.read_bytes().splitlines()]
    assert len(ids) == len(set(ids)) == len(records)

    texts += [repr(event) for event in events]
    texts += [str(event.context) for event in events]
    texts.append(checkpoint.read_text())
    texts.append(terminal.getvalue())
    assert "rec" in terminal.getvalue()
    texts.append(caplog.text)
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), record.exc_text or ""]
        if record.exc_info and record.exc_info[1] is not None:
            texts.extend(exception_texts(record.exc_info[1]))
    assert any("retrying" in record.getMessage() for record in caplog.records)
    assert not leaks(texts)


# -- plain HTTP ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://api.copper.com/developer_api/v1",
        "http://10.0.0.7/v1",
        "http://0.0.0.0:8080/v1",
        "http://localhost.evil.example/v1",
        "http://127.0.0.1.nip.io/v1",
        "http://[::ffff:7f00:1]/v1",
        "HTTP://API.COPPER.COM/v1",
    ],
)
def test_plain_http_to_a_host_that_is_not_loopback_is_refused(url: str) -> None:
    with pytest.raises(InvalidOptionError) as raised:
        CopperClient(access_token=TOKEN, user_email=EMAIL, base_url=url)
    assert raised.value.option == "base_url"
    assert "https" in str(raised.value)
    assert TOKEN not in str(raised.value)
    client = CopperClient(
        access_token=TOKEN, user_email=EMAIL, base_url=url, allow_insecure_http=True
    )
    assert client.base_url.lower().startswith("http://")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/v1",
        "http://127.8.9.10/v1",
        "http://[::1]:8080/v1",
        "http://localhost/v1",
    ],
)
def test_plain_http_to_loopback_is_allowed(url: str) -> None:
    client = CopperClient(access_token=TOKEN, user_email=EMAIL, base_url=url)
    assert client.base_url == url


# -- bounded bodies ------------------------------------------------------------------------


class Endless:
    """An answer that would never end: chunks until the client hangs up."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.sent = 0
        self.requests = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        response = web.StreamResponse(status=self.status)
        response.content_type = "application/json"
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b"[" + b'{"id": 1, "name": "' + b"x" * 65_000 + b'"},'
        try:
            while self.sent < 2**30:
                await response.write(chunk)
                self.sent += len(chunk)
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass
        return response


@pytest_asyncio.fixture
async def endless_server() -> AsyncIterator[tuple[Endless, Endless, str]]:
    ok, failing = Endless(200), Endless(500)
    app = web.Application()
    app.router.add_post("/ok/opportunities/search", ok.handle)
    app.router.add_post("/failing/opportunities/search", failing.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield ok, failing, str(server.make_url("/"))


@pytest.mark.asyncio
async def test_an_endless_body_is_cut_off_at_the_bound_not_read_into_memory(
    endless_server: tuple[Endless, Endless, str],
) -> None:
    endless, _, root = endless_server
    bound = 2**20
    tracemalloc.start()
    try:
        async with CopperClient(
            access_token=TOKEN,
            user_email=EMAIL,
            base_url=root + "ok",
            rate_limit=None,
            max_response_bytes=bound,
        ) as client:
            with pytest.raises(ResponseFormatError) as raised:
                await client.fetch_page({"page_number": 1, "page_size": 200})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"max_response_bytes={bound}" in str(raised.value)
    assert endless.requests == 1, "a body too large is not retried"
    # The server would have sent a gigabyte; the client took about the bound.
    assert peak < 16 * bound
    assert endless.sent < 64 * bound


@pytest.mark.asyncio
async def test_an_endless_error_body_is_read_only_to_a_few_kilobytes(
    endless_server: tuple[Endless, Endless, str],
) -> None:
    _, endless, root = endless_server
    async with CopperClient(
        access_token=TOKEN,
        user_email=EMAIL,
        base_url=root + "failing",
        rate_limit=None,
        retry=RetryPolicy(attempts=2, initial_backoff=0.001, max_backoff=0.001),
    ) as client:
        with pytest.raises(ServerError) as raised:
            await client.fetch_page({"page_number": 1, "page_size": 200})
    assert endless.requests == 2
    assert len(raised.value.body) <= 8192
    assert len(str(raised.value)) < 1_000
    assert endless.sent < 2 * 64 * 2**20


@pytest.mark.asyncio
async def test_a_search_refuses_pages_above_the_bound_without_retrying(
    records: list[dict[str, Any]],
) -> None:
    options = FakeServerOptions(cap=CAP, access_token=TOKEN, user_email=EMAIL)
    async with (
        FakeCopperServer(Dataset.from_records(records), options=options) as server,
        CopperClient(
            access_token=TOKEN,
            user_email=EMAIL,
            base_url=server.url,
            rate_limit=None,
            max_response_bytes=16 * 1024,
        ) as client,
    ):
        with pytest.raises(ResponseFormatError) as raised:
            async for _ in client.opportunities.search(raw=True, page_size=PAGE, cap=CAP):
                pass
        assert "exceeds max_response_bytes=16384" in str(raised.value)
        assert raised.value.context["page_number"] == 1
        assert server.stats["requests"] == 1


def test_the_default_bound_is_sane() -> None:
    """Far above a page (200 records of a few KiB), far below a machine's memory."""
    client = CopperClient(access_token=TOKEN, user_email=EMAIL)
    assert 200 * 16 * 1024 < client.max_response_bytes <= 256 * 2**20


def test_a_bad_token_is_not_echoed_by_the_command(cli_logging: None, tmp_path: Path) -> None:
    bad = TOKEN + "\r\nX-Evil: 1"
    result = CliRunner().invoke(
        main,
        ["export", "--out", str(tmp_path / "o.jsonl")],
        env={"COPPER_ACCESS_TOKEN": bad, "COPPER_USER_EMAIL": EMAIL},
    )
    assert result.exit_code == ExitCode.USAGE
    assert "access_token" in result.stderr
    assert not leaks([result.output, result.stderr, repr(result.exception)])


# -- protocol errors ------------------------------------------------------------------------


def chain(error: BaseException) -> list[BaseException]:
    """Every exception reachable from ``error`` by ``__cause__`` and ``__context__``."""
    found: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        pending += [current.__cause__, current.__context__]
    return found


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"GARBAGE\r\n\r\n", id="garbage status line"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n[]\r\n0\r\n\r\n",
            id="bad chunked encoding",
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n[]", id="bad content-length"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", id="huge header"),
    ],
)
async def test_the_token_is_nowhere_in_the_chain_of_a_protocol_error(answer: bytes) -> None:
    """aiohttp's ClientResponseError keeps the request's headers in ``request_info``;
    what the client raises keeps the aiohttp type in its chain, without the token."""

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(reply, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with CopperClient(
            access_token=TOKEN,
            user_email=EMAIL,
            base_url=f"http://127.0.0.1:{port}/v1",
            rate_limit=None,
            retry=RetryPolicy.never(),
        ) as client:
            with pytest.raises(TransportError) as raised:
                await client.fetch_page({"page_number": 1, "page_size": 200})
    finally:
        server.close()
        await server.wait_closed()
    error = raised.value
    errors = chain(error)
    protocol_errors = [e for e in errors if isinstance(e, aiohttp.ClientResponseError)]
    assert protocol_errors, "the aiohttp error is still the cause"
    texts = [str(error), repr(error), "".join(traceback.format_exception(error, chain=True))]
    texts += list(exception_texts(error))
    for current in errors:
        texts += [str(current), repr(current), repr(vars(current)), repr(current.args)]
        request_info = getattr(current, "request_info", None)
        if request_info is not None:
            texts += [repr(request_info), repr(dict(request_info.headers))]
            assert request_info.headers.get("X-PW-AccessToken") == "***"
            assert request_info.headers.get("X-PW-UserEmail") == EMAIL
    assert not leaks(texts)
