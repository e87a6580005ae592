"""The mirror's (and the Singer tap's) one point of contact with the search
engine's internals.

Everything else in :mod:`copper_async.sync` and :mod:`copper_async.singer`
uses the public surface; the planner snapshot and restore live here, so that
a change of the engine's internals is adapted in this one module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from copper_async._clock import LoopClock
from copper_async._engine import Search
from copper_async._options import SearchOptions
from copper_async._planner import Restored, WindowPlanner
from copper_async._resources import OPPORTUNITIES
from copper_async._stats import SearchStats
from copper_async.client import CopperClient
from copper_async.filters import OpportunityFilter

__all__ = [
    "RawSearch",
    "new_search",
    "restart_snapshot",
    "restore_planner",
    "resumed_search",
    "snapshot",
]

RawSearch = Search[dict[str, Any]]


def new_search(client: CopperClient, query: OpportunityFilter, opts: SearchOptions) -> RawSearch:
    return client.opportunities.search(query, raw=True, **attrs.asdict(opts, recurse=False))


def restore_planner(
    state: Mapping[str, Any], opts: SearchOptions, delivered: Iterable[Mapping[str, Any]]
) -> Restored:
    """The planner of an unfinished run, told which records the store already holds;
    it counts into a fresh stats object that the resumed search then owns (on the
    search's own clock, so that its elapsed time runs)."""
    stats = SearchStats(clock=LoopClock())
    return WindowPlanner.restore(
        state, max_passes=opts.max_passes, delivered=delivered, stats=stats
    )


def resumed_search(
    client: CopperClient, query: OpportunityFilter, opts: SearchOptions, restored: Restored
) -> RawSearch:
    stats = restored.planner.stats
    assert isinstance(stats, SearchStats)
    return Search(
        client,
        query,
        resource=OPPORTUNITIES,
        options=opts,
        planner=restored.planner,
        planner_events=restored.events,
        stats=stats,
    )


def snapshot(search: RawSearch) -> dict[str, Any]:
    """The planner's state at a commit point; the records are in the store."""
    return search.planner.snapshot(include_seen=False)


def restart_snapshot(search: RawSearch) -> dict[str, Any]:
    """The planner's state at a commit point for a caller that kept no records
    (the Singer tap): windows not finished will be read from their start."""
    return search.planner.snapshot(restart_open=True)
