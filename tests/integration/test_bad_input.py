"""The bad-input catalogue: every case gets a typed error naming what was wrong.

Four families: search filters, client and engine options, the command line
and its environment, and malformed server answers. Each case checks the
error's type (from :mod:`copper_async.exceptions`), that its message names
the culprit, and how many requests went out: none for bad input, exactly the
retry budget (or one) for a bad answer. Malformed answers come from a
tampering proxy on loopback in front of the fake server; the command runs
in-process against a counting HTTP handler.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner

from copper_async._engine import SearchOptions
from copper_async._export import run_export
from copper_async._ratelimit import RateLimit
from copper_async._retry import RetryPolicy
from copper_async.cli import ExitCode, main
from copper_async.client import CopperClient
from copper_async.exceptions import (
    CheckpointError,
    CopperError,
    InvalidFilterError,
    InvalidOptionError,
    RecordError,
    ResponseFormatError,
)
from copper_async.filters import OpportunityFilter
from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions
from tests.fakes import forward_search, generated_records

TOKEN = "bad-input-token-91d2e7"
EMAIL = "catalogue@example.com"
CAP, PAGE = 1_000, 50
ATTEMPTS = 3
RETRY = RetryPolicy(attempts=ATTEMPTS, initial_backoff=0.001, max_backoff=0.002)


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return generated_records(3_000, seed=57)


# -- a tampering proxy in front of the fake server -----------------------------------

Rewrite = Callable[[int, list[dict[str, Any]], str | None], tuple[bytes, str | None]]


def untouched(_n: int, page: list[dict[str, Any]], total: str | None) -> tuple[bytes, str | None]:
    return orjson.dumps(page), total


class Proxy:
    """Forwards searches to the fake server and rewrites its 200 answers.

    ``rewrite(n, records, total)`` gets the request's number (from 1), the
    page and the ``X-PW-TOTAL`` value, and returns the body and total to send.
    """

    def __init__(self, upstream: FakeCopperServer, session: aiohttp.ClientSession) -> None:
        self.upstream = upstream
        self.session = session
        self.rewrite: Rewrite = untouched
        self.requests = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        number = self.requests
        status, payload, headers = await forward_search(self.session, self.upstream, request)
        total = headers.get("X-PW-TOTAL")
        if status != 200:
            return web.Response(status=status, body=payload, content_type="application/json")
        body, total = self.rewrite(number, orjson.loads(payload), total)
        extra = {} if total is None else {"X-PW-TOTAL": total}
        return web.Response(body=body, content_type="application/json", headers=extra)


@pytest_asyncio.fixture
async def proxy_factory(
    records: list[dict[str, Any]],
) -> AsyncIterator[Callable[..., Awaitable[Proxy]]]:
    async with aiohttp.ClientSession() as session:
        servers: list[Any] = []

        async def make(count: int = 3_000) -> Proxy:
            options = FakeServerOptions(cap=CAP, access_token=TOKEN, user_email=EMAIL)
            fake = FakeCopperServer(Dataset.from_records(records[:count]), options=options)
            await fake.start()
            servers.append(fake)
            proxy = Proxy(fake, session)
            app = web.Application()
            app.router.add_post("/v1/opportunities/search", proxy.handle)
            test_server = TestServer(app, host="127.0.0.1")
            await test_server.start_server()
            servers.append(test_server)
            proxy.url = str(test_server.make_url("/v1"))
            return proxy

        yield make
        for server in reversed(servers):
            await server.close()


def client_for(url: str) -> CopperClient:
    return CopperClient(
        access_token=TOKEN, user_email=EMAIL, base_url=url, rate_limit=None, retry=RETRY
    )


# -- filters ---------------------------------------------------------------------------


def _filter(**fields: Any) -> Callable[[], Any]:
    return lambda: OpportunityFilter(**fields)


FILTER_CASES: dict[str, tuple[Callable[[], Any], str, str]] = {
    # name: (what builds the bad filter, the field named, a phrase of the reason)
    "unknown status": (_filter(statuses=["Sold"]), "statuses[0]", "expected one of"),
    "unknown priority": (_filter(priorities=["Urgent"]), "priorities[0]", "expected one of"),
    "zero id": (_filter(assignee_ids=[0]), "assignee_ids[0]", "positive integer"),
    "string id": (_filter(ids=["7"]), "ids[0]", "positive integer"),
    "bool id": (_filter(company_ids=[True]), "company_ids[0]", "positive integer"),
    "status id out of range": (_filter(status_ids=[7]), "status_ids[0]", "0 to 3"),
    "empty list": (_filter(pipeline_ids=[]), "pipeline_ids", "empty list"),
    "empty name": (_filter(name="  "), "name", "must not be empty"),
    "created min above max": (
        _filter(minimum_created_date=2_000_000_000, maximum_created_date=1_000_000_000),
        "minimum_created_date",
        "greater than",
    ),
    "naive datetime": (
        _filter(minimum_modified_date=datetime(2020, 1, 1)),
        "minimum_modified_date",
        "naive datetime",
    ),
    "timestamp as text": (_filter(maximum_close_date="2020-01-01"), "maximum_close_date", "Unix"),
    "timestamp out of range": (
        _filter(minimum_created_date=10**14),
        "minimum_created_date",
        "at most",
    ),
    "nan money": (
        _filter(minimum_monetary_value=float("nan")),
        "minimum_monetary_value",
        "finite",
    ),
    "negative count": (
        _filter(maximum_interaction_count=-1),
        "maximum_interaction_count",
        "at least 0",
    ),
    "followed flag": (_filter(followed=3), "followed", "followed"),
    "sort field": (_filter(sort_by="colour"), "sort_by", "expected one of"),
    "sort direction": (_filter(sort_direction="up"), "sort_direction", "expected one of"),
    # Valid for Copper, but the search orders each window itself: refused, not dropped unseen.
    "a sort the search cannot keep": (
        _filter(sort_by="name"),
        "sort_by",
        "sort_by cannot be honoured by a search",
    ),
    "a sort direction alone": (
        _filter(sort_direction="desc"),
        "sort_direction",
        "sort_direction cannot be honoured by a search",
    ),
    "custom field entry": (_filter(custom_fields=["x"]), "custom_fields[0]", "CustomFieldFilter"),
    "body unknown key": (
        lambda: OpportunityFilter.from_body({"colour": "red"}),
        "colour",
        "unknown field",
    ),
    "body page size": (
        lambda: OpportunityFilter.from_body({"page_size": 500}),
        "page_size",
        "at most 200",
    ),
    "body not an object": (lambda: OpportunityFilter.from_body([]), "body", "JSON object"),  # type: ignore[arg-type]
    "body nested tag option": (
        lambda: OpportunityFilter.from_body({"tags": {"value": ["a"], "option": "SOME"}}),
        "tags.option",
        "expected one of",
    ),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", list(FILTER_CASES))
async def test_a_bad_filter_is_refused_naming_the_field_before_any_request(
    proxy_factory: Callable[..., Awaitable[Proxy]], case: str
) -> None:
    build, field, reason = FILTER_CASES[case]
    proxy = await proxy_factory(100)
    async with client_for(proxy.url) as client:
        with pytest.raises(InvalidFilterError) as raised:
            client.opportunities.search(build())
    assert raised.value.field == field
    assert field in str(raised.value)
    assert reason in str(raised.value)
    assert proxy.requests == 0


@pytest.mark.asyncio
async def test_search_many_refuses_a_sorted_filter_among_others_before_any_request(
    proxy_factory: Callable[..., Awaitable[Proxy]],
) -> None:
    proxy = await proxy_factory(100)
    async with client_for(proxy.url) as client:
        with pytest.raises(InvalidFilterError) as raised:
            client.opportunities.search_many(
                [OpportunityFilter(), OpportunityFilter(sort_by="name", sort_direction="asc")]
            )
    assert raised.value.field == "sort_by"
    assert "sort_by and sort_direction cannot be honoured" in str(raised.value)
    assert proxy.requests == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("paging", "field"), [({"page_number": 0}, "page_number"), ({"page_size": 201}, "page_size")]
)
async def test_bad_paging_of_one_page_is_refused_before_any_request(
    proxy_factory: Callable[..., Awaitable[Proxy]], paging: dict[str, int], field: str
) -> None:
    proxy = await proxy_factory(100)
    async with client_for(proxy.url) as client:
        with pytest.raises(InvalidFilterError) as raised:
            await client.search_page(
                page_number=paging.get("page_number", 1), page_size=paging.get("page_size", 50)
            )
    assert raised.value.field == field
    assert proxy.requests == 0


# -- options -----------------------------------------------------------------------------


def _client(**options: Any) -> Callable[[], Any]:
    return lambda: CopperClient(access_token=TOKEN, user_email=EMAIL, **options)


OPTION_CASES: dict[str, tuple[Callable[[], Any], str, str]] = {
    "rate limit of zero requests": (lambda: RateLimit(0, 60.0), "rate_limit.max_requests", ""),
    "rate limit of zero seconds": (lambda: RateLimit(180, 0.0), "rate_limit.period", ""),
    "rate limit text": (lambda: RateLimit.parse("fast"), "rate_limit", "fast"),
    "no attempts": (lambda: RetryPolicy(attempts=0), "attempts", "between 1 and 100"),
    "negative backoff": (lambda: RetryPolicy(initial_backoff=-1.0), "initial_backoff", ""),
    "backoff ceiling below start": (
        lambda: RetryPolicy(initial_backoff=2.0, max_backoff=1.0),
        "max_backoff",
        "initial_backoff",
    ),
    "zero deadline": (lambda: RetryPolicy(deadline=0.0), "deadline", "above 0"),
    "ftp base url": (_client(base_url="ftp://api.copper.com/v1"), "base_url", "http(s)"),
    "base url with a query": (_client(base_url="https://api.copper.com/v1?x=1"), "base_url", ""),
    "base url with a fragment": (_client(base_url="https://api.copper.com/v1#top"), "base_url", ""),
    "base url not a string": (_client(base_url=b"https://api.copper.com"), "base_url", ""),
    "timeout of a week": (_client(timeout=7 * 86_400.0), "timeout", "at most"),
    "response bound of a terabyte": (
        _client(max_response_bytes=2**40),
        "max_response_bytes",
        "between",
    ),
    "concurrency above the bound": (lambda: SearchOptions(concurrency=65), "concurrency", "64"),
    "negative end_at": (lambda: SearchOptions(end_at=-1), "end_at", "between"),
    "absurd cap": (lambda: SearchOptions(cap=10**10), "cap", "between"),
    "unsplittable field": (
        lambda: SearchOptions(split_field="date_last_contacted"),
        "split_field",
        "cannot split",
    ),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_a_bad_option_is_refused_naming_it(case: str) -> None:
    build, option, reason = OPTION_CASES[case]
    with pytest.raises(InvalidOptionError) as raised:
        build()
    assert raised.value.option == option
    assert repr(option) in str(raised.value)
    assert reason in str(raised.value)
    assert TOKEN not in str(raised.value)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("arguments", "error", "phrase"),
    [
        ({"format": "xml"}, InvalidOptionError, "'jsonl' or 'csv'"),
        ({"resume": True}, InvalidOptionError, "checkpoint"),
        ({"out": Path("missing-folder/out.jsonl")}, InvalidOptionError, "does not exist"),
        ({"checkpoint": Path("no-such.ckpt"), "resume": True}, CheckpointError, "no checkpoint"),
        # Relative, as given: it resolves to the output.
        ({"checkpoint": Path("out.jsonl")}, InvalidOptionError, "output file itself"),
        ({"checkpoint": Path("out.jsonl"), "resume": True}, InvalidOptionError, "file itself"),
        ({"checkpoint": Path("missing-folder/x.ckpt")}, InvalidOptionError, "does not exist"),
        ({"checkpoint": Path(".")}, InvalidOptionError, "directory"),
    ],
)
async def test_a_bad_export_call_is_refused_before_any_request(
    proxy_factory: Callable[..., Awaitable[Proxy]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    arguments: dict[str, Any],
    error: type[CopperError],
    phrase: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    proxy = await proxy_factory(100)
    previous = tmp_path / "out.jsonl"
    previous.write_bytes(PREVIOUS_OUTPUT)
    arguments.setdefault("out", previous)
    async with client_for(proxy.url) as client:
        with pytest.raises(error, match=phrase):
            await run_export(client, **arguments)
    assert proxy.requests == 0
    assert previous.read_bytes() == PREVIOUS_OUTPUT


# -- the command line and its environment --------------------------------------------------


class _Counting(http.server.BaseHTTPRequestHandler):
    count = 0

    def do_POST(self) -> None:
        type(self).count += 1
        self.send_response(500)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextmanager
def _serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` on a loopback HTTP server in a thread; its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def counting_url() -> Iterator[str]:
    """A loopback HTTP server that counts every request it gets."""
    with _serving(_Counting) as url:
        yield url


GOOD_ENV = {"COPPER_ACCESS_TOKEN": TOKEN, "COPPER_USER_EMAIL": EMAIL}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _link(target: Path, name: Path) -> Path:
    os.link(target, name)
    return name


CliCase = tuple[Callable[[Path], list[str]], dict[str, str], int, str]


def _refused(
    extra: Callable[[Path], list[str]],
    phrase: str,
    *,
    env: dict[str, str] = GOOD_ENV,
    code: int = 2,
) -> CliCase:
    """A case: arguments given the temp dir, environment, exit code, phrase in stderr.
    Most are usage errors (exit code 2) with good credentials."""
    return extra, env, code, phrase


CLI_CASES: dict[str, CliCase] = {
    "page size zero": _refused(lambda _: ["--page-size", "0"], "--page-size"),
    "page size above 200": _refused(lambda _: ["--page-size", "500"], "--page-size"),
    "concurrency zero": _refused(lambda _: ["--concurrency", "0"], "--concurrency"),
    "unknown format": _refused(lambda _: ["--format", "xml"], "--format"),
    "unknown split field": _refused(lambda _: ["--split-field", "date_closed"], "--split-field"),
    "unknown on-cap": _refused(lambda _: ["--on-cap", "ignore"], "--on-cap"),
    "cap zero": _refused(lambda _: ["--cap", "0"], "--cap"),
    "rate limit of zero seconds": _refused(lambda _: ["--rate-limit", "180/0"], "period"),
    "plain http to a remote host": _refused(
        lambda _: ["--base-url", "http://api.example.com/v1"], "https"
    ),
    "ftp base url": _refused(lambda _: ["--base-url", "ftp://api.example.com/v1"], "base_url"),
    "filter not JSON": _refused(
        lambda d: ["--filter", str(_write(d / "f.json", "{statuses: Open"))], "not valid JSON"
    ),
    "filter an array": _refused(
        lambda d: ["--filter", str(_write(d / "f.json", "[1, 2]"))], "must be a JSON object"
    ),
    "filter with a bad date": _refused(
        lambda d: ["--filter", str(_write(d / "f.json", '{"minimum_created_date": "today"}'))],
        "minimum_created_date",
    ),
    "resume with no checkpoint yet": _refused(
        lambda d: ["--checkpoint", str(d / "never-written.ckpt"), "--resume"],
        "run it again without --resume",
        code=6,
    ),
    "output is a folder": _refused(lambda d: ["--out", str(d)], "directory"),
    "output folder missing": _refused(
        lambda d: ["--out", str(d / "no" / "out.jsonl")], "does not exist"
    ),
    "token with a line break": _refused(
        lambda _: [],
        "access_token",
        env={**GOOD_ENV, "COPPER_ACCESS_TOKEN": TOKEN + "\nX-Injected: 1"},
    ),
    "email without an at": _refused(
        lambda _: [], "user_email", env={**GOOD_ENV, "COPPER_USER_EMAIL": "catalogue"}
    ),
    "checkpoint exists without resume": _refused(
        lambda d: ["--checkpoint", str(_write(d / "job.ckpt", "{}"))],
        "exists",
        code=ExitCode.CHECKPOINT,
    ),
    "damaged checkpoint on resume": _refused(
        lambda d: ["--checkpoint", str(_write(d / "job.ckpt", "{not json")), "--resume"],
        "unreadable",
        code=ExitCode.CHECKPOINT,
    ),
    "checkpoint is the output": _refused(
        lambda d: ["--checkpoint", str(d / "out.jsonl")], "is the output file itself"
    ),
    "checkpoint is the output, resumed": _refused(
        lambda d: ["--checkpoint", str(d / "out.jsonl"), "--resume"], "is the output file itself"
    ),
    "checkpoint is a hard link to the output": _refused(
        lambda d: ["--checkpoint", str(_link(d / "out.jsonl", d / "job.ckpt"))],
        "is the output file itself",
    ),
    "checkpoint folder missing": _refused(
        lambda _: ["--checkpoint", "/nonexistent/dir/x.ckpt"],
        "folder '/nonexistent/dir' does not exist",
    ),
    "checkpoint is a folder": _refused(lambda d: ["--checkpoint", str(d)], "directory"),
}

PREVIOUS_OUTPUT = b'{"id": 1, "name": "the previous export"}\n'


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_bad_command_input_is_one_message_and_its_exit_code_before_any_request(
    counting_url: str, cli_logging: None, tmp_path: Path, case: str
) -> None:
    extra, env, code, phrase = CLI_CASES[case]
    before = _Counting.count
    previous = tmp_path / "out.jsonl"
    previous.write_bytes(PREVIOUS_OUTPUT)
    arguments = ["export", "--out", str(previous), "--base-url", counting_url]
    arguments += ["--rate-limit", "none", *extra(tmp_path)]
    result = CliRunner().invoke(main, arguments, env=env)
    assert result.exit_code == code, result.output
    assert phrase in result.stderr
    assert "Traceback" not in result.stderr
    assert TOKEN not in result.output + result.stderr
    assert _Counting.count == before, "a request was sent"
    assert previous.read_bytes() == PREVIOUS_OUTPUT


class _Refusing(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"message": "invalid token"}')

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def refusing_url() -> Iterator[str]:
    """A loopback HTTP server that refuses every request's credentials."""
    with _serving(_Refusing) as url:
        yield url


@pytest.mark.parametrize("checkpoint", [False, True])
def test_refused_credentials_leave_the_previous_output_untouched(
    refusing_url: str, cli_logging: None, tmp_path: Path, checkpoint: bool
) -> None:
    previous = tmp_path / "out.jsonl"
    previous.write_bytes(PREVIOUS_OUTPUT)
    arguments = ["export", "--out", str(previous), "--base-url", refusing_url]
    arguments += ["--rate-limit", "none", "--quiet"]
    if checkpoint:
        arguments += ["--checkpoint", str(tmp_path / "job.ckpt")]
    result = CliRunner().invoke(main, arguments, env=GOOD_ENV)
    assert result.exit_code == ExitCode.AUTHENTICATION, result.output
    assert result.stderr.startswith("copper-async: Copper refused the credentials")
    assert previous.read_bytes() == PREVIOUS_OUTPUT


# -- malformed server answers -------------------------------------------------------------


def edit_records(edit: Callable[[list[dict[str, Any]]], Any]) -> Rewrite:
    """Rewrite every page with ``edit`` (which may return any JSON value or bytes)."""

    def rewrite(_n: int, page: list[dict[str, Any]], total: str | None) -> tuple[bytes, str | None]:
        value = edit([dict(record) for record in page])
        return (value if isinstance(value, bytes) else orjson.dumps(value)), total

    return rewrite


def set_field(key: str, value: Any, *, at: int = 3) -> Rewrite:
    def edit(page: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(page) > at:
            page[at][key] = value
        return page

    return edit_records(edit)


def drop_id(page: list[dict[str, Any]]) -> list[dict[str, Any]]:
    del page[0]["id"]
    return page


ANSWER_CASES: dict[str, tuple[Rewrite, bool, type[CopperError], str, int]] = {
    # name: (rewrite, raw, error, phrase, requests sent)
    "an object instead of an array": (
        edit_records(lambda page: {"opportunities": page}),
        True,
        ResponseFormatError,
        "expected a JSON array of records, got a JSON object",
        1,
    ),
    "an array of numbers": (
        edit_records(lambda page: [r["id"] for r in page]),
        True,
        ResponseFormatError,
        "index 0, got a JSON number",
        1,
    ),
    "null": (edit_records(lambda _: None), True, ResponseFormatError, "JSON null", 1),
    "a record without an id": (edit_records(drop_id), True, RecordError, "'id': missing", 1),
    "an id as text": (set_field("id", "12"), True, RecordError, "positive integer id", 1),
    "an id as true": (set_field("id", True), True, RecordError, "positive integer id", 1),
    "an id as a list": (set_field("id", [1]), True, RecordError, "positive integer id", 1),
    "a negative id": (set_field("id", -4), True, RecordError, "positive integer id", 1),
    "a date as text (typed)": (
        set_field("date_created", "2020-01-01"),
        False,
        RecordError,
        "'date_created'",
        1,
    ),
    "a name as a number (typed)": (set_field("name", 12), False, RecordError, "'name'", 1),
    "tags as a string (typed)": (set_field("tags", "vip"), False, RecordError, "'tags'", 1),
    "invalid UTF-8": (
        edit_records(lambda page: orjson.dumps(page)[:-2] + b'"\xff\xfe"]'),
        True,
        ResponseFormatError,
        "not valid JSON",
        ATTEMPTS,
    ),
    "an empty body": (
        edit_records(lambda _: b""),
        True,
        ResponseFormatError,
        "empty body",
        ATTEMPTS,
    ),
    "cut-off JSON": (
        edit_records(lambda page: orjson.dumps(page)[:100]),
        True,
        ResponseFormatError,
        "not valid JSON",
        ATTEMPTS,
    ),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", list(ANSWER_CASES))
async def test_a_malformed_answer_is_a_typed_error_naming_what_and_where(
    proxy_factory: Callable[..., Awaitable[Proxy]], case: str
) -> None:
    rewrite, raw, error, phrase, requests = ANSWER_CASES[case]
    proxy = await proxy_factory(120)
    proxy.rewrite = rewrite
    async with client_for(proxy.url) as client:
        search = client.opportunities.search(raw=raw, page_size=PAGE, cap=CAP)
        with pytest.raises(error) as raised:
            async for _ in search:
                pass
    assert phrase in str(raised.value)
    # Where it happened: the window and the page, as for a failed request.
    assert raised.value.context["page_number"] == 1
    assert set(raised.value.context["window"]) == {"date_created", "date_modified"}
    if error is RecordError:
        # Located once: a new error, raised from the record's own, which is left as raised.
        assert isinstance(raised.value.__cause__, RecordError)
        assert "window" not in raised.value.__cause__.context
    # Never retried when a retry cannot help; retried to the budget when it may.
    assert proxy.requests == requests
    assert TOKEN not in str(raised.value)


@pytest.mark.asyncio
@pytest.mark.parametrize("total", ["-5", "99999999999999999999", "1e3", "0x10", "", "3.5"])
async def test_an_untrustworthy_total_header_is_ignored_and_every_record_comes_once(
    proxy_factory: Callable[..., Awaitable[Proxy]], records: list[dict[str, Any]], total: str
) -> None:
    """A negative, huge or non-decimal ``X-PW-TOTAL`` is no total: the engine
    pages as if the header were absent, which is exact, rather than trusting it
    (a huge one would split windows for nothing, a negative one stop early)."""
    proxy = await proxy_factory()
    proxy.rewrite = lambda _n, page, _total: (orjson.dumps(page), total)
    async with client_for(proxy.url) as client:
        search = client.opportunities.search(raw=True, page_size=PAGE, cap=CAP)
        ids = [record["id"] async for record in search]
    assert len(ids) == len(set(ids)) == len(records)
    assert set(ids) == {r["id"] for r in records}
    assert search.stats.total_hint is None


# -- a failure mid-way keeps what was written -----------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("rewrite", "error"),
    [
        (edit_records(lambda page: {"error": "maintenance"}), ResponseFormatError),
        (edit_records(drop_id), RecordError),
        (edit_records(lambda page: b"\xff" + orjson.dumps(page)), ResponseFormatError),
    ],
    ids=["object", "no id", "invalid UTF-8"],
)
async def test_an_export_that_fails_mid_way_keeps_its_committed_part_and_resumes(
    proxy_factory: Callable[..., Awaitable[Proxy]],
    records: list[dict[str, Any]],
    tmp_path: Path,
    rewrite: Rewrite,
    error: type[CopperError],
) -> None:
    proxy = await proxy_factory()
    out, checkpoint = tmp_path / "out.jsonl", tmp_path / "out.ckpt"
    options = SearchOptions(page_size=PAGE, cap=CAP)
    proxy.rewrite = lambda n, page, total: (
        rewrite(n, page, total) if n > 20 else untouched(n, page, total)
    )
    async with client_for(proxy.url) as client:
        with pytest.raises(error):
            await run_export(client, out=out, options=options, checkpoint=checkpoint)
        state = json.loads(checkpoint.read_bytes())
        committed = out.read_bytes()[: state["committed_bytes"]]
        lines = committed.splitlines()
        assert 0 < state["records"] == len(lines) < len(records)
        assert all(orjson.loads(line)["id"] for line in lines)
        proxy.rewrite = untouched
        await run_export(client, out=out, options=options, checkpoint=checkpoint, resume=True)
    # What was committed before the failure is still there, byte for byte.
    assert out.read_bytes().startswith(committed)
    ids = [orjson.loads(line)["id"] for line in out.read_bytes().splitlines()]
    assert len(ids) == len(set(ids)) == len(records)
