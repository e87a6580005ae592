"""``copper-async tap`` as a process: --about, --discover, refusals, a run."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions


def tap(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "copper_async", "tap", *args],
        capture_output=True,
        timeout=120,
        check=False,
        env=env,
    )


async def tap_process(config: Path, env: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    """``copper-async tap --config CONFIG`` beside a server on this loop: its exit
    code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "copper_async", "tap", "--config", str(config)],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, stdout, stderr


def test_about_prints_json_with_the_capabilities_meltano_reads() -> None:
    done = tap("--about", "--format", "json")
    assert done.returncode == 0, done.stderr
    about = json.loads(done.stdout)
    assert about["capabilities"] == ["catalog", "discover", "state", "about"]
    assert "access_token" in about["settings"]["properties"]
    markdown = tap("--about", "--format", "markdown")
    assert markdown.stdout.startswith(b"# `tap-copper-async`")


def test_discover_prints_the_catalog_and_needs_no_server(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"access_token": "t", "user_email": "e@example.com"}')
    done = tap("--discover", "--config", str(config))
    assert done.returncode == 0, done.stderr
    (stream,) = json.loads(done.stdout)["streams"]
    assert stream["tap_stream_id"] == "opportunities"


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"user_email": "e@example.com", "page_size": 50}, b"access_token"),
        ({"access_token": "t", "user_email": "e", "page_size": 900}, b"page_size"),
        ({"access_token": "t", "user_email": "e", "filter": {"nope": 1}}, b"filter"),
        ({"access_token": "t", "user_email": "e", "base_url": "ftp://x"}, b"base_url"),
    ],
)
def test_a_bad_config_exits_2_with_one_line_and_no_output(
    tmp_path: Path, config: dict[str, Any], words: bytes
) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(orjson.dumps(config))
    done = tap("--config", str(path), env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert done.stdout == b""
    assert words in done.stderr.splitlines()[-1]


def test_a_state_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    config, state = tmp_path / "config.json", tmp_path / "state.json"
    config.write_text('{"access_token": "t", "user_email": "e@example.com"}')
    state.write_text("{not json")
    done = tap("--config", str(config), "--state", str(state))
    assert done.returncode == 2
    assert b"state file" in done.stderr
    assert done.stdout == b""


@pytest.mark.asyncio
async def test_a_run_writes_messages_on_stdout_and_logs_on_stderr(tmp_path: Path) -> None:
    dataset = Dataset.generate(1_500, seed=3)
    async with FakeCopperServer(dataset, options=FakeServerOptions(cap=500)) as server:
        config = tmp_path / "config.json"
        settings = {"base_url": server.url, "rate_limit": "none", "cap": 500, "page_size": 100}
        config.write_bytes(orjson.dumps(settings))
        environ = {"COPPER_ACCESS_TOKEN": "fake-token", "COPPER_USER_EMAIL": "fake@example.com"}
        code, stdout, stderr = await tap_process(config, {"PATH": "/usr/bin:/bin", **environ})
    assert code == 0, stderr
    messages = [orjson.loads(line) for line in stdout.splitlines()]
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "SCHEMA"
    assert kinds[-1] == "STATE"
    assert kinds.count("RECORD") == 1_500
    assert b"1500 records" in stderr
    assert b"fake-token" not in stderr


@pytest.mark.asyncio
async def test_a_refused_token_exits_3(tmp_path: Path) -> None:
    async with FakeCopperServer(Dataset.generate(10, seed=1)) as server:
        config = tmp_path / "config.json"
        config.write_bytes(
            orjson.dumps({"base_url": server.url, "access_token": "wrong", "user_email": "e@x.io"})
        )
        code, _, stderr = await tap_process(config)
    assert code == 3, stderr
    assert b"wrong" not in stderr
