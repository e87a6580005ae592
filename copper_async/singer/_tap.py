"""A sync run: the catalog's selection, the search, the messages.

**When STATE is written.** The search splits past the cap on
``date_created`` and hands out windows in that order (several at once), not
in ``date_modified`` order: a record modified long ago can come last. So no
``date_modified`` reached mid-run is a safe bookmark: moving the bookmark
there would skip records not yet emitted that were modified before it. The
run therefore follows the shared bookmark rules
(:mod:`copper_async.sync._bookmark`): the bookmark moves only when the
search *completes*, to the run's start minus the overlap, in the STATE
written after the last record.

Meanwhile, every ``state_every`` pages (at a point where every record the
planner released has been written), a STATE keeps the old bookmark and adds
the run (:func:`~copper_async.singer._state.with_run`): its start, a digest
of what it reads, and the planner's windows not yet finished, each to be read
from its start again. A restart from that STATE goes on with the run: finished
windows are not read again, records of windows begun before it may be sent
twice (a target upserts on the key property ``id``), none is lost. A STATE
of a run that read something else (another filter, mode, cap or page size)
is set aside and the run starts afresh.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

import attrs
import orjson

from copper_async import CopperClient, OpportunityFilter
from copper_async.exceptions import CheckpointError
from copper_async.singer._catalog import (
    KEY_PROPERTIES,
    REPLICATION_KEY,
    STREAM,
    CatalogEntry,
    select_entry,
)
from copper_async.singer._config import TapConfig
from copper_async.singer._messages import MessageWriter
from copper_async.singer._schema import record_converter
from copper_async.singer._state import read_bookmark, read_run, with_bookmark, with_run
from copper_async.sync import _engine_adapter as engine
from copper_async.sync._bookmark import (
    ClockCheck,
    bookmark_after,
    choose_mode,
    incremental_filter,
    job_identity,
)

__all__ = ["STATE_EVERY", "TapResult", "run_tap"]

logger = logging.getLogger(__name__)

#: Pages between the STATE messages written during a run (10,000 records of 200).
STATE_EVERY = 50


@attrs.frozen
class TapResult:
    """What one run emitted."""

    selected: bool
    mode: str
    records: int = 0
    requests: int = 0
    state: dict[str, Any] | None = None
    resumed: bool = False  # went on with the run an earlier STATE carried


async def run_tap(
    config: TapConfig,
    out: BinaryIO,
    *,
    state: Mapping[str, Any] | None = None,
    catalog: Mapping[str, Any] | None = None,
    now: Callable[[], float] = time.time,
    state_every: int = STATE_EVERY,
) -> TapResult:
    """Sync the ``opportunities`` stream to ``out`` as Singer messages.

    Every check (catalog, state) happens before the first request. ``now``
    is this machine's clock, which dates the run's start for the bookmark.
    """
    entry = select_entry(catalog)
    if entry is None:
        logger.info("stream %r is not selected: nothing to sync", STREAM)
        return TapResult(selected=False, mode="none")
    carried = read_run(state)  # checks the state's shape in either mode
    client = _client(config)  # a bad base_url fails here, before any output
    _, job = job_identity(config.filter, base_url=client.base_url, user_email=client.user_email)
    previous = read_bookmark(state, job) if entry.incremental else None
    mode = choose_mode(previous, full=not entry.incremental)
    if mode == "incremental":
        query = incremental_filter(config.filter, previous)
    else:
        query = incremental_filter(config.filter, config.start_date, overlap=0)
    writer = MessageWriter(out, STREAM)
    writer.schema(entry.schema, KEY_PROPERTIES, [REPLICATION_KEY])
    run = _Run.of(carried, mode, query, config, job, started=int(now()))
    requests, carried_run, resumed = 0, carried is not None, False
    clock = ClockCheck()  # what the answers show of Copper's clock
    async with client:
        if query is None:
            logger.info("the filter's maximum_modified_date is before the bookmark: nothing new")
        else:
            logger.info("%s read of %r%s", mode, STREAM, " (continued)" if run.planner else "")
            convert = record_converter(entry.schema)
            keys = _Keys(entry)
            reading = _Reading(client, config, query, keys, convert, writer, now, clock)
            requests = await reading.run(run, state, state_every)
            carried_run |= reading.wrote_run
            resumed = reading.resumed
    if entry.incremental:
        after = bookmark_after(run.started, previous, clock, now())
        for warning in after.warnings:
            logger.warning("%s", warning)
        final = with_bookmark(state, after.bookmark, job)
    else:  # the state as it came, but for a run written into it (now done)
        final = with_run(state, None) if carried_run else dict(state or {})
    if final:
        writer.state(final)
    logger.info("%d records in %d requests", writer.records, requests)
    return TapResult(True, mode, writer.records, requests, final or None, resumed)


@attrs.frozen
class _Run:
    """The run this tap process takes part in: begun now, or carried by the state."""

    started: int
    key: str  # what it reads: a STATE of another read is not continued
    planner: Mapping[str, Any] | None = None

    @classmethod
    def of(
        cls,
        carried: Mapping[str, Any] | None,
        mode: str,
        query: OpportunityFilter | None,
        config: TapConfig,
        job: str,
        *,
        started: int,
    ) -> _Run:
        options = config.options
        reads = {
            # The same query of another API root or account reads other records.
            "job": job,
            "mode": mode,
            "query": None if query is None else query.to_body(page_number=None),
            "cap": options.cap,
            "page_size": options.page_size,
        }
        key = hashlib.sha256(orjson.dumps(reads, option=orjson.OPT_SORT_KEYS)).hexdigest()
        if carried is None:
            return cls(started, key)
        planner, begun = carried.get("planner"), carried.get("started")
        if carried.get("key") != key or not isinstance(planner, Mapping):
            logger.info("the state's unfinished run read something else: starting afresh")
            return cls(started, key)
        if isinstance(begun, bool) or not isinstance(begun, int):
            return cls(started, key)
        return cls(begun, key, planner)

    def progress(self, planner: Mapping[str, Any]) -> dict[str, Any]:
        return {"started": self.started, "key": self.key, "planner": dict(planner)}


def _client(config: TapConfig) -> CopperClient:
    extra: dict[str, Any] = {} if config.base_url is None else {"base_url": config.base_url}
    return CopperClient(
        access_token=config.access_token,
        user_email=config.user_email,
        rate_limit=config.rate_limit,
        allow_insecure_http=config.allow_insecure_http,
        **extra,
    )


@attrs.define
class _Keys:
    """The top-level keys a RECORD holds: those the catalog selects, and keys
    the schema does not know only where the catalog lets them pass. Each
    unknown key dropped is named once (Meltano's SDK does the same)."""

    entry: CatalogEntry
    named: set[str] = attrs.field(factory=set)  # unknown keys already warned of

    def select(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        entry = self.entry
        if entry.keeps_unknown:
            if not entry.dropped:
                return records
            return [{k: v for k, v in r.items() if k not in entry.dropped} for r in records]
        kept = [{k: v for k, v in r.items() if k in entry.properties} for r in records]
        if any(len(k) != len(r) for k, r in zip(kept, records, strict=True)):
            self._name_unknown(records)
        return kept

    def _name_unknown(self, records: list[dict[str, Any]]) -> None:
        known = self.entry.properties | self.entry.dropped
        for record in records:
            for key in record.keys() - known - self.named:
                self.named.add(key)
                logger.warning(
                    "key %r of %r is not in the catalog's schema: dropped from every record",
                    key,
                    STREAM,
                )


@attrs.define
class _Reading:
    """Writes every record a query matches, through the cap-splitting search."""

    client: CopperClient
    config: TapConfig
    query: OpportunityFilter
    keys: _Keys
    convert: Callable[[dict[str, Any]], dict[str, Any]]
    writer: MessageWriter
    now: Callable[[], float]
    clock: ClockCheck
    wrote_run: bool = False  # a STATE carrying the run was written
    resumed: bool = False  # the carried run's planner was restored

    async def run(self, run: _Run, state: Mapping[str, Any] | None, state_every: int) -> int:
        """Read to the end, writing a STATE with the run every ``state_every``
        pages; returns the requests made (over the earlier processes too)."""
        search = self._search(run)
        pages = search.pages()
        since = 0
        try:
            async for page in pages:
                self.clock.note(search.stats.server_date, self.now())
                records = self.keys.select(page.records)
                self.writer.records_page(self.convert(record) for record in records)
                since += 1
                if since >= state_every and search.at_commit_point:
                    since = 0
                    progress = run.progress(engine.restart_snapshot(search))
                    self.writer.state(with_run(state, progress))
                    self.wrote_run = True
        finally:
            await pages.aclose()
        self.clock.note(search.stats.server_date, self.now())  # no records answered too
        return search.stats.requests

    def _search(self, run: _Run) -> engine.RawSearch:
        options = self.config.options
        if run.planner is not None:
            try:
                restored = engine.restore_planner(run.planner, options, ())
            except CheckpointError as error:
                logger.warning(
                    "the state's unfinished run cannot be continued (%s): reading anew", error
                )
            else:
                self.resumed = True
                return engine.resumed_search(self.client, self.query, options, restored)
        return engine.new_search(self.client, self.query, options)
