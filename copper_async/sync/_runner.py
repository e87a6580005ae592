"""One sync run: read what changed (or everything), upsert it page by page.

See :mod:`copper_async.sync._bookmark` for when the bookmark moves and
:mod:`copper_async.sync._store` for what commits together.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, Unpack

import attrs

from copper_async._clock import Clock, LoopClock
from copper_async._custom_fields import CustomFieldNames
from copper_async._engine import SearchStats, check_no_sort, checked_filter
from copper_async._options import SearchKwargs, SearchOptions
from copper_async.client import CopperClient
from copper_async.exceptions import CheckpointError, InvalidOptionError
from copper_async.filters import OpportunityFilter
from copper_async.sync import _engine_adapter as engine
from copper_async.sync._bookmark import (
    OVERLAP,
    ClockCheck,
    Mode,
    bookmark_after,
    choose_mode,
    job_identity,
    modified_since,
    read_from,
    resumes,
)
from copper_async.sync._store import JobState, RunProgress, Store

__all__ = ["SyncResult", "run_sync"]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[SearchStats, int], None]


@attrs.frozen
class SyncResult:
    """What one run did (a resumed run's counts include its earlier attempts)."""

    mode: Mode
    resumed: bool
    inserted: int
    updated: int
    unchanged: int
    deleted: int
    requests: int
    bookmark: int
    read_from: int | None
    stats: dict[str, Any]

    @property
    def records(self) -> int:
        return self.inserted + self.updated + self.unchanged


async def run_sync(
    client: CopperClient,
    store: Store,
    filter: OpportunityFilter | None = None,
    *,
    full: bool = False,
    reconcile: bool = False,
    clock: Clock | None = None,
    progress: ProgressCallback | None = None,
    custom_field_names: bool = False,
    **options: Unpack[SearchKwargs],
) -> SyncResult:
    """Bring ``store`` up to date with the records ``filter`` matches.

    The first run (or ``full``) reads everything; later ones only what was
    modified since the bookmark; ``reconcile`` reads everything and marks the
    rows it did not see as deleted. A run that stopped is continued by the
    next one (unless that asks for another kind of read). The store is
    closed at the end, whatever happens. Arguments it cannot use (a filter
    with a sort, a path in place of a store) are refused before the
    database is touched.

    ``options`` are the search's (:class:`~copper_async._options.SearchOptions`)
    but ``end_at``: each run bounds ``date_created`` by its own start.
    ``custom_field_names`` reads Copper's custom field definitions first (one
    more request) and, once the run is done, recreates the
    ``opportunities_named`` view: a column per custom field, options by name.
    """
    _check_arguments(client, store, filter)
    flags = {"full": full, "reconcile": reconcile, "custom_field_names": custom_field_names}
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise InvalidOptionError(name, f"must be True or False, not {flag!r}")
    if "end_at" in options:
        raise InvalidOptionError("end_at", "the sync bounds each run by its own start")
    search_options = SearchOptions(**options)
    # The run's wall time (its start, synced_at, deleted_at) is the clock's.
    now = (clock if clock is not None else LoopClock()).time
    query = filter if filter is not None else OpportunityFilter()
    job, key = job_identity(query, base_url=client.base_url, user_email=client.user_email)
    try:
        # The database first: one that is unusable or busy is refused before any request.
        state = await store.open(job, key)
        names = None
        if custom_field_names:  # before the run begins: a refusal here records nothing
            names = CustomFieldNames.for_records(await client.custom_field_definitions())
        run, resumed = await _start(store, state, full=full, reconcile=reconcile, now=now)
        # Records created after the run began are the next run's (their
        # date_modified is later than this run's start).
        opts = attrs.evolve(search_options, end_at=run.started + OVERLAP)
        clock_check = ClockCheck()
        stats = await _read(client, store, query, opts, run, resumed, now, progress, clock_check)
        result = await _finish(store, run, state, resumed, stats, now, clock_check)
        if names is not None:
            await store.name_custom_fields(names)
    finally:
        await store.close()
    return result


def _check_arguments(client: object, store: object, filter: object) -> None:
    """Refuse what the run cannot use before the database is created or touched
    (a sort found by the search itself would come after a run was recorded)."""
    if not isinstance(client, CopperClient):
        raise InvalidOptionError("client", f"must be a CopperClient, not {type(client).__name__}")
    if isinstance(store, str | os.PathLike):
        raise InvalidOptionError("store", "must be a store: open_store(path_or_url) makes one")
    checked_filter(filter, OpportunityFilter)
    check_no_sort(filter, "a sync")


async def _finish(
    store: Store,
    run: RunProgress,
    state: JobState,
    resumed: bool,
    stats: dict[str, Any],
    now: Callable[[], float],
    clock: ClockCheck,
) -> SyncResult:
    """Mark deletions (a reconcile), then move the bookmark: the run is complete."""
    deleted = 0
    if run.mode == "reconcile":
        deleted = await store.mark_deletions(run.run_id, int(now()))
    after = bookmark_after(run.started, state.bookmark, clock, now())
    for warning in after.warnings:
        logger.warning("%s", warning)
    bookmark = after.bookmark
    result = SyncResult(
        mode=run.mode,
        resumed=resumed,
        inserted=run.inserted,
        updated=run.updated,
        unchanged=run.unchanged,
        deleted=deleted,
        requests=run.requests,
        bookmark=bookmark,
        read_from=run.read_from,
        stats=stats,
    )
    summary = attrs.asdict(result)
    summary.pop("stats")
    summary["finished"] = int(now())
    await store.finish_run(run, bookmark, summary)
    return result


async def _start(
    store: Store, state: JobState, *, full: bool, reconcile: bool, now: Callable[[], float]
) -> tuple[RunProgress, bool]:
    """Continue the unfinished run, or begin a new one (recorded before any request)."""
    run = state.unfinished
    if run is not None and resumes(run.mode, full=full, reconcile=reconcile):
        logger.info("continuing the unfinished %s run %d", run.mode, run.run_id)
        return run, True
    if run is not None:
        logger.info(
            "dropping the unfinished %s run %d: %s asked",
            run.mode,
            run.run_id,
            "a reconcile" if reconcile else "a full read",
        )
    mode = choose_mode(state.bookmark, full=full, reconcile=reconcile)
    start = read_from(state.bookmark) if mode == "incremental" else None
    # Past a dropped run's id too: rows it marked seen must not count as this run's.
    run_id = max(state.runs, run.run_id if run is not None else 0) + 1
    run = RunProgress(run_id=run_id, mode=mode, started=int(now()), read_from=start)
    await store.begin_run(run)
    return run, False


async def _read(
    client: CopperClient,
    store: Store,
    base: OpportunityFilter,
    opts: SearchOptions,
    run: RunProgress,
    resumed: bool,
    now: Callable[[], float],
    progress: ProgressCallback | None,
    clock: ClockCheck,
) -> dict[str, Any]:
    """Read the run's records into the store; the run's progress is updated in
    place, and ``clock`` learns Copper's clock from the answers."""
    query = modified_since(base, run.read_from)
    if query is None:  # the filter's own maximum_modified_date leaves nothing to read
        return {}
    search = None
    if resumed and run.planner is not None:
        snapshot = run.planner
        try:
            restored = await store.restore(
                run.run_id, lambda held: engine.restore_planner(snapshot, opts, held)
            )
        except CheckpointError as error:
            # Another release's snapshot format (or damaged): its rows stay, and
            # count as this run's; reading from the start is safe (upserts).
            logger.warning("cannot continue run %d (%s): reading from the start", run.run_id, error)
        else:
            search = engine.resumed_search(client, query, opts, restored)
    if search is None:
        search = engine.new_search(client, query, opts)
    earlier_requests = run.requests
    written = run.inserted + run.updated + run.unchanged
    pages = search.pages()
    try:
        async for page in pages:
            clock.note(search.stats.server_date, now())
            run.requests = earlier_requests + search.stats.requests
            commit = None
            if search.at_commit_point:  # the page's rows commit with this progress
                run.planner = engine.snapshot(search)
                commit = run
            counts = await store.upsert_page(run.run_id, page.records, int(now()), commit)
            run.inserted += counts.inserted
            run.updated += counts.updated
            run.unchanged += counts.unchanged
            written += len(page.records)
            if progress is not None:
                progress(search.stats, written)
    finally:
        await pages.aclose()
    clock.note(search.stats.server_date, now())  # a read of no records answered too
    run.requests = earlier_requests + search.stats.requests
    return search.stats.as_dict()
