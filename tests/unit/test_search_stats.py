from __future__ import annotations

import attrs
import pytest

from copper_async._planner import PlannerStats
from copper_async._stats import SearchStats, _merge_rules, merge_stats


def test_search_stats_are_planner_stats_plus_the_page_counters() -> None:
    """One object: every planner counter is a field of the search's stats."""
    assert issubclass(SearchStats, PlannerStats)
    planner_fields = set(attrs.fields_dict(PlannerStats))
    search_fields = set(attrs.fields_dict(SearchStats))
    assert planner_fields < search_fields
    assert {"requests", "pages", "records", "bytes", "retries", "rate_limited"} <= search_fields
    assert "_clock" not in SearchStats().as_dict()


def test_a_counter_without_a_merge_rule_cannot_be_declared() -> None:
    with pytest.raises(TypeError, match="without a merge rule: pages_skipped"):

        @attrs.define(field_transformer=_merge_rules)
        class Extended(SearchStats):
            pages_skipped: int = 0


def test_only_the_page_counters_and_time_add_up_over_runs() -> None:
    exported = set(SearchStats().as_dict())
    sevens = dict.fromkeys(exported, 7)
    merged = merge_stats(sevens, sevens)
    summed = {name for name in exported if merged[name] == 14}
    assert summed == {"requests", "pages", "records", "bytes", "retries", "rate_limited", "elapsed"}


def test_merging_adds_counts_keeps_the_first_total_and_the_planners_latest() -> None:
    earlier = SearchStats(requests=10, records=400, windows_done=3, total_hint=5_000).as_dict()
    latest = SearchStats(requests=4, records=100, windows_done=5, total_hint=900).as_dict()
    merged = merge_stats(earlier, latest)
    assert merged["requests"] == 14
    assert merged["records"] == 500
    # The planner restores its counters from its snapshot: the latest run's cover all.
    assert merged["windows_done"] == 5
    # The first run's total covers the whole search; a later one's only a window.
    assert merged["total_hint"] == 5_000
    assert merge_stats({"total_hint": None}, latest)["total_hint"] == 900


def test_merging_takes_unknown_or_missing_keys_as_they_are() -> None:
    latest = SearchStats(requests=4).as_dict()
    merged = merge_stats({"retired_counter": 3}, latest)
    assert merged == latest
    assert merge_stats({}, latest) == latest
