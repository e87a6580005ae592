"""Fakes and helpers that several test modules share.

A fake clock, a scripted search endpoint, an account that makes matching fake
servers and clients, and the command run in a child process with its
credentials in the environment.
"""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import io
import json
import os
import random
import socket
import sys
import traceback
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import attrs
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestServer

from copper_async.client import CopperClient
from copper_async.exceptions import CopperError
from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions
from tests.reference import reference_examples

#: The command as a child process runs it: this interpreter, this checkout.
COMMAND = (sys.executable, "-m", "copper_async")
#: The seed of FakeClock's draws (expected backoffs replay it).
CLOCK_SEED = 1234
#: The benchmark scripts (run as scripts, not a package).
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# -- accounts: matching fake servers, clients and command environments ----------------


@attrs.frozen
class Account:
    """One set of credentials, so the server, the client and the command agree."""

    token: str
    email: str

    @property
    def env(self) -> dict[str, str]:
        """The environment that gives the command these credentials."""
        return {"COPPER_ACCESS_TOKEN": self.token, "COPPER_USER_EMAIL": self.email}

    def server_options(self, **changes: Any) -> FakeServerOptions:
        """Fake server options that accept this account (``changes`` win)."""
        values: dict[str, Any] = {"access_token": self.token, "user_email": self.email}
        return FakeServerOptions(**{**values, **changes})

    def server(self, records: list[dict[str, Any]], **changes: Any) -> FakeCopperServer:
        """A fake server over ``records`` that accepts this account, to enter
        with ``async with`` (``changes`` are its options)."""
        return FakeCopperServer(
            Dataset.from_records(records), options=self.server_options(**changes)
        )

    def client(self, server: FakeCopperServer | str, **options: Any) -> CopperClient:
        """A client of ``server`` (or a base URL), unpaced unless ``options`` say."""
        options.setdefault("rate_limit", None)
        url = server if isinstance(server, str) else server.url
        return CopperClient(access_token=self.token, user_email=self.email, base_url=url, **options)


def load_benchmark(name: str, *, monkeypatch: pytest.MonkeyPatch | None = None) -> ModuleType:
    """A fresh module of the script ``benchmarks/<name>.py``, its ``main`` not run.

    With ``monkeypatch`` it is in ``sys.modules`` for the test's duration, for
    code (attrs, cattrs) that resolves the module's annotations there.
    """
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    if monkeypatch is not None:
        monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def generated_records(count: int, *, seed: int) -> list[dict[str, Any]]:
    """``count`` generated records as plain dicts, for a test to serve or compare."""
    dataset = Dataset.generate(count, seed=seed)
    return [dataset.record(i) for i in dataset.ids()]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the command in a child process ---------------------------------------------------


async def run_cli(
    *arguments: str,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    merge_stderr: bool = False,
) -> tuple[int, str, str]:
    """Run the command to its end; its exit code, stdout and stderr.

    With ``merge_stderr`` stderr goes into stdout, interleaved as written.
    """
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        *arguments,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if merge_stderr else asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate(stdin)
    assert process.returncode is not None
    return process.returncode, out.decode(), (err or b"").decode()


async def start_cli(
    *arguments: str,
    env: Mapping[str, str] | None = None,
    stdout: int = asyncio.subprocess.DEVNULL,
    stderr: int = asyncio.subprocess.PIPE,
) -> asyncio.subprocess.Process:
    """The command running in the background, to be stopped by the test."""
    return await asyncio.create_subprocess_exec(
        *COMMAND,
        *arguments,
        env={**os.environ, **(env or {})},
        stdout=stdout,
        stderr=stderr,
    )


# -- stopping a stream mid-way ---------------------------------------------------------


async def cancel_mid_stream(open_stream: Callable[[], AsyncIterable[Any]]) -> None:
    """Read the stream ``open_stream`` opens in a task, and cancel that task
    once the first record has come (later pages still to come)."""
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in open_stream():
            started.set()

    task = asyncio.ensure_future(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- clocks and streams ----------------------------------------------------------------


class FakeClock:
    """Virtual time: sleeps are recorded and return at once; seeded chance."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._random = random.Random(CLOCK_SEED)

    def time(self) -> float:
        return 1_700_000_000.0 + self.now

    def monotonic(self) -> float:
        return self.now

    def random(self) -> float:
        return self._random.random()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class Terminal(io.StringIO):
    """A stream that says it is a terminal, so progress draws its bar."""

    def isatty(self) -> bool:
        return True


def exception_texts(error: BaseException) -> Iterator[str]:
    """Everything an error can show: message, repr, attributes, context, chain."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield repr(vars(current))
        yield repr(current.args)
        if isinstance(current, CopperError):
            yield repr(current.context)
        current = current.__cause__ or current.__context__
    yield "".join(traceback.format_exception(error))


# -- a scripted search endpoint ------------------------------------------------------

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]
REFERENCE_RECORDS = reference_examples()[0].records


@attrs.frozen
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Scripted:
    """A search endpoint that plays its answers in order; the last one repeats."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.received: list[Received] = []
        self.server: BaseTestServer | None = None

    def play(self, *answers: Answer) -> Scripted:
        self.answers.extend(answers)
        return self

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        loop_time = asyncio.get_running_loop().time()
        self.received.append(Received(request.path, dict(request.headers), body, loop_time))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return await answer(request)

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/v1"))


@asynccontextmanager
async def scripted_server() -> AsyncIterator[Scripted]:
    """A Scripted endpoint at ``/v1/opportunities/search`` on loopback."""
    scripted = Scripted()
    app = web.Application()
    app.router.add_post("/v1/opportunities/search", scripted.handle)
    async with TestServer(app, host="127.0.0.1") as test_server:
        scripted.server = test_server
        yield scripted


def page(
    records: list[dict[str, Any]] = REFERENCE_RECORDS,
    *,
    total: str | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """A page of ``records`` (with an ``X-PW-TOTAL`` when ``total`` is given)."""

    async def answer(_request: web.Request) -> web.StreamResponse:
        extra = dict(headers or {})
        if total is not None:
            extra["X-PW-TOTAL"] = total
        return web.Response(
            body=orjson.dumps(records), content_type="application/json", headers=extra
        )

    return answer


def status(code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Answer:
    async def answer(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, body=body, headers=headers)

    return answer


def raw(body: bytes, code: int = 200) -> Answer:
    async def answer(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, body=body, content_type="application/json")

    return answer


# -- what an export wrote --------------------------------------------------------------


def ids_in(path: Path) -> list[int]:
    """The ids in an export's output, in file order (JSON Lines or CSV by suffix)."""
    if path.suffix == ".csv":
        with open(path, newline="") as file:
            return [int(row["id"]) for row in csv.DictReader(file)]
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


def assert_exactly_once(written: list[int], expected: set[int]) -> None:
    assert len(written) == len(set(written)), "an id was written twice"
    assert set(written) == expected, (
        f"{len(expected - set(written))} missing, {len(set(written) - expected)} unexpected"
    )


def committed_rows(path: Path, committed: int) -> int:
    """Whole records in the first ``committed`` bytes (fails on a partial one)."""
    data = path.read_bytes()[:committed]
    if not data:
        return 0
    assert data.endswith(b"\n"), "the committed part ends inside a record"
    if path.suffix == ".csv":
        rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
        return len(rows) - 1
    lines = data.splitlines()
    for line in lines:
        orjson.loads(line)
    return len(lines)


async def until(condition: Callable[[], bool], what: str, *, seconds: float = 10.0) -> None:
    """Wait for ``condition`` where no event announces it: a bounded poll that
    fails naming ``what`` it waited for."""
    try:
        async with asyncio.timeout(seconds):
            # No event to wait on: the condition is the only signal there is.
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.001)
    except TimeoutError:
        raise AssertionError(f"gave up after {seconds}s waiting for {what}") from None


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def wait_for_size(
    path: Path, size: int, process: asyncio.subprocess.Process, *, seconds: float = 30.0
) -> None:
    """Wait until ``path`` holds more than ``size`` bytes, written by ``process``.

    The file is another process's: polling its size is the only event there is.
    Fails at once if the process ends first, and clearly after ``seconds``.
    """
    try:
        async with asyncio.timeout(seconds):
            while _size(path) <= size:
                assert process.returncode is None, f"the command ended before {path} grew"
                await asyncio.sleep(0.002)
    except TimeoutError:
        raise AssertionError(f"{path} did not grow past {size} bytes in {seconds}s") from None


# -- proxies in front of the fake server --------------------------------------------------


async def forward_search(
    session: aiohttp.ClientSession, upstream: FakeCopperServer, request: web.Request
) -> tuple[int, bytes, Mapping[str, str]]:
    """Send ``request``'s search on to ``upstream`` with its ``X-PW-`` headers;
    the answer's status, body and headers."""
    headers = {k: v for k, v in request.headers.items() if k.startswith("X-PW-")}
    async with session.post(
        upstream.url + "/opportunities/search",
        data=await request.read(),
        headers={**headers, "Content-Type": "application/json"},
    ) as answer:
        return answer.status, await answer.read(), answer.headers


class EchoProxy:
    """In front of the fake server; some answers echo the request's headers back,
    as a misconfigured proxy's error page would, and ``refuse`` makes every
    answer a 401 that echoes them."""

    def __init__(self, upstream: FakeCopperServer, session: aiohttp.ClientSession) -> None:
        self.upstream = upstream
        self.session = session
        self.requests = 0
        self.refuse = False
        self.echo_every = 7
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        echo = json.dumps(dict(request.headers)).encode()
        if self.refuse:
            return web.Response(status=401, body=b'{"message": "bad token", "got": ' + echo + b"}")
        if self.requests % self.echo_every == 3:
            return web.Response(status=502, body=b"<pre>upstream said: " + echo + b"</pre>")
        if self.requests % (self.echo_every + 4) == 5:
            return web.Response(body=b"<html>" + echo + b"</html>", content_type="text/html")
        status, body, headers = await forward_search(self.session, self.upstream, request)
        extra = {k: v for k, v in headers.items() if k in ("X-PW-TOTAL", "Retry-After")}
        return web.Response(
            status=status, body=body, content_type="application/json", headers=extra
        )


@asynccontextmanager
async def serve_echo_proxy(
    dataset: Dataset, options: FakeServerOptions
) -> AsyncIterator[EchoProxy]:
    """A fake server over ``dataset`` behind an EchoProxy, both on loopback."""
    async with (
        FakeCopperServer(dataset, options=options) as fake,
        aiohttp.ClientSession() as session,
    ):
        proxy = EchoProxy(fake, session)
        app = web.Application()
        app.router.add_post("/v1/opportunities/search", proxy.handle)
        async with TestServer(app, host="127.0.0.1") as server:
            proxy.url = str(server.make_url("/v1"))
            yield proxy


def secret_leaks(texts: list[str], token: str) -> list[str]:
    """The texts that hold ``token`` or a piece of it (an excerpt cut through it)."""
    fragments = (token, token[7:19], token[-12:])
    return [text for text in texts if any(fragment in text for fragment in fragments)]
