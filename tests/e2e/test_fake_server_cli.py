"""``copper-async fake-server`` in a child process: it serves until told to stop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio

from copper_async.testing import Dataset, HotSpot, parse_search_body
from tests.fakes import COMMAND, generated_records

TOKEN, EMAIL = "fake-token", "fake@example.com"
AUTH = {"X-PW-AccessToken": TOKEN, "X-PW-Application": "developer_api", "X-PW-UserEmail": EMAIL}


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return generated_records(300, seed=21)


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # A connection per request: a reset or a cut body never spoils the next one.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as client:
        yield client


def truth_of(dataset: Dataset, body: dict[str, Any]) -> list[int]:
    return list(dataset.search(parse_search_body(body)[0]))


async def start_command(*args: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    """Run ``python -m copper_async fake-server ARGS``; return it and what it printed
    before serving."""
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "fake-server",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        while not lines or "serving until" not in lines[-1]:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
            assert line, "the command exited before serving"
            lines.append(line.decode())
    except BaseException:
        process.kill()
        await process.communicate()
        raise
    return process, lines


async def stop_command(process: asyncio.subprocess.Process, signum: int) -> tuple[str, str]:
    try:
        process.send_signal(signum)
        out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()
    return out.decode(), err.decode()


@pytest.mark.asyncio
async def test_the_command_serves_generated_records_until_sigint(
    session: aiohttp.ClientSession,
) -> None:
    process, lines = await start_command(
        *("--port", "0", "--generate", "40", "--seed", "3", "--hot-spot", "1600000000:5"),
        *("--cap", "10", "--total-mode", "capped", "--rate-limit", "100/60"),
        *("--token", "cli-token", "--email", "cli@example.com"),
    )
    printed = "".join(lines)
    url = lines[0].split()[-1]
    # --port 0: a free port was picked, and the URL shows the real one.
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/developer_api/v1")
    assert int(url.split(":")[2].split("/")[0]) > 0
    assert "cli-token" in printed
    assert "cli@example.com" in printed
    headers = {**AUTH, "X-PW-AccessToken": "cli-token", "X-PW-UserEmail": "cli@example.com"}
    body = {"page_size": 4, "sort_by": "date_created"}
    async with session.post(url + "/opportunities/search", json=body, headers=headers) as r:
        assert r.status == 200
        assert r.headers["X-PW-TOTAL"] == "10"
        served = orjson.loads(await r.read())
    expected = Dataset.generate(40, seed=3, hot_spots=[HotSpot(1_600_000_000, 5)])
    assert served == [expected.record(i) for i in truth_of(expected, body)[:4]]
    out, err = await stop_command(process, signal.SIGINT)
    assert process.returncode == 0, err
    assert "stopped after 1 requests" in out
    assert "Traceback" not in err


@pytest.mark.asyncio
async def test_the_command_serves_a_records_file_until_sigterm(
    tmp_path: Path, records: list[dict[str, Any]], session: aiohttp.ClientSession
) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records[:5]))
    process, lines = await start_command(
        "--port", "0", "--records", str(path), "--fault", "503=1.0"
    )
    url = lines[0].split()[-1]
    async with session.post(url + "/opportunities/search", json={}, headers=AUTH) as r:
        assert r.status == 503  # --fault 503=1.0: every request
    base = url.removesuffix("/developer_api/v1")
    async with session.post(
        base + "/_fake/truth", json={"sort_by": "date_created"}, headers=AUTH
    ) as r:
        ids = orjson.loads(await r.read())
    assert sorted(ids) == sorted(r["id"] for r in records[:5])
    _out, err = await stop_command(process, signal.SIGTERM)
    assert process.returncode == 0, err
    assert "Traceback" not in err
