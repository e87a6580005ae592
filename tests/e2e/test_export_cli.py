"""The ``copper-async export`` command in a child process.

The command runs against a fake server served by the test's own event loop,
so the tests also cover SIGKILL, Ctrl-C and SIGTERM at arbitrary moments.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from copper_async.cli import ExitCode
from copper_async.testing import Dataset, FakeCopperServer, HotSpot
from tests.fakes import Account, generated_records, ids_in, run_cli, start_cli, wait_for_size

pytestmark = pytest.mark.asyncio

CAP, PAGE = 1_000, 50
TOKEN = "export-test-token-3f9a"
EMAIL = "exporter@example.com"
ACCOUNT = Account(TOKEN, EMAIL)
CREDENTIALS = ACCOUNT.env


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return generated_records(2_600, seed=21)


@pytest_asyncio.fixture
async def server(records: list[dict[str, Any]]) -> AsyncIterator[FakeCopperServer]:
    async with ACCOUNT.server(records, cap=CAP) as running:
        yield running


def export_args(server: FakeCopperServer, out: Path, *extra: str) -> list[str]:
    return [
        "export",
        "--out",
        str(out),
        "--base-url",
        server.url,
        "--rate-limit",
        "none",
        "--cap",
        str(CAP),
        "--page-size",
        str(PAGE),
        *extra,
    ]


async def start_export(
    server: FakeCopperServer, out: Path, *extra: str
) -> asyncio.subprocess.Process:
    """The export command running in the background, to be stopped by the test."""
    return await start_cli(*export_args(server, out, *extra), env=CREDENTIALS)


async def test_the_command_exports_csv_with_a_filter_from_stdin(
    server: FakeCopperServer, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "won.csv"
    body = json.dumps({"page_size": 25, "sort_by": "name", "statuses": ["Won"]}).encode()
    code, _, err = await run_cli(
        *export_args(server, out, "--format", "csv", "--filter", "-"),
        env=CREDENTIALS,
        stdin=body,
    )
    assert code == ExitCode.OK, err
    assert sorted(ids_in(out)) == sorted(r["id"] for r in records if r["status"] == "Won")
    # Off a terminal: no progress bar, plain lines and a summary.
    assert "\r" not in err
    assert "records written" in err
    assert TOKEN not in err


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        ((), {"COPPER_USER_EMAIL": EMAIL}, "no access token"),
        ((), {"COPPER_ACCESS_TOKEN": TOKEN}, "no user email"),
        (("--filter", "/nonexistent/filter.json"), CREDENTIALS, "cannot read filter file"),
        (("--resume",), CREDENTIALS, "--resume needs --checkpoint"),
        (("--rate-limit", "fast"), CREDENTIALS, "rate"),
    ],
)
async def test_bad_input_is_one_line_and_exit_2_before_any_request(
    server: FakeCopperServer,
    tmp_path: Path,
    extra: Sequence[str],
    env: dict[str, str],
    message: str,
) -> None:
    clean = dict.fromkeys(CREDENTIALS, "")
    code, _, err = await run_cli(
        *export_args(server, tmp_path / "out.jsonl", *extra), env={**clean, **env}
    )
    assert code == ExitCode.USAGE
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert server.stats["requests"] == 0


async def test_an_invalid_filter_body_is_refused_naming_the_field(
    server: FakeCopperServer, tmp_path: Path
) -> None:
    filter_file = tmp_path / "filter.json"
    filter_file.write_text(json.dumps({"statuses": ["Sold"]}))
    code, _, err = await run_cli(
        *export_args(server, tmp_path / "out.jsonl", "--filter", str(filter_file)),
        env=CREDENTIALS,
    )
    assert code == ExitCode.USAGE
    assert "statuses" in err
    assert server.stats["requests"] == 0


async def test_exit_codes_name_the_failure(server: FakeCopperServer, tmp_path: Path) -> None:
    wrong = {"COPPER_ACCESS_TOKEN": "wrong-token", "COPPER_USER_EMAIL": EMAIL}
    code, _, err = await run_cli(*export_args(server, tmp_path / "a.jsonl"), env=wrong)
    assert code == ExitCode.AUTHENTICATION, err
    assert "wrong-token" not in err

    server.options = ACCOUNT.server_options(cap=CAP, fault_rates={"503": 1.0})
    code, _, err = await run_cli(*export_args(server, tmp_path / "b.jsonl"), env=CREDENTIALS)
    assert code == ExitCode.GAVE_UP, err
    assert "503" in err


async def test_cap_exceeded_exits_4(tmp_path: Path) -> None:
    dataset = Dataset.generate(
        10, seed=1, hot_spots=[HotSpot(created=1_600_000_000, count=1_100, modified_spread=0)]
    )
    options = ACCOUNT.server_options(cap=CAP)
    async with FakeCopperServer(dataset, options=options) as server:
        code, _, err = await run_cli(*export_args(server, tmp_path / "a.jsonl"), env=CREDENTIALS)
    assert code == ExitCode.CAP_EXCEEDED, err
    assert "100 records are unreachable" in err


async def test_a_checkpoint_of_another_job_exits_6(
    server: FakeCopperServer, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "job.ckpt"
    code, _, err = await run_cli(
        *export_args(server, tmp_path / "a.jsonl", "--checkpoint", str(checkpoint)),
        env=CREDENTIALS,
    )
    assert code == ExitCode.OK, err
    code, _, err = await run_cli(
        *export_args(
            server,
            tmp_path / "a.jsonl",
            "--checkpoint",
            str(checkpoint),
            "--resume",
            "--format",
            "csv",
        ),
        env=CREDENTIALS,
    )
    assert code == ExitCode.CHECKPOINT
    assert "different export" in err


async def test_sigkill_at_several_moments_then_resume_gives_every_record_once(
    records: list[dict[str, Any]], tmp_path: Path
) -> None:
    out, checkpoint = tmp_path / "killed.jsonl", tmp_path / "killed.ckpt"
    args_base = ["--checkpoint", str(checkpoint), "--concurrency", "3", "--quiet"]
    async with ACCOUNT.server(records, cap=CAP, latency=0.004, latency_jitter=0.003) as server:
        kills = 0
        for target in (300, 900, 1_700):
            extra = [*args_base, *(["--resume"] if checkpoint.exists() else [])]
            process = await start_export(server, out, *extra)
            # Kill it once the file has grown past the target, mid-page if it may.
            for _ in range(2_000):
                if process.returncode is not None:
                    break
                if out.exists() and out.stat().st_size > target * 900:
                    process.send_signal(signal.SIGKILL)
                    kills += 1
                    break
                await asyncio.sleep(0.005)
            await process.wait()
        assert kills >= 2, "the export finished before it could be killed"
        code, _, err = await run_cli(
            *export_args(server, out, *args_base, "--resume"), env=CREDENTIALS
        )
    assert code == ExitCode.OK, err
    written = ids_in(out)
    assert len(written) == len(set(written)), "a record was written twice"
    assert set(written) == {r["id"] for r in records}


@pytest.mark.parametrize(
    ("stop", "code", "said"),
    [
        (signal.SIGINT, ExitCode.INTERRUPTED, "interrupted"),
        (signal.SIGTERM, ExitCode.TERMINATED, "terminated"),
    ],
    ids=["ctrl-c", "sigterm"],
)
async def test_a_stopped_export_exits_cleanly_and_resumes(
    records: list[dict[str, Any]], tmp_path: Path, stop: signal.Signals, code: int, said: str
) -> None:
    """Ctrl-C (130) and SIGTERM (143) stop between pages: the committed part is
    whole records, and --resume completes the file exactly once."""
    out, checkpoint = tmp_path / "stopped.jsonl", tmp_path / "stopped.ckpt"
    extra = ("--checkpoint", str(checkpoint), "--quiet")
    async with ACCOUNT.server(records, cap=CAP, latency=0.004, latency_jitter=0.0) as server:
        process = await start_export(server, out, *extra)
        await wait_for_size(out, 500_000, process)
        process.send_signal(stop)
        assert process.stderr is not None
        err = (await process.stderr.read()).decode()
        assert await process.wait() == code, err
        assert f"{said}; the output is consistent up to the last page" in err
        assert "continue with --resume" in err
        assert "Traceback" not in err
        state = json.loads(checkpoint.read_bytes())
        assert not state["complete"]
        # The committed part of the file is whole records only.
        committed = out.read_bytes()[: state["committed_bytes"]]
        assert committed.endswith(b"\n")
        assert len(committed.splitlines()) == state["records"]
        resumed, _, err = await run_cli(
            *export_args(server, out, *extra, "--resume"), env=CREDENTIALS
        )
    assert resumed == ExitCode.OK, err
    written = ids_in(out)
    assert len(written) == len(set(written)) == len(records)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
async def test_a_full_disk_is_one_line_and_exit_7(server: FakeCopperServer) -> None:
    code, _, err = await run_cli(*export_args(server, Path("/dev/full")), env=CREDENTIALS)
    assert code == ExitCode.OUTPUT == 7, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "copper-async: cannot write '/dev/full': No space left on device"
    )


async def test_a_reader_closing_stdout_stops_the_export_with_exit_141(
    server: FakeCopperServer,
) -> None:
    """``export --out - | head``: the reader leaving is no disk error (7), and
    no traceback or flush error follows the one line."""
    read_end, write_end = os.pipe()
    try:
        process = await start_cli(
            *export_args(server, Path("-")), env=CREDENTIALS, stdout=write_end
        )
    finally:
        os.close(write_end)
    try:
        # 2,600 records do not fit in a pipe's buffer: the command is still writing.
        first = await asyncio.to_thread(os.read, read_end, 1_000)
    finally:
        os.close(read_end)
    assert first.startswith(b'{"id":')
    assert process.stderr is not None
    err = (await process.stderr.read()).decode()
    assert await process.wait() == ExitCode.READER_CLOSED == 141, err
    assert err.strip().splitlines() == ["copper-async: stdout was closed by its reader; stopped"]


async def test_an_interrupted_export_without_a_checkpoint_does_not_offer_a_resume(
    records: list[dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "stopped.jsonl"
    async with ACCOUNT.server(records, cap=CAP, latency=0.004, latency_jitter=0.0) as server:
        process = await start_export(server, out)
        await wait_for_size(out, 300_000, process)
        process.send_signal(signal.SIGINT)
        assert process.stderr is not None
        err = (await process.stderr.read()).decode()
        assert await process.wait() == ExitCode.INTERRUPTED, err
    assert "interrupted" in err
    assert "resume" not in err.lower()
    # Whole pages only, even so.
    assert out.read_bytes().endswith(b"\n")
    assert all(orjson.loads(line)["id"] for line in out.read_bytes().splitlines())


async def test_on_cap_warn_prints_the_warning_once(tmp_path: Path) -> None:
    dataset = Dataset.generate(
        10, seed=1, hot_spots=[HotSpot(created=1_600_000_000, count=1_100, modified_spread=0)]
    )
    options = ACCOUNT.server_options(cap=CAP)
    out = tmp_path / "a.jsonl"
    async with FakeCopperServer(dataset, options=options) as server:
        code, _, err = await run_cli(*export_args(server, out, "--on-cap", "warn"), env=CREDENTIALS)
    assert code == ExitCode.OK, err
    assert err.count("holds more records than the search cap") == 1, err
    assert "SearchCapWarning" not in err
    written = ids_in(out)
    assert len(written) == len(set(written)) > 0
