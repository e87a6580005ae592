"""Exports of records whose values are hard to write: the files must read back
exactly, and a resume must read what the file already holds."""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from copper_async._engine import SearchOptions
from copper_async._export import run_export
from copper_async._retry import RetryPolicy
from copper_async.client import CopperClient
from copper_async.testing import FakeCopperServer
from tests.fakes import Account, assert_exactly_once, generated_records
from tests.stopping import stop_after

pytestmark = pytest.mark.asyncio

CAP, PAGE = 400, 20
ACCOUNT = Account("odd-values-token-77c1", "odd@example.com")
# Text as CRMs hold it: old Mac line ends, Windows ones, NUL, separators, emoji.
ODD_TEXTS = [
    "first line\rsecond line",
    "\r",
    "ends with a return\r",
    "windows\r\nline ends",
    "nul\x00inside",
    'quote " and, comma',
    "line\u2028separator",
    "non-BMP \U0001f600 \U00010348",
]


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    served = generated_records(600, seed=8)
    for index, record in enumerate(served):
        record["details"] = ODD_TEXTS[index % len(ODD_TEXTS)]
    return served


@pytest_asyncio.fixture
async def server(records: list[dict[str, Any]]) -> AsyncIterator[FakeCopperServer]:
    async with ACCOUNT.server(records, cap=CAP) as running:
        yield running


def client_for(server: FakeCopperServer) -> CopperClient:
    return ACCOUNT.client(server, retry=RetryPolicy(initial_backoff=0.001, max_backoff=0.01))


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


async def export_csv_stopped_and_resumed(
    client: Any, out: Path, folder: Path, *, pages: int, total: int
) -> None:
    """A CSV export stopped (as by Ctrl-C) after ``pages`` pages, then resumed to its end."""
    checkpoint = folder / "job.ckpt"
    options = SearchOptions(page_size=PAGE, cap=CAP)
    with pytest.raises(KeyboardInterrupt):
        await run_export(
            client,
            out=out,
            format="csv",
            options=options,
            checkpoint=checkpoint,
            progress=stop_after(pages, KeyboardInterrupt),
        )
    assert 0 < json.loads(checkpoint.read_bytes())["records"] < total
    await run_export(
        client, out=out, format="csv", options=options, checkpoint=checkpoint, resume=True
    )


async def test_a_csv_export_of_odd_text_reads_back_exactly_and_resumes(
    server: FakeCopperServer, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    async with client_for(server) as client:
        await export_csv_stopped_and_resumed(client, out, tmp_path, pages=12, total=len(records))
    rows = csv_rows(out)
    assert_exactly_once([int(row["id"]) for row in rows], {r["id"] for r in records})
    details = {r["id"]: r["details"] for r in records}
    assert {int(row["id"]): row["details"] for row in rows} == details


async def test_a_csv_export_of_a_very_long_text_resumes(
    records: list[dict[str, Any]], tmp_path: Path
) -> None:
    # Copper's details field is long text: one cell past the csv module's default
    # field limit (128 KiB) must not make the committed part unreadable on resume.
    served = [dict(record) for record in records[:100]]
    long_text = "long " * 40_000  # 200,000 characters
    for record in served:
        record["details"] = long_text
    out = tmp_path / "out.csv"
    async with ACCOUNT.server(served, cap=CAP) as running, client_for(running) as client:
        await export_csv_stopped_and_resumed(client, out, tmp_path, pages=2, total=len(served))
    limit = csv.field_size_limit(1 << 24)
    try:
        rows = csv_rows(out)
    finally:
        csv.field_size_limit(limit)
    assert_exactly_once([int(row["id"]) for row in rows], {r["id"] for r in served})
    assert {row["details"] for row in rows} == {long_text}
