"""Helpers shared by the sync tests: a fake server with a settable clock, and
the table read back for comparison with the server's truth."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import orjson

from copper_async import CopperClient
from copper_async.sync import SyncResult, open_store, run_sync
from copper_async.sync._clock import SettableClock
from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions

START = 1_780_000_000  # the fake clock's first second (the data end before it)
DAY = 86_400
TOKEN, EMAIL = "fake-token", "fake@example.com"


@attrs.define
class World:
    server: FakeCopperServer
    client: CopperClient
    clock: SettableClock

    @property
    def dataset(self) -> Dataset:
        return self.server.dataset

    def truth(self) -> dict[int, dict[str, Any]]:
        return {i: self.dataset.record(i) for i in self.dataset.ids()}


@asynccontextmanager
async def world(count: int, *, cap: int = 100_000, seed: int = 1) -> AsyncIterator[World]:
    clock = SettableClock(START)
    dataset = Dataset.generate(count, seed=seed, end=START - 86_400)
    async with FakeCopperServer(dataset, options=FakeServerOptions(cap=cap)) as server:
        server.clock = clock
        async with CopperClient(
            access_token=TOKEN, user_email=EMAIL, base_url=server.url, rate_limit=None
        ) as client:
            yield World(server, client, clock)


async def sync(w: World, db: str | Path, **options: Any) -> SyncResult:
    """One run of the mirror from ``w`` into ``db`` (a SQLite file or a
    PostgreSQL URL), at a search cap of 2,000 unless ``options`` say."""
    options.setdefault("cap", 2_000)
    return await run_sync(w.client, open_store(str(db)), clock=w.clock, **options)


def sqlite_rows(path: Path) -> dict[int, tuple[dict[str, Any], str | None]]:
    """id -> (record, deleted_at) of every row, read with a plain connection."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT id, record, deleted_at FROM opportunities").fetchall()
    return {row[0]: (orjson.loads(row[1]), row[2]) for row in rows}


def live(rows: dict[int, tuple[dict[str, Any], Any]]) -> dict[int, dict[str, Any]]:
    return {i: record for i, (record, deleted) in rows.items() if deleted is None}


def named_rows_expected(
    records: dict[int, dict[str, Any]], names: Any
) -> dict[int, dict[str, Any]]:
    """What the named view should hold, by the export's own naming (CustomFieldNames)."""
    expected: dict[int, dict[str, Any]] = {}
    for record_id, record in records.items():
        values = dict.fromkeys(names.columns.values())
        for entry in record.get("custom_fields") or []:  # the last one wins, as in the CSV
            definition_id = entry.get("custom_field_definition_id")
            if definition_id in names.columns:
                value = names.value(definition_id, entry.get("value"))
                values[names.columns[definition_id]] = value
        expected[record_id] = values
    return expected


def comparable(value: Any) -> Any:
    """A view's value as JSON would carry it (SQLite's JSON text, PostgreSQL's numeric)."""
    import decimal

    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, str) and value.startswith("["):
        return orjson.loads(value)
    return value
