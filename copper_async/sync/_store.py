"""The store protocol: what a run asks of a database.

A store keeps the mirror: the ``opportunities`` table, the job's state row
(bookmark, the unfinished run's planner snapshot and counts) and the schema
version. A run is: :meth:`Store.open` (lock, check the schema and the job),
:meth:`Store.begin_run`, then per page :meth:`Store.upsert_page` (rows
written, not yet committed; at the engine's commit points committed with the
run's progress in one transaction, which may still be under way when the call
returns: the store's next call waits for it and fails if it failed);
:meth:`Store.mark_deletions` and :meth:`Store.finish_run` end it, in one more;
:meth:`Store.name_custom_fields` then recreates the view with a column per
custom field, when the run was asked to. Whatever
stops a run, the database holds whole pages and a progress record that
matches them.

:class:`~copper_async.sync._threaded.ThreadedStore` implements it once over a
blocking DB-API connection; the SQLite and PostgreSQL stores are its dialects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import attrs
import orjson

from copper_async._custom_fields import CustomFieldNames
from copper_async.sync._bookmark import Mode
from copper_async.sync._schema import COLUMNS

__all__ = ["ALL_COLUMNS", "JobState", "PageCounts", "RunProgress", "Store"]

T = TypeVar("T")

#: Every column of the table, in order: the typed ones, then the mirror's own.
ALL_COLUMNS = (*(c.name for c in COLUMNS), "record", "synced_at", "deleted_at", "seen_run")


@attrs.define
class RunProgress:
    """One run: what it reads, and how far it got (committed with its rows)."""

    run_id: int
    mode: Mode
    started: int  # Unix seconds, this machine's clock
    read_from: int | None  # minimum_modified_date; None reads everything
    planner: dict[str, Any] | None = None
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    requests: int = 0  # over earlier attempts of this run

    def as_json(self) -> str:
        return orjson.dumps(attrs.asdict(self)).decode()


@attrs.frozen
class JobState:
    """A job's state row as a run finds it."""

    bookmark: int | None
    runs: int
    unfinished: RunProgress | None
    last_run: Mapping[str, Any] | None


@attrs.frozen
class PageCounts:
    inserted: int
    updated: int
    unchanged: int


class Store(Protocol):
    """What the sync runner needs of a database."""

    name: str  # for messages: never a password

    async def open(self, job: Mapping[str, Any], key: str) -> JobState: ...
    async def begin_run(self, run: RunProgress) -> None: ...
    async def restore(self, run_id: int, build: Callable[[Iterator[dict[str, Any]]], T]) -> T: ...
    async def upsert_page(
        self,
        run_id: int,
        records: Sequence[Mapping[str, Any]],
        synced_at: int,
        commit: RunProgress | None = None,
    ) -> PageCounts: ...
    async def save_progress(self, run: RunProgress) -> None: ...
    async def mark_deletions(self, run_id: int, deleted_at: int) -> int: ...
    async def finish_run(
        self, run: RunProgress, bookmark: int, summary: Mapping[str, Any]
    ) -> None: ...
    async def name_custom_fields(self, names: CustomFieldNames) -> None: ...
    async def close(self) -> None: ...
