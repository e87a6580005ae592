"""SIGKILL at random moments of the export command, then a resume: every id once.

Three windows' worth of records at a cap of 1,000, pages of 50: the same
paths as Copper's 100,000.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
from pathlib import Path
from typing import Any

import pytest

from copper_async._writers import ExportFormat, open_writer
from copper_async.cli import ExitCode
from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions
from tests.e2e.test_export_cli import export_args
from tests.fakes import (
    Account,
    assert_exactly_once,
    committed_rows,
    generated_records,
    ids_in,
    start_cli,
)

pytestmark = pytest.mark.asyncio

CAP = 1_000
ACCOUNT = Account("reliability-token-7c1e55d0", "reliable@example.com")
CREDENTIALS = ACCOUNT.env


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    """3,000 generated records (three windows' worth at cap 1,000), read-only."""
    return generated_records(3_000, seed=41)


def server_options(**changes: Any) -> FakeServerOptions:
    return ACCOUNT.server_options(cap=CAP, **changes)


def full_size(records: list[dict[str, Any]], path: Path, format_: ExportFormat) -> int:
    """The size the finished export will have (order aside), written in-process."""
    writer = open_writer(path, format_)
    try:
        writer.write_page(records)
        return writer.commit()
    finally:
        writer.close()


@pytest.mark.parametrize("format_", ["jsonl", "csv"])
async def test_sigkill_at_five_random_moments_then_resume_gives_every_id_once(
    records: list[dict[str, Any]], tmp_path: Path, format_: ExportFormat
) -> None:
    rng = random.Random(f"sigkill/{format_}")
    out, checkpoint = tmp_path / f"killed.{format_}", tmp_path / "killed.ckpt"
    size = full_size(records, tmp_path / f"sizing.{format_}", format_)
    # One random moment in each sixth of the export: spread out, still random.
    targets = [int(size * (i + rng.uniform(0.1, 0.9)) / 6) for i in range(5)]
    common = ["--format", format_, "--checkpoint", str(checkpoint), "--concurrency", "3", "-q"]
    options = server_options(latency=0.01, latency_jitter=0.005)
    kills = 0
    async with FakeCopperServer(Dataset.from_records(records), options=options) as server:
        for target in targets:
            resume = ["--resume"] if checkpoint.exists() else []
            # The stale file must not trigger the kill before the new run truncates it.
            target = max(target, out.stat().st_size + 1 if out.exists() else 0)
            process = await start_cli(
                *export_args(server, out, *common, *resume),
                env=CREDENTIALS,
                stderr=asyncio.subprocess.DEVNULL,
            )
            async with asyncio.timeout(30):
                while process.returncode is None:
                    if out.exists() and out.stat().st_size >= target:
                        await asyncio.sleep(rng.uniform(0, 0.015))
                        if process.returncode is None:
                            process.send_signal(signal.SIGKILL)
                            kills += 1
                        break
                    await asyncio.sleep(0.002)
                await process.wait()
            if checkpoint.exists():
                # Whatever the moment, the checkpoint is whole and so is what it commits.
                state = json.loads(checkpoint.read_bytes())
                assert committed_rows(out, state["committed_bytes"]) == state["records"]
        assert kills == 5, "the export finished before all five kills"
        process = await start_cli(*export_args(server, out, *common, "--resume"), env=CREDENTIALS)
        async with asyncio.timeout(60):
            _, err = await process.communicate()
    assert process.returncode == ExitCode.OK, err.decode()
    assert_exactly_once(ids_in(out), {r["id"] for r in records})
    assert json.loads(checkpoint.read_bytes())["complete"] is True
