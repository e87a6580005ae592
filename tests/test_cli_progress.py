"""The export's progress display: a bar on a terminal, log lines elsewhere."""

from __future__ import annotations

import io
import logging

import pytest

from copper_async.cli import Progress
from copper_async.search import SearchStats


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def stats(records: int) -> SearchStats:
    return SearchStats(requests=records // 50, records=records, total_hint=1_000, windows_done=1)


def test_a_terminal_gets_a_bar_with_the_total_and_the_windows() -> None:
    stream = Terminal()
    progress = Progress(stream=stream, enabled=True)
    progress(stats(500), 500)
    progress.close()
    shown = stream.getvalue()
    assert "\r" in shown
    assert "500/1.00k" in shown
    assert "windows 1/" in shown


def test_off_a_terminal_progress_is_periodic_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    progress = Progress(stream=stream, enabled=True, interval=0.0)
    with caplog.at_level(logging.INFO, logger="copper_async.cli"):
        progress(stats(500), 500)
    progress.close()
    assert stream.getvalue() == ""
    assert "500 records written" in caplog.text


def test_quiet_shows_nothing(caplog: pytest.LogCaptureFixture) -> None:
    stream = Terminal()
    progress = Progress(stream=stream, enabled=False, interval=0.0)
    with caplog.at_level(logging.INFO, logger="copper_async.cli"):
        progress(stats(500), 500)
    progress.close()
    assert stream.getvalue() == ""
    assert caplog.text == ""
