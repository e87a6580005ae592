"""A sync run: the catalog's selection, the search, the messages.

**When STATE is written.** The search splits past the cap on
``date_created`` and hands out windows in that order (several at once), not
in ``date_modified`` order: a record modified long ago can come last. So no
``date_modified`` reached mid-run is a safe bookmark: moving the bookmark
there would skip records not yet emitted that were modified before it. The
run therefore follows the shared bookmark rules
(:mod:`copper_async.sync._bookmark`): the bookmark moves only when the
search *completes*, to the run's start minus the overlap, and one STATE
carrying it is written after the last record. An interrupted run writes no
new STATE, so its restart (from the last STATE the target saved) reads the
same changes again; records sent twice are harmless, since a target upserts
on the key property ``id``. The alternative, an in-progress STATE from which
a restart resumes the run mid-way, would have to carry the planner's
windows and the ids already sent, which no Singer target or orchestrator
interprets; the rerun costs only the changes since the last bookmark.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

import attrs

from copper_async import CopperClient, OpportunityFilter
from copper_async.singer._catalog import KEY_PROPERTIES, REPLICATION_KEY, STREAM, select_entry
from copper_async.singer._config import TapConfig
from copper_async.singer._messages import MessageWriter
from copper_async.singer._schema import record_converter
from copper_async.singer._state import read_bookmark, with_bookmark
from copper_async.sync._bookmark import choose_mode, incremental_filter, next_bookmark

__all__ = ["TapResult", "run_tap"]

logger = logging.getLogger(__name__)


@attrs.frozen
class TapResult:
    """What one run emitted."""

    selected: bool
    mode: str
    records: int = 0
    requests: int = 0
    state: dict[str, Any] | None = None


async def run_tap(
    config: TapConfig,
    out: BinaryIO,
    *,
    state: Mapping[str, Any] | None = None,
    catalog: Mapping[str, Any] | None = None,
    now: Callable[[], float] = time.time,
) -> TapResult:
    """Sync the ``opportunities`` stream to ``out`` as Singer messages.

    Every check (catalog, state) happens before the first request. ``now``
    is this machine's clock, which dates the run's start for the bookmark.
    """
    entry = select_entry(catalog)
    if entry is None:
        logger.info("stream %r is not selected: nothing to sync", STREAM)
        return TapResult(selected=False, mode="none")
    previous = read_bookmark(state) if entry.incremental else None
    mode = choose_mode(previous, full=not entry.incremental)
    if mode == "incremental":
        query = incremental_filter(config.filter, previous)
    else:
        query = incremental_filter(config.filter, config.start_date, overlap=0)
    client = _client(config)  # a bad base_url fails here, before any output
    writer = MessageWriter(out, STREAM)
    writer.schema(entry.schema, KEY_PROPERTIES, [REPLICATION_KEY])
    started = int(now())
    requests = 0
    async with client:
        if query is None:
            logger.info("the filter's maximum_modified_date is before the bookmark: nothing new")
        else:
            logger.info("%s read of %r", mode, STREAM)
            convert = record_converter(entry.schema)
            requests = await _read(client, config, query, entry.dropped, convert, writer)
    final = dict(state or {})
    if entry.incremental:
        final = with_bookmark(state, next_bookmark(started, previous))
    if final:
        writer.state(final)
    logger.info("%d records in %d requests", writer.records, requests)
    return TapResult(True, mode, writer.records, requests, final or None)


def _client(config: TapConfig) -> CopperClient:
    extra: dict[str, Any] = {} if config.base_url is None else {"base_url": config.base_url}
    return CopperClient(
        access_token=config.access_token,
        user_email=config.user_email,
        rate_limit=config.rate_limit,
        **extra,
    )


async def _read(
    client: CopperClient,
    config: TapConfig,
    query: OpportunityFilter,
    dropped: frozenset[str],
    convert: Callable[[dict[str, Any]], dict[str, Any]],
    writer: MessageWriter,
) -> int:
    """Write every record ``query`` matches, through the cap-splitting search;
    returns the requests made."""
    options = config.options
    search = client.opportunities.search(
        query,
        raw=True,
        page_size=options.page_size,
        concurrency=options.concurrency,
        cap=options.cap,
    )
    async for page in search.pages():
        records = page.records
        if dropped:
            records = [{k: v for k, v in r.items() if k not in dropped} for r in records]
        writer.records_page(convert(record) for record in records)
    return search.stats.requests
