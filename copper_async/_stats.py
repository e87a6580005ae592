"""One stats object per search, and how its counters add up over resumed runs.

:class:`SearchStats` *is* a :class:`~copper_async._planner.PlannerStats`: the
planner counts straight into it, and the engine adds the page counters.
Every field declares in its metadata how an export that was resumed merges
it with the earlier runs' value (:func:`merge_stats`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

from copper_async._clock import Clock
from copper_async._planner import PlannerStats

__all__ = ["SearchStats", "merge_stats"]

Merge = Literal["sum", "first", "last"]
_MERGE = "copper_async.merge"
_MERGERS: dict[Merge, Callable[[Any, Any], Any]] = {
    # Counted anew by each run: the runs add up.
    "sum": lambda earlier, latest: (earlier or 0) + (latest or 0),
    # The first run's value describes the whole search (a total of all windows).
    "first": lambda earlier, latest: latest if earlier is None else earlier,
    "last": lambda earlier, latest: latest,
}


def _counter(merge: Merge = "sum") -> Any:
    return attrs.field(default=0, metadata={_MERGE: merge})


def _merge_rules(cls: type, fields: list[attrs.Attribute[Any]]) -> list[attrs.Attribute[Any]]:
    """Every field says how it merges (None: not data); the planner's counters
    come back with its snapshot on resume, so the latest run's value already
    covers the earlier runs."""
    planners = attrs.fields_dict(PlannerStats)
    ruled = [
        field.evolve(metadata={_MERGE: "last", **field.metadata})
        if field.name in planners
        else field
        for field in fields
    ]
    unruled = [field.name for field in ruled if _MERGE not in field.metadata]
    if unruled:
        raise TypeError(f"{cls.__name__} fields without a merge rule: {', '.join(unruled)}")
    return ruled


@attrs.define(field_transformer=_merge_rules)
class SearchStats(PlannerStats):
    """Live counters of one search; read them during the run or after it.

    ``records`` counts records handed to the caller (``records_delivered``
    those the planner released). The planner's counters are its own (see
    :class:`~copper_async._planner.PlannerStats`): ``count_mismatches`` are
    windows whose last reading still disagreed with their count, so records
    may be missing there (each logged as a warning; read them again), while
    readings that were read again count in ``rereads``; ``duplicates_dropped``
    are ids the server sent twice (offsets that shifted, ties ordered anew, an
    edit moving a record within a hot second), while ``overlaps_dropped`` are
    ids the planner itself asked for twice (reading on from a second already
    read, a first look after a peek, a window read again, a resume), both
    dropped; ``overcounted_windows`` had
    a stable total above their records (Copper's total is an upper bound),
    ``shifted_reads`` ids came twice in one reading of a window (its offsets
    moved: it is read again), ``windows_continued`` stopped at a page boundary
    short of their count and were read on, ``pages_refused`` got an error
    status past page 1 (taken as the end), and ``totals_distrusted`` is set
    once a page contradicted its own total.
    """

    requests: int = _counter()
    pages: int = _counter()
    records: int = _counter()
    bytes: int = _counter()
    retries: int = _counter()
    rate_limited: int = _counter()
    total_hint: int | None = attrs.field(default=None, metadata={_MERGE: "first"})
    # The latest ``Date`` an answer carried: the API's clock (Unix seconds).
    server_date: float | None = attrs.field(default=None, metadata={_MERGE: "last"})
    started_at: float | None = attrs.field(default=None, metadata={_MERGE: "last"})
    finished_at: float | None = attrs.field(default=None, metadata={_MERGE: "last"})
    _clock: Clock | None = attrs.field(
        default=None, repr=False, eq=False, alias="clock", metadata={_MERGE: None}
    )

    @property
    def elapsed(self) -> float:
        """Seconds since the first request (up to the end, once finished)."""
        if self.started_at is None:
            return 0.0
        end = self.finished_at
        if end is None:
            end = self._clock.monotonic() if self._clock is not None else self.started_at
        return max(end - self.started_at, 0.0)

    def as_dict(self) -> dict[str, Any]:
        """The counters as plain data (for logs, summaries and checkpoints)."""
        data = attrs.asdict(self, filter=lambda field, _: field.metadata[_MERGE] is not None)
        data["elapsed"] = round(self.elapsed, 3)
        return data


# ``elapsed`` is derived, not a field: each run's time adds up.
_MERGE_RULES: dict[str, Merge] = {
    **{
        field.name: field.metadata[_MERGE]
        for field in attrs.fields(SearchStats)
        if field.metadata[_MERGE] is not None
    },
    "elapsed": "sum",
}


def merge_stats(earlier: Mapping[str, Any], latest: Mapping[str, Any]) -> dict[str, Any]:
    """``latest`` (a :meth:`SearchStats.as_dict`) merged with the runs before it.

    Keys an older checkpoint lacks, or does not know, are taken as they are.
    """
    merged = dict(latest)
    for name, value in earlier.items():
        rule = _MERGE_RULES.get(name)
        if rule is not None and name in latest:
            merged[name] = _MERGERS[rule](value, latest[name])
    return merged
