"""`copper-async export` in subprocesses: what a new user trips over.

Concurrent runs refused (exit 9), a write error leaves whole pages, stdout
output, the URL and timeout messages, exit codes, --resume before any page.
The fake server runs in the test's event loop; a run is paused at a known
request (SIGSTOP on an event the server sets), never after a sleep.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import resource
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions

pytestmark = pytest.mark.asyncio

TOKEN = "usability-token-51c2"
EMAIL = "new.user@example.com"
ENV = {**os.environ, "COPPER_ACCESS_TOKEN": TOKEN, "COPPER_USER_EMAIL": EMAIL}
OPTIONS = FakeServerOptions(access_token=TOKEN, user_email=EMAIL, cap=1_000)


async def start(
    args: Sequence[str], cwd: Path, *, limit_file_size: int | None = None
) -> asyncio.subprocess.Process:
    def limit() -> None:
        if limit_file_size is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "copper_async", "export", *args,
        env=ENV, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=limit,
    )  # fmt: skip


async def cli(
    args: Sequence[str], cwd: Path, *, limit_file_size: int | None = None
) -> tuple[int, bytes, str]:
    process = await start(args, cwd, limit_file_size=limit_file_size)
    out, err = await process.communicate()
    return process.returncode or 0, out, err.decode()


def base(server: FakeCopperServer, *more: str) -> list[str]:
    return ["--base-url", server.url, "--rate-limit", "none", "--cap", "1000", *more]


def jsonl_ids(data: bytes) -> list[int]:
    return [orjson.loads(line)["id"] for line in data.splitlines()]


def export_to_file(tmp_path: Path, page_size: int, with_checkpoint: bool) -> tuple[Path, list[str]]:
    """The output file of a quiet export, and its arguments: pages of
    ``page_size``, with a checkpoint beside the output or none."""
    out = tmp_path / "o.jsonl"
    args = ["--out", str(out), "--page-size", str(page_size), "-q"]
    if with_checkpoint:
        args += ["--checkpoint", str(tmp_path / "o.ckpt")]
    return out, args


# -- 1: one run at a time ----------------------------------------------------------------


@pytest.mark.parametrize("with_checkpoint", [True, False])
async def test_a_second_run_of_the_same_export_is_refused_and_writes_nothing(
    tmp_path: Path, with_checkpoint: bool
) -> None:
    dataset = Dataset.generate(600, seed=3)
    out, args = export_to_file(tmp_path, 20, with_checkpoint)
    async with (
        FakeCopperServer(dataset, options=OPTIONS) as server,
        # The refused run asks this one, if anything: requests still in flight
        # from the stopped run cannot be mistaken for its own.
        FakeCopperServer(dataset, options=OPTIONS) as other,
    ):
        reached = server.after_searches(3)
        first = await start(base(server, *args), tmp_path)
        await reached.wait()
        first.send_signal(signal.SIGSTOP)  # holds its lock, mid-export
        try:
            before = out.read_bytes() if out.exists() else None
            code, _out, err = await cli(base(other, *args), tmp_path)
            assert code == 9, err
            assert "another export" in err
            assert "running" in err
            assert (out.read_bytes() if out.exists() else None) == before
            if with_checkpoint:
                code, _out, err = await cli(base(other, *args, "--resume"), tmp_path)
                assert code == 9, err
            assert other.stats["requests"] == 0
        finally:
            first.send_signal(signal.SIGCONT)
        _out, first_err = await first.communicate()
        assert first.returncode == 0, first_err.decode()
    ids = jsonl_ids(out.read_bytes())
    assert sorted(ids) == sorted(dataset.ids())
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".lock")], "lock files are removed"


# -- 2: a write error keeps whole pages ----------------------------------------------------


@pytest.mark.parametrize("with_checkpoint", [True, False])
async def test_a_full_disk_leaves_whole_records_and_a_resume_completes(
    tmp_path: Path, with_checkpoint: bool
) -> None:
    dataset = Dataset.generate(1_500, seed=5)
    out, args = export_to_file(tmp_path, 50, with_checkpoint)
    async with FakeCopperServer(dataset, options=OPTIONS) as server:
        code, _out, err = await cli(base(server, *args), tmp_path, limit_file_size=150_001)
        assert code == 7, err
        data = out.read_bytes()
        assert data
        assert data.endswith(b"\n")
        assert len(jsonl_ids(data)) % 50 == 0  # whole pages, each line whole
        if with_checkpoint:
            code, _out, err = await cli(base(server, *args, "--resume"), tmp_path)
            assert code == 0, err
            ids = jsonl_ids(out.read_bytes())
            assert sorted(ids) == sorted(dataset.ids())


# -- 3: a sort in the filter is refused, not silently replaced ---------------------------


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            {"sort_by": "name", "sort_direction": "desc"},
            (
                "the filter's sort_by and sort_direction cannot be honoured",
                "search cap",
                "; ignored",
            ),
        ),
        # Bodies copied from Copper's examples page too.
        (
            {"page_number": 3, "page_size": 5},
            ("the filter's page_number and page_size are ignored", "every page", "--page-size"),
        ),
    ],
    ids=["sort", "paging"],
)
async def test_a_filters_sort_or_paging_is_dropped_with_a_warning_that_says_why(
    tmp_path: Path, body: dict[str, Any], says: tuple[str, str, str]
) -> None:
    path = tmp_path / "f.json"
    path.write_bytes(orjson.dumps(body))
    dataset = Dataset.generate(30, seed=1)
    async with FakeCopperServer(dataset, options=OPTIONS) as server:
        code, _out, err = await cli(
            base(server, "--out", "o.jsonl", "--filter", str(path)), tmp_path
        )
    assert code == 0, err
    warned = [line for line in err.splitlines() if "WARNING" in line]
    assert len(warned) == 1, err
    message = warned[0].partition("copper_async.cli: ")[2]
    start, reason, end = says
    assert message.startswith(start), message
    assert reason in message
    assert message.endswith(end)
    assert sorted(jsonl_ids((tmp_path / "o.jsonl").read_bytes())) == sorted(dataset.ids())


# -- 4: --out - is stdout -----------------------------------------------------------------


@pytest.mark.parametrize("format_", ["jsonl", "csv"])
async def test_out_dash_streams_to_stdout(tmp_path: Path, format_: str) -> None:
    dataset = Dataset.generate(130, seed=2)
    async with FakeCopperServer(dataset, options=OPTIONS) as server:
        code, out, err = await cli(
            base(server, "--out", "-", "--format", format_, "--page-size", "40"), tmp_path
        )
    assert code == 0, err
    assert not (tmp_path / "-").exists()
    if format_ == "jsonl":
        ids = jsonl_ids(out)
    else:
        ids = [int(row["id"]) for row in csv.DictReader(io.StringIO(out.decode()))]
    assert sorted(ids) == sorted(dataset.ids())
    assert "records written   130" in err  # the summary goes to stderr


async def test_out_dash_with_a_checkpoint_is_refused(tmp_path: Path) -> None:
    async with FakeCopperServer(Dataset.generate(10, seed=1), options=OPTIONS) as server:
        code, out, err = await cli(base(server, "--out", "-", "--checkpoint", "c"), tmp_path)
    assert code == 2
    assert "stdout" in err
    assert "checkpoint" in err
    assert out == b""


async def test_out_dash_with_stdout_closed_is_refused_before_any_request(tmp_path: Path) -> None:
    # Run from a job that closed fd 1 (`>&-`): one line and a documented code, no traceback.
    async with FakeCopperServer(Dataset.generate(10, seed=1), options=OPTIONS) as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "copper_async", "export", *base(server, "--out", "-"),
            env=ENV, cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
            preexec_fn=lambda: os.close(1),
        )  # fmt: skip
        _, err = await process.communicate()
        assert server.stats["requests_by_status"] == {}
    assert process.returncode == 2, err.decode()
    assert err.decode().startswith("copper-async: ")
    assert "stdout" in err.decode()
    assert "Traceback" not in err.decode()


# -- 6: exit codes that say what went wrong ------------------------------------------------


async def test_a_base_url_of_the_server_root_names_the_url_problem(tmp_path: Path) -> None:
    async with FakeCopperServer(Dataset.generate(10, seed=1), options=OPTIONS) as server:
        root = server.url.removesuffix("/developer_api/v1")
        args = ["--base-url", root, "--rate-limit", "none", "--out", "o.jsonl"]
        code, _out, err = await cli(args, tmp_path)
        assert code == 2, err
        assert "--base-url" in err
        assert "404" in err
        assert "/developer_api/v1" in err  # what it should look like

        search_url = f"{server.url}/opportunities/search"
        server.reset_stats()
        args = ["--base-url", search_url, "--rate-limit", "none", "--out", "o.jsonl"]
        code, _out, err = await cli(args, tmp_path)
        assert code == 2, err
        assert "'base_url'" in err
        assert "search endpoint itself" in err
        assert repr(server.url) in err  # the API root to give instead
        assert server.stats["requests"] == 0


async def test_a_request_copper_rejects_is_not_gave_up_after_retries(tmp_path: Path) -> None:
    # An id passes the client's checks; the server does not know it (422).
    body = tmp_path / "f.json"
    body.write_bytes(orjson.dumps({"priority_ids": [99]}))
    async with FakeCopperServer(Dataset.generate(10, seed=1), options=OPTIONS) as server:
        code, _out, err = await cli(
            base(server, "--out", "o.jsonl", "--filter", str(body)), tmp_path
        )
        assert server.stats["requests"] == 1  # never retried
    assert code == 2, err
    assert "rejected" in err
    assert "422" in err
    assert "filter" in err


# -- 7: --timeout --------------------------------------------------------------------------


async def test_timeout_bounds_a_stalled_server_and_the_message_names_it(tmp_path: Path) -> None:
    options = OPTIONS.__class__(
        access_token=TOKEN, user_email=EMAIL, fault_rates={"stall": 1.0}, stall_seconds=60
    )
    async with FakeCopperServer(Dataset.generate(10, seed=1), options=options) as server:
        loop = asyncio.get_running_loop()
        started = loop.time()
        code, _out, err = await cli(base(server, "--out", "o.jsonl", "--timeout", "1.5"), tmp_path)
        elapsed = loop.time() - started
    assert code == 5, err
    assert "1.5s" in err
    assert "--timeout" in err
    assert elapsed < 30


# -- 8: CSV header with no records ---------------------------------------------------------


async def test_a_csv_export_of_no_records_has_its_header(tmp_path: Path) -> None:
    async with FakeCopperServer(Dataset.generate(0, seed=1), options=OPTIONS) as server:
        code, _out, err = await cli(base(server, "--out", "o.csv", "--format", "csv"), tmp_path)
    assert code == 0, err
    lines = (tmp_path / "o.csv").read_text().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("id,name,")


# -- 10: flags and quiet -------------------------------------------------------------------


async def test_quiet_and_verbose_together_are_a_usage_error(tmp_path: Path) -> None:
    code, _out, err = await cli(["--out", "o.jsonl", "-q", "-v"], tmp_path)
    assert code == 2
    assert "--quiet" in err
    assert "--verbose" in err


async def test_quiet_prints_only_the_error_line_when_interrupted(tmp_path: Path) -> None:
    dataset = Dataset.generate(600, seed=3)
    async with FakeCopperServer(dataset, options=OPTIONS) as server:
        reached = server.after_searches(3)
        args = base(server, "--out", "o.jsonl", "--page-size", "20", "-q")
        process = await start(args, tmp_path)
        await reached.wait()
        process.send_signal(signal.SIGINT)
        _out, err = await process.communicate()
    assert process.returncode == 130
    lines = err.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("copper-async: interrupted")


# -- 11: --resume before the first page ----------------------------------------------------


async def test_resume_with_no_checkpoint_and_no_output_simply_starts(tmp_path: Path) -> None:
    dataset = Dataset.generate(120, seed=8)
    args = ["--out", "o.jsonl", "--checkpoint", "o.ckpt", "--resume", "-q"]
    async with FakeCopperServer(dataset, options=OPTIONS) as server:
        code, _out, err = await cli(base(server, *args), tmp_path)
        assert code == 0, err
        assert sorted(jsonl_ids((tmp_path / "o.jsonl").read_bytes())) == sorted(dataset.ids())
        # An output that holds records but no checkpoint is not silently replaced.
        (tmp_path / "o.ckpt").unlink()
        code, _out, err = await cli(base(server, *args), tmp_path)
    assert code == 6, err
    assert "no checkpoint" in err


def demo_files(folder: Path) -> list[tuple[Path, int]]:
    """The demo's temporary files in ``folder``, with their sizes."""
    return [(path, path.stat().st_size) for path in folder.glob("copper-demo-*")]


async def test_a_stopped_demo_removes_its_temporary_file(tmp_path: Path) -> None:
    # demo --help: "default: a temporary file, removed after the check". A demo
    # stopped (SIGTERM, Ctrl-C) or failing must not leave a file of every record behind.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "copper_async", "demo", "--records", "20000", "--page-size", "10",
        env={**os.environ, "TMPDIR": str(tmp_path)}, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        while not any(size for _, size in demo_files(tmp_path)):
            assert process.returncode is None, "the demo ended before writing its file"
            await asyncio.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        _, err = await process.communicate()
    assert process.returncode == 143, err.decode()
    assert demo_files(tmp_path) == []
