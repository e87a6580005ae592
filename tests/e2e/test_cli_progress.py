"""The export's progress display: a bar on a terminal, log lines elsewhere.

What a terminal would show is rebuilt from the bytes written to it (carriage
returns overwrite, line feeds start a new line), so the tests see what a user
sees: log lines and the failure line each on a line of their own, never glued
to the bar. The command runs under a real pseudo-terminal as well.
"""

from __future__ import annotations

import asyncio
import fcntl
import io
import logging
import os
import re
import struct
import sys
import termios
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from copper_async._cli_support import Progress, _configure_logging
from copper_async._engine import SearchStats
from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions
from tests.fakes import Account, Terminal, generated_records

TOKEN = "progress-test-token-77c1"
EMAIL = "progress@example.com"
CAP, PAGE = 1_000, 50
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) ")


def render(text: str) -> list[str]:
    """The lines a terminal shows for ``text`` (cursor moves are dropped)."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    lines: list[list[str]] = [[]]
    column = 0
    for char in text:
        if char == "\r":
            column = 0
        elif char == "\n":
            lines.append([])
            column = 0
        else:
            line = lines[-1]
            line.extend(" " * (column + 1 - len(line)))
            line[column] = char
            column += 1
    return [shown for shown in ("".join(line).rstrip() for line in lines) if shown]


def stats(records: int, *, total: int | None = 1_000) -> SearchStats:
    return SearchStats(requests=records // 50, records=records, total_hint=total, windows_done=1)


def test_a_terminal_gets_a_bar_with_the_total_and_the_windows() -> None:
    stream = Terminal()
    progress = Progress(stream=stream, enabled=True)
    progress(stats(500), 500)
    progress.close()
    shown = stream.getvalue()
    assert "\r" in shown
    assert "500/1.00k" in shown
    assert "windows 1/" in shown


def test_the_bar_is_drawn_at_the_first_page_not_before() -> None:
    stream = Terminal()
    progress = Progress(stream=stream, enabled=True)
    # An error found before any page: nothing of a bar may precede its line.
    progress.close()
    assert stream.getvalue() == ""


def test_a_resumed_export_starts_the_bar_where_the_file_is() -> None:
    stream = Terminal()
    progress = Progress(stream=stream, enabled=True)
    # A resume calls first with what the file holds, before this run's first record.
    progress(stats(0, total=2_600), 1_200)
    assert "1.20k/2.60k" in render(stream.getvalue())[-1]
    progress(stats(100, total=2_600), 1_300)
    bar = progress._bar.format_dict
    # The rate (and so the ETA) counts this run's records only.
    assert (bar["initial"], bar["n"], bar["total"]) == (1_200, 1_300, 2_600)
    progress.close()
    assert "1.30k/2.60k" in render(stream.getvalue())[-1]


def test_a_total_below_what_is_written_grows() -> None:
    stream = Terminal()
    progress = Progress(stream=stream, enabled=True)
    progress(stats(500, total=600), 500)
    progress(stats(700, total=600), 700)
    progress.close()
    assert "700/700" in render(stream.getvalue())[-1]


def test_log_lines_print_above_the_bar_not_into_it(cli_logging: None) -> None:
    stream = Terminal()
    _configure_logging(quiet=False, verbose=False, stream=stream)
    progress = Progress(stream=stream, enabled=True)
    progress(stats(500), 500)
    logging.getLogger("copper_async._engine").warning("window (1, 2): expected 5 records, saw 4")
    progress(stats(600), 600)
    logging.getLogger("copper_async._export").info("second line")
    progress.close()
    lines = render(stream.getvalue())
    logged = [line for line in lines if "WARNING" in line or "INFO" in line]
    assert len(logged) == 2
    assert all(LOG_LINE.match(line) for line in logged), lines
    assert logged[0].endswith("expected 5 records, saw 4")
    assert logged[1].endswith("second line")
    # The bar is redrawn below them: the last line is the bar, whole.
    assert "600/1.00k" in lines[-1]
    assert not LOG_LINE.match(lines[-1])


def test_off_a_terminal_progress_is_periodic_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    progress = Progress(stream=stream, enabled=True, interval=0.0)
    with caplog.at_level(logging.INFO, logger="copper_async.cli"):
        progress(stats(500), 500)
    progress.close()
    assert stream.getvalue() == ""
    assert "500 records written" in caplog.text


def test_a_resumed_runs_log_lines_rate_counts_its_own_records(
    caplog: pytest.LogCaptureFixture,
) -> None:
    progress = Progress(stream=io.StringIO(), enabled=True, interval=0.0)
    this_run = stats(100)
    this_run.started_at, this_run.finished_at = 0.0, 10.0
    with caplog.at_level(logging.INFO, logger="copper_async.cli"):
        progress(this_run, 1_300)  # 1,200 records were written by the runs before
    progress.close()
    assert "1300 records written (10/s)" in caplog.text


def test_quiet_shows_nothing(caplog: pytest.LogCaptureFixture) -> None:
    stream = Terminal()
    progress = Progress(stream=stream, enabled=False, interval=0.0)
    with caplog.at_level(logging.INFO, logger="copper_async.cli"):
        progress(stats(500), 500)
    progress.close()
    assert stream.getvalue() == ""
    assert caplog.text == ""


# -- the command under a pseudo-terminal ------------------------------------------------


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return generated_records(2_600, seed=33)


def server_options(**changes: Any) -> FakeServerOptions:
    return Account(TOKEN, EMAIL).server_options(**{"cap": CAP, **changes})


@pytest_asyncio.fixture
async def server(records: list[dict[str, Any]]) -> AsyncIterator[FakeCopperServer]:
    options = server_options(latency=0.003)
    async with FakeCopperServer(Dataset.from_records(records), options=options) as running:
        yield running


def _drain(master: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65_536)
        except OSError:  # EIO: every writer of the terminal has gone
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def run_on_terminal(
    server: FakeCopperServer, out: Path, *extra: str, while_running: Any = None
) -> tuple[int, str]:
    """Run the export with stderr on a pseudo-terminal; return its code and output."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "copper_async",
            "export",
            *("--out", str(out), "--base-url", server.url, "--rate-limit", "none"),
            *("--cap", str(CAP), "--page-size", str(PAGE), "--concurrency", "2", *extra),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=slave,
            env={**os.environ, "COPPER_ACCESS_TOKEN": TOKEN, "COPPER_USER_EMAIL": EMAIL},
        )
    finally:
        os.close(slave)
    try:
        drained = asyncio.ensure_future(asyncio.to_thread(_drain, master))
        async with asyncio.timeout(60):
            if while_running is not None:
                await while_running(process)
            code = await process.wait()
            text = (await drained).decode(errors="replace")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        os.close(master)
    return code, text


@pytest.mark.asyncio
async def test_an_error_before_any_page_is_one_line_with_no_bar(
    server: FakeCopperServer, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "job.ckpt"
    checkpoint.write_text("{}")
    code, text = await run_on_terminal(
        server, tmp_path / "out.jsonl", "--checkpoint", str(checkpoint)
    )
    assert code == 6, text
    assert render(text) == [
        f"copper-async: checkpoint {str(checkpoint)!r} exists: "
        "resume it, or delete it to start over"
    ]
    assert "rec" not in text


@pytest.mark.asyncio
async def test_on_a_terminal_logs_and_the_failure_line_never_break_the_bar(
    server: FakeCopperServer, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"

    async def refuse_mid_way(process: asyncio.subprocess.Process) -> None:
        while process.returncode is None:
            if out.exists() and out.stat().st_size > 400_000:
                server.options = server_options(access_token="revoked")
                return
            await asyncio.sleep(0.005)

    code, text = await run_on_terminal(server, out, "--verbose", while_running=refuse_mid_way)
    assert code == 3, text
    lines = render(text)
    assert any("rec" in line and "windows" in line for line in lines), "no bar was drawn"
    logged = [line for line in lines if re.search(r" (DEBUG|INFO|WARNING) copper_async", line)]
    assert len(logged) > 10
    broken = [line for line in logged if not LOG_LINE.match(line)]
    assert not broken, broken[:3]
    # The bar's last state stays, and the failure has the last line to itself.
    assert lines[-1].startswith("copper-async: Copper refused the credentials"), lines[-3:]
    assert "rec" in lines[-2]
