"""The export and client as a library, where a new user trips: sorts in the
filter, streams, --resume before any page, loss reports, a client used in
two event loops, and the fake server's banner."""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import re
import warnings
from pathlib import Path

import orjson
import pytest

from copper_async import CopperError, SearchCapWarning, SearchOptions
from copper_async._export import run_export
from copper_async.client import CopperClient
from copper_async.exceptions import CapExceededError, InvalidFilterError, InvalidOptionError
from copper_async.filters import OpportunityFilter
from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions, HotSpot
from copper_async.testing._command import serve_until_stopped

TOKEN, EMAIL = "fake-token", "fake@example.com"


def client_for(server: FakeCopperServer) -> CopperClient:
    return CopperClient(access_token=TOKEN, user_email=EMAIL, base_url=server.url, rate_limit=None)


@pytest.mark.asyncio
async def test_a_sort_in_the_filter_is_refused_before_any_request(tmp_path: Path) -> None:
    query = OpportunityFilter.from_body({"sort_by": "name"})
    async with (
        FakeCopperServer(Dataset.generate(5, seed=1)) as server,
        client_for(server) as client,
    ):
        with pytest.raises(InvalidFilterError, match="sort_by"):
            await run_export(client, query, out=tmp_path / "o.jsonl")
        assert server.stats["requests"] == 0


@pytest.mark.asyncio
async def test_an_export_to_a_stream(tmp_path: Path) -> None:
    dataset = Dataset.generate(75, seed=2)
    stream = io.BytesIO()
    async with FakeCopperServer(dataset) as server, client_for(server) as client:
        result = await run_export(client, out=stream, options=SearchOptions(page_size=20))
        with pytest.raises(InvalidOptionError, match="checkpoint"):
            await run_export(client, out=io.BytesIO(), checkpoint=tmp_path / "c")
    ids = [orjson.loads(line)["id"] for line in stream.getvalue().splitlines()]
    assert sorted(ids) == sorted(dataset.ids())
    assert result.records == 75
    assert result.path is None


@pytest.mark.asyncio
async def test_resume_before_any_checkpoint_or_output_starts(tmp_path: Path) -> None:
    dataset = Dataset.generate(40, seed=4)
    out, ckpt = tmp_path / "o.jsonl", tmp_path / "o.ckpt"
    async with FakeCopperServer(dataset) as server, client_for(server) as client:
        result = await run_export(client, out=out, checkpoint=ckpt, resume=True)
    assert result.records == 40
    assert ckpt.exists()


@pytest.mark.asyncio
async def test_an_overcounting_total_with_page_size_one_logs_no_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dataset = Dataset.generate(30, seed=6)
    options = FakeServerOptions(total_mode="overcount")
    caplog.set_level(logging.DEBUG, logger="copper_async")
    async with FakeCopperServer(dataset, options=options) as server, client_for(server) as client:
        search = client.opportunities.search(page_size=1, raw=True)
        ids = [record["id"] async for record in search]
    assert sorted(ids) == sorted(dataset.ids())
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.asyncio
async def test_a_loss_is_reported_once_and_in_good_english(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cap = 20
    dataset = Dataset.generate(0, hot_spots=[HotSpot(1_600_000_000, cap + 1, 0)])
    caplog.set_level(logging.DEBUG, logger="copper_async")
    async with (
        FakeCopperServer(dataset, options=FakeServerOptions(cap=cap)) as server,
        client_for(server) as client,
    ):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            search = client.opportunities.search(page_size=10, cap=cap, on_cap="warn", raw=True)
            ids = [r["id"] async for r in search]
        with pytest.raises(CapExceededError) as raised:
            _ = [r async for r in client.opportunities.search(page_size=10, cap=cap, raw=True)]
    assert len(ids) == cap
    losses = [w for w in caught if issubclass(w.category, SearchCapWarning)]
    assert len(losses) == 1
    assert "1 record " in str(losses[0].message)
    assert not re.search(r"\b1 records", str(losses[0].message))
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "1 record " in str(raised.value)
    assert not re.search(r"\b1 records", str(raised.value))


def test_a_client_used_in_a_second_event_loop_says_what_to_do() -> None:
    async def serve_and_use(client: CopperClient | None) -> CopperClient:
        async with FakeCopperServer(Dataset.generate(3, seed=1)) as server:
            client = client or client_for(server)
            await client.search_page()
            return client

    client = asyncio.run(serve_and_use(None))
    try:
        with pytest.raises(CopperError, match=r"asyncio\.run"):
            asyncio.run(serve_and_use(client))
    finally:
        # The first loop's session was never closed: the user's leak, not ours to report.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            del client
            gc.collect()


@pytest.mark.asyncio
async def test_the_fake_server_banner_shows_every_header_it_needs() -> None:
    stop = asyncio.Event()
    stop.set()
    out = io.StringIO()
    await serve_until_stopped(Dataset.generate(1, seed=1), FakeServerOptions(), out=out, stop=stop)
    assert "X-PW-Application: developer_api" in out.getvalue()
