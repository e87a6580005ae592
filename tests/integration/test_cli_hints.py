"""A refused request tells the command's user what to change, in export and sync alike."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from copper_async.cli import main
from copper_async.testing import Dataset, FakeCopperServer
from tests.sync_support import EMAIL, TOKEN


async def _invoke(arguments: list[str], email: str = EMAIL) -> Result:
    env = {"COPPER_ACCESS_TOKEN": TOKEN, "COPPER_USER_EMAIL": email}
    # The command runs its own event loop: in a thread, beside the server's.
    return await asyncio.to_thread(CliRunner().invoke, main, arguments, env=env)


def _commands(tmp_path: Path) -> dict[str, list[str]]:
    return {
        "export": ["export", "--out", str(tmp_path / "out.jsonl")],
        "sync": ["sync", "--db", str(tmp_path / "m.sqlite")],
    }


@pytest.mark.asyncio
@pytest.mark.parametrize("command", ["export", "sync"])
async def test_a_wrong_base_url_is_named_not_the_filter(
    cli_logging: None, tmp_path: Path, command: str
) -> None:
    async with FakeCopperServer(Dataset.generate(10, seed=1)) as server:
        wrong = server.url.removesuffix("/developer_api/v1") + "/wrong"
        arguments = _commands(tmp_path)[command] + ["--base-url", wrong, "--rate-limit", "none"]
        result = await _invoke(arguments)
    assert result.exit_code == 2, result.output
    assert "--base-url must be the API root" in result.stderr
    assert "--filter" not in result.stderr


@pytest.mark.asyncio
@pytest.mark.parametrize("command", ["export", "sync"])
async def test_refused_credentials_say_which_settings_to_check(
    cli_logging: None, tmp_path: Path, command: str
) -> None:
    async with FakeCopperServer(Dataset.generate(10, seed=1)) as server:
        arguments = [*_commands(tmp_path)[command], "--base-url", server.url]
        result = await _invoke([*arguments, "--rate-limit", "none"], email="typo@example.com")
    assert result.exit_code == 3, result.output
    assert "Copper refused the credentials" in result.stderr
    assert "--token or COPPER_ACCESS_TOKEN" in result.stderr
    assert "--email or COPPER_USER_EMAIL" in result.stderr
    assert TOKEN not in result.stderr


@pytest.mark.asyncio
async def test_the_tap_names_its_config_keys_when_refused(
    cli_logging: None, tmp_path: Path
) -> None:
    async with FakeCopperServer(Dataset.generate(10, seed=1)) as server:
        config = tmp_path / "config.json"
        config.write_bytes(
            orjson.dumps(
                {"access_token": TOKEN, "user_email": "typo@example.com", "base_url": server.url}
            )
        )
        result = await _invoke(["tap", "--config", str(config)])
    assert result.exit_code == 3, result.output
    assert "Copper refused the credentials" in result.stderr
    assert "access_token and user_email in the config" in result.stderr
    assert TOKEN not in result.stderr
