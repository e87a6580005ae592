"""``copper-async export --format csv --custom-field-names`` in a subprocess."""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from pathlib import Path

import pytest

from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions

pytestmark = pytest.mark.asyncio

TOKEN, EMAIL = "cli-token", "cli@example.com"


async def export(server_url: str, out: Path, *extra: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "copper_async",
        "export",
        *("--out", str(out), "--base-url", server_url, "--rate-limit", "none", "-q", *extra),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COPPER_ACCESS_TOKEN": TOKEN, "COPPER_USER_EMAIL": EMAIL},
    )
    async with asyncio.timeout(60):
        _, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stderr.decode()


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
