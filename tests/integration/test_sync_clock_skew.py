"""A sync whose machine clock disagrees with Copper's.

Copper stamps ``date_modified`` with its own clock; the bookmark is a time on
that clock. A machine clock running ahead by more than the overlap made the
bookmark skip the edits made in between; its answers' ``Date`` now bounds the
run's start. A bookmark a fast clock already set is named and moved back.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from copper_async.sync import open_store, run_sync
from tests.sync_support import DAY, live, sqlite_rows, sync, world

pytestmark = pytest.mark.asyncio

HOUR = 3_600


def clock_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]


async def test_a_machine_clock_an_hour_ahead_misses_no_edit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "m.sqlite"
    async with world(600) as w:
        copper_time = w.clock.time
        w.server.clock = lambda: copper_time() - HOUR  # this machine runs an hour ahead
        first = await sync(w, db)
        assert first.bookmark == w.clock.time() - HOUR - 300  # Copper's start, less the overlap
        # Half an hour later by Copper's clock: long before this machine's start.
        w.clock.advance(HOUR // 2)
        changes = w.server.play_changes(edits=40, creates=5)
        w.clock.advance(DAY)
        caplog.set_level(logging.WARNING, logger="copper_async")
        second = await sync(w, db)
        assert (second.updated, second.inserted) == (40, 5), changes
    assert live(sqlite_rows(db)) == w.truth()
    assert (
        clock_warnings(caplog)
        == ["this machine's clock runs 3600s ahead of Copper's: the bookmark follows Copper's"] * 2
    )  # each run


async def test_a_machine_clock_behind_keeps_its_own_earlier_start(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    async with world(300) as w:
        copper_time = w.clock.time
        w.server.clock = lambda: copper_time() + HOUR
        first = await sync(w, db)
    assert first.bookmark == w.clock.time() - 300  # earlier than Copper's: reads more, safely


async def test_a_bookmark_a_fast_clock_set_is_named_and_moved_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "m.sqlite"
    async with world(300) as w:
        # A bookmark a day ahead, as a fast clock set it before its answers'
        # Dates were read (or a server whose own clock was fast then).
        w.clock.advance(DAY)
        first = await run_sync(w.client, open_store(str(db)), clock=w.clock, cap=2_000)
        w.clock.advance(-DAY)  # the clocks are set right
        assert first.bookmark > w.clock.time()
        caplog.set_level(logging.WARNING, logger="copper_async")
        second = await sync(w, db)
    assert second.bookmark == w.clock.time() - 300
    (warning,) = clock_warnings(caplog)
    assert warning.startswith("the bookmark was 86")  # about a day ahead
    assert "read everything once" in warning
