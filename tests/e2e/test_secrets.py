"""The token stays secret in everything the command prints, verbose or failing.

The command runs in a child process; the library's own secrecy is
tests/integration/test_security.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from copper_async.cli import ExitCode
from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions
from tests.e2e.test_export_cli import export_args
from tests.fakes import (
    Account,
    EchoProxy,
    generated_records,
    run_cli,
    secret_leaks,
    serve_echo_proxy,
)
from tests.integration.test_security import ECHO_PROXY_OPTIONS

pytestmark = pytest.mark.asyncio

TOKEN = "sekrit-5f0c1a2b9d8e7f60a1b2c3d4"
EMAIL = "secure@example.com"
ACCOUNT = Account(TOKEN, EMAIL)
CREDENTIALS = ACCOUNT.env
CAP, PAGE = 1_000, 50


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return generated_records(2_500, seed=77)


@pytest_asyncio.fixture
async def server(records: list[dict[str, Any]]) -> AsyncIterator[FakeCopperServer]:
    async with ACCOUNT.server(records, cap=CAP) as running:
        yield running


@pytest_asyncio.fixture
async def echo_proxy(records: list[dict[str, Any]]) -> AsyncIterator[EchoProxy]:
    async with serve_echo_proxy(Dataset.from_records(records), ECHO_PROXY_OPTIONS) as proxy:
        yield proxy


def leaks(texts: list[str]) -> list[str]:
    """The texts that hold the token or a piece of it."""
    return secret_leaks(texts, TOKEN)


async def _cli(*arguments: str, env: dict[str, str]) -> tuple[int, str]:
    """The command's exit code and its stdout and stderr as one interleaved text."""
    code, output, _ = await run_cli(*arguments, env=env, merge_stderr=True)
    return code, output


async def test_the_command_with_verbose_logging_never_prints_the_token(
    server: FakeCopperServer, tmp_path: Path
) -> None:
    out = tmp_path / "all.jsonl"
    code, stdout, err = await run_cli(*export_args(server, out, "--verbose"), env=CREDENTIALS)
    assert code == ExitCode.OK, err
    assert "DEBUG" in err
    assert TOKEN not in err + stdout


@pytest.mark.asyncio
async def test_the_command_never_prints_the_token_even_verbose_through_a_failure(
    echo_proxy: EchoProxy, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    out, checkpoint = tmp_path / "cli.jsonl", tmp_path / "cli.ckpt"
    env = {"COPPER_ACCESS_TOKEN": TOKEN, "COPPER_USER_EMAIL": EMAIL}
    common = ["export", "--out", str(out), "--base-url", echo_proxy.url, "--rate-limit", "none"]
    common += ["--cap", str(CAP), "--page-size", str(PAGE), "--checkpoint", str(checkpoint), "-v"]
    # The command retries on its default, patient schedule: fewer faults keep this quick.
    echo_proxy.echo_every = 25
    echo_proxy.upstream.options = FakeServerOptions(cap=CAP, access_token=TOKEN, user_email=EMAIL)
    echo_proxy.refuse = True
    code, refused = await _cli(*common, env=env)
    assert code == ExitCode.AUTHENTICATION, refused
    assert "DEBUG" in refused
    assert "HTTP 401" in refused
    echo_proxy.refuse = False
    checkpoint.unlink(missing_ok=True)
    code, finished = await _cli(*common, env=env)
    assert code == ExitCode.OK, finished
    assert "retrying" in finished
    texts = [refused, finished, checkpoint.read_text()]
    # A token given as an option is no more visible than one from the environment.
    code, flagged = await _cli(*common, "--token", TOKEN, "--email", EMAIL, env={})
    assert code == ExitCode.CHECKPOINT
    texts.append(flagged)
    assert not leaks(texts)


@pytest.mark.asyncio
async def test_the_command_refuses_plain_http_unless_allowed(
    records: list[dict[str, Any]], tmp_path: Path
) -> None:
    """0.0.0.0 reaches this machine but is not a loopback name: refused without
    ``--allow-insecure-http``, before any request; allowed with it."""
    options = FakeServerOptions(cap=CAP, access_token=TOKEN, user_email=EMAIL)
    env = {"COPPER_ACCESS_TOKEN": TOKEN, "COPPER_USER_EMAIL": EMAIL}
    async with FakeCopperServer(
        Dataset.from_records(records[:120]), options=options, host="0.0.0.0"
    ) as server:
        url = f"http://0.0.0.0:{server.port}/developer_api/v1"
        out = tmp_path / "out.jsonl"
        common = ["export", "--out", str(out), "--base-url", url, "--rate-limit", "none", "-q"]
        code, output = await _cli(*common, env=env)
        assert code == ExitCode.USAGE, output
        assert "https" in output
        assert server.stats["requests"] == 0
        code, output = await _cli(*common, "--allow-insecure-http", env=env)
        assert code == ExitCode.OK, output
        assert server.stats["requests"] > 0
    assert len(out.read_bytes().splitlines()) == 120
