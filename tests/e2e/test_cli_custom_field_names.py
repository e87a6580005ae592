"""``copper-async export --format csv --custom-field-names`` in a subprocess."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions
from tests.fakes import Account, run_cli

pytestmark = pytest.mark.asyncio

TOKEN, EMAIL = "cli-token", "cli@example.com"
ACCOUNT = Account(TOKEN, EMAIL)


async def export(server_url: str, out: Path, *extra: str) -> tuple[int, str]:
    """Run a quiet export to ``out``; its exit code and stderr."""
    arguments = ("--out", str(out), "--base-url", server_url, "--rate-limit", "none", "-q")
    code, _stdout, stderr = await run_cli("export", *arguments, *extra, env=ACCOUNT.env)
    return code, stderr


async def test_the_flag_names_csv_columns_and_needs_csv(tmp_path: Path) -> None:
    options = FakeServerOptions(access_token=TOKEN, user_email=EMAIL)
    async with FakeCopperServer(Dataset.generate(120, seed=8), options=options) as server:
        out = tmp_path / "named.csv"
        code, stderr = await export(server.url, out, "--format", "csv", "--custom-field-names")
        assert code == 0, stderr
        code, stderr = await export(server.url, tmp_path / "x.jsonl", "--custom-field-names")
        assert code == 2
        assert "--custom-field-names needs --format csv" in stderr
        # The definitions and the one search page; the refused run sent nothing.
        assert server.stats["requests_by_status"] == {200: 2}
        assert server.stats["requests"] == 1
    with out.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 120
    header = list(rows[0])
    assert {"cf_region", "cf_products", "cf_referral"} <= set(header)
    assert not any(column.startswith("custom_field_") for column in header)
    assert {row["cf_region"] for row in rows} - {""} <= {
        "North", "South", "East", "West", "Central", "EMEA", "APAC", "LATAM",
    }  # fmt: skip


async def test_paths_and_the_checkpoint_are_checked_before_the_definitions_are_asked(
    tmp_path: Path,
) -> None:
    """A bad output, a checkpoint left by another run or an output another
    export holds is refused before any request, with the flag as without it."""
    options = FakeServerOptions(access_token=TOKEN, user_email=EMAIL)
    async with FakeCopperServer(Dataset.generate(50, seed=8), options=options) as server:
        named = ("--format", "csv", "--custom-field-names")
        code, stderr = await export(server.url, tmp_path / "missing" / "x.csv", *named)
        assert code == 2, stderr
        checkpoint = tmp_path / "x.checkpoint"
        checkpoint.write_text("{}")
        out = tmp_path / "x.csv"
        code, stderr = await export(server.url, out, *named, "--checkpoint", str(checkpoint))
        assert code == 6, stderr
        assert "exists" in stderr
        assert not out.exists()
        assert server.stats["requests_by_status"] == {}
