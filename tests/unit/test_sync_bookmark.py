"""The pure bookmark rules of copper_async.sync._bookmark."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copper_async.filters import OpportunityFilter
from copper_async.sync._bookmark import (
    OVERLAP,
    ClockCheck,
    NextBookmark,
    bookmark_after,
    choose_mode,
    incremental_filter,
    job_identity,
    next_bookmark,
    read_from,
    replaces,
    resumes,
)


def test_the_overlap_covers_the_engines_clock_skew_allowance() -> None:
    from copper_async._engine import _CLOCK_SKEW_ALLOWANCE

    assert OVERLAP >= _CLOCK_SKEW_ALLOWANCE


def test_no_bookmark_reads_everything() -> None:
    assert read_from(None) is None
    base = OpportunityFilter(statuses=("Open",))
    assert incremental_filter(base, None) is base


def test_a_read_starts_at_the_bookmark_minus_the_overlap() -> None:
    assert read_from(10_000) == 10_000 - OVERLAP
    assert read_from(10_000, overlap=60) == 9_940
    assert read_from(5, overlap=60) == 0
    narrowed = incremental_filter(OpportunityFilter(statuses=("Open",)), 10_000)
    assert narrowed is not None
    assert narrowed.minimum_modified_date == 10_000 - OVERLAP
    assert narrowed.statuses == ("Open",)


def test_the_users_own_modified_bounds_are_kept() -> None:
    later = OpportunityFilter(minimum_modified_date=50_000)
    assert incremental_filter(later, 10_000) == later
    bounded = OpportunityFilter(maximum_modified_date=20_000)
    narrowed = incremental_filter(bounded, 10_000)
    assert narrowed is not None
    assert (narrowed.minimum_modified_date, narrowed.maximum_modified_date) == (9_700, 20_000)
    assert incremental_filter(OpportunityFilter(maximum_modified_date=9_000), 10_000) is None


@given(st.integers(0, 2**33), st.one_of(st.none(), st.integers(0, 2**33)))
def test_the_bookmark_never_moves_back(started: int, previous: int | None) -> None:
    moved = next_bookmark(started, previous)
    if previous is not None:
        assert moved >= previous
    if previous is None or previous <= started - OVERLAP:
        assert moved == max(started - OVERLAP, 0)
        assert read_from(moved) == max(started - 2 * OVERLAP, 0)


def test_older_records_never_replace_newer_rows() -> None:
    assert replaces(None, 5)
    assert replaces(5, None)
    assert replaces(5, 5)  # the same second can hold a later edit
    assert replaces(5, 6)
    assert not replaces(6, 5)


def test_modes() -> None:
    assert choose_mode(None) == "full"
    assert choose_mode(100) == "incremental"
    assert choose_mode(100, full=True) == "full"
    assert choose_mode(None, reconcile=True) == "reconcile"
    assert choose_mode(100, full=True, reconcile=True) == "reconcile"
    assert resumes("full")
    assert resumes("incremental")
    assert resumes("reconcile")
    assert resumes("full", full=True)
    assert not resumes("incremental", full=True)
    assert resumes("reconcile", reconcile=True)
    assert not resumes("full", reconcile=True)


def test_the_job_names_filter_server_and_account_but_never_the_email() -> None:
    base = OpportunityFilter(statuses=("Open",))
    job, key = job_identity(base, base_url="http://x/developer_api/v1/", user_email="a@b.c")
    assert job == {
        "filter": {"statuses": ["Open"]},
        "base_url": "http://x/developer_api/v1",
        "account": hashlib.sha256(b"a@b.c").hexdigest(),
    }
    assert "a@b.c" not in repr(job)
    same = job_identity(base, base_url="http://x/developer_api/v1", user_email="a@b.c")[1]
    other = job_identity(base, base_url="http://x/developer_api/v1", user_email="z@b.c")[1]
    other_filter = job_identity(
        OpportunityFilter(), base_url="http://x/developer_api/v1", user_email="a@b.c"
    )[1]
    assert key == same
    assert len({key, other, other_filter}) == 3


@pytest.mark.parametrize("module", ["psycopg", "click"])
def test_the_rules_import_no_database_or_cli(module: str) -> None:
    import subprocess
    import sys

    code = (
        f"import sys, copper_async.sync._bookmark; sys.exit(1 if {module!r} in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_rules_module_imports_only_pure_modules() -> None:
    import ast
    import inspect

    from copper_async.sync import _bookmark

    tree = ast.parse(inspect.getsource(_bookmark))
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported == {
        "__future__",
        "hashlib",
        "math",
        "typing",
        "attrs",
        "orjson",
        "copper_async.filters",
    }


def test_a_clock_check_keeps_the_largest_lower_bound_of_coppers_offset() -> None:
    check = ClockCheck()
    assert check.start(1_000) == 1_000  # nothing answered yet
    check.note(None, 1_000)  # an answer without a Date
    assert check.start(1_000) == 1_000
    check.note(400.0, 1_000)  # Copper's Date 400, this clock 1,000: 600 s fast at least
    check.note(500.0, 1_010)  # a later answer: 510 s at least
    assert check.offset == -510
    assert check.start(1_000) == 490
    assert check.ahead(900, 1_020) == 390  # Copper's now is 510
    assert check.ahead(400, 1_020) == 0


def test_a_clock_behind_coppers_keeps_its_own_start() -> None:
    check = ClockCheck()
    check.note(2_000.0, 1_000)
    assert check.start(1_000) == 1_000


def test_the_bookmark_after_a_read_says_what_the_clocks_showed() -> None:
    check = ClockCheck()
    check.note(10_000.0, 10_090)  # 90 s fast: past the rounding, worth saying
    after = bookmark_after(10_050, 20_000, check, 10_100)
    assert after.bookmark == 10_050 - 90 - OVERLAP  # the old bookmark lay ahead: no bound
    assert [w.split(" ")[1:4] for w in after.warnings] == [
        ["bookmark", "was", "9990s"],
        ["machine's", "clock", "runs"],
    ]
    quiet = ClockCheck()
    quiet.note(10_000.0, 10_001)  # a Date's rounding
    assert bookmark_after(10_000, 9_000, quiet, 10_001) == NextBookmark(10_000 - 1 - OVERLAP)
