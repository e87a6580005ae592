"""Dataset.apply_changes: user activity played at a server time, as Copper records it."""

from __future__ import annotations

import random

import pytest

from copper_async.exceptions import InvalidOptionError
from copper_async.testing import Dataset, parse_search_body

NOW = 1_800_000_000


def search(dataset: Dataset, body: dict[str, object]) -> list[int]:
    query, _paging = parse_search_body(body)
    return list(dataset.search(query))


def test_edits_creations_and_deletions_move_date_modified_to_now() -> None:
    dataset = Dataset.generate(2_000, seed=3)
    before = {i: dataset.record(i) for i in dataset.ids()}
    changes = dataset.apply_changes(random.Random(1), now=NOW, edits=30, creates=7, deletes=5)
    assert len(set(changes.edited)) == 30
    assert len(set(changes.deleted)) == 5
    assert not set(changes.edited) & set(changes.deleted)
    assert changes.created == list(range(2_001, 2_008))
    assert len(dataset) == 2_000 - 5 + 7
    for record_id in changes.edited:
        record = dataset.record(record_id)
        assert record["date_modified"] == NOW
        assert record["date_created"] == before[record_id]["date_created"]
        assert record["interaction_count"] == before[record_id]["interaction_count"] + 1
    for record_id in changes.created:
        record = dataset.record(record_id)
        assert record["date_created"] == record["date_modified"] == NOW
    for record_id in changes.deleted:
        with pytest.raises(KeyError):
            dataset.record(record_id)
    untouched = set(before) - set(changes.edited) - set(changes.deleted)
    assert all(dataset.record(i) == before[i] for i in untouched)


def test_the_modified_since_search_finds_exactly_the_changed_records() -> None:
    dataset = Dataset.generate(3_000, seed=4, end=NOW - 100)
    changes = dataset.apply_changes(random.Random(2), now=NOW, edits=40, creates=3, deletes=9)
    body = {"minimum_modified_date": NOW, "sort_by": "date_modified"}
    assert sorted(search(dataset, body)) == sorted(changes.edited + changes.created)
    # The date orders stay sorted: ascending and descending reads agree with a scan.
    for field in ("date_created", "date_modified"):
        ordered = search(dataset, {"sort_by": field, "sort_direction": "asc"})
        values = [dataset.record(i)[field] for i in ordered]
        assert values == sorted(values)
        assert sorted(ordered) == dataset.ids()


def test_changes_in_the_past_are_merged_into_the_order() -> None:
    dataset = Dataset.generate(1_000, seed=5)
    middle = dataset.record(500)["date_modified"]
    dataset.apply_changes(random.Random(3), now=middle, edits=50, creates=5)
    ordered = search(dataset, {"sort_by": "date_modified"})
    values = [dataset.record(i)["date_modified"] for i in ordered]
    assert values == sorted(values)
    assert len(ordered) == len(dataset)


def test_the_same_seed_picks_the_same_records() -> None:
    one, two = Dataset.generate(500, seed=6), Dataset.generate(500, seed=6)
    first = one.apply_changes(random.Random(9), now=NOW, edits=10, creates=2, deletes=3)
    second = two.apply_changes(random.Random(9), now=NOW, edits=10, creates=2, deletes=3)
    assert first == second
    assert [one.record(i) for i in one.ids()] == [two.record(i) for i in two.ids()]


@pytest.mark.parametrize(
    ("edits", "creates", "deletes"), [(-1, 0, 0), (0, True, 0), (0, 0, 1.5), (400, 0, 200)]
)
def test_bad_counts_are_refused(edits: object, creates: object, deletes: object) -> None:
    dataset = Dataset.generate(500, seed=1)
    with pytest.raises(InvalidOptionError):
        dataset.apply_changes(
            random.Random(0),
            now=NOW,
            edits=edits,  # type: ignore[arg-type]
            creates=creates,  # type: ignore[arg-type]
            deletes=deletes,  # type: ignore[arg-type]
        )
    assert len(dataset) == 500


def test_modify_at_now_stamps_now_and_keeps_the_old_play_without_it() -> None:
    dataset = Dataset.generate(100, seed=2)
    dataset.modify(5, random.Random(1), now=NOW)
    assert dataset.record(5)["date_modified"] == NOW
    before = dataset.record(6)["date_modified"]
    dataset.modify(6, random.Random(1))
    assert before < dataset.record(6)["date_modified"] <= before + 30 * 86_400


def test_changes_spread_over_the_played_interval_and_stay_searchable_in_order() -> None:
    dataset = Dataset.generate(3_000, seed=6, end=NOW - 100_000)
    day = 86_400
    changes = dataset.apply_changes(
        random.Random(5), now=NOW, edits=600, creates=100, deletes=0, over=day
    )
    moments = [dataset.record(i)["date_modified"] for i in changes.edited + changes.created]
    assert all(NOW - day < m <= NOW for m in moments)
    assert len(set(moments)) > 500  # spread, not a same-second burst
    for record_id in changes.created:
        record = dataset.record(record_id)
        assert record["date_created"] == record["date_modified"]
    # Half the interval finds exactly the changes stamped in it, in date order.
    found = search(
        dataset,
        {"minimum_modified_date": NOW - day // 2, "sort_by": "date_modified", "page_size": 200},
    )
    expected = {
        i
        for i, m in zip(changes.edited + changes.created, moments, strict=True)
        if m >= NOW - day // 2
    }
    assert set(found) == expected


def test_a_spread_edit_never_stamps_a_record_earlier_than_its_last_edit() -> None:
    """Copper stamps an edit with the time it happens: a record's date_modified
    never goes back, also when a spread batch picks a record edited later than
    the moment drawn for it (an earlier batch, or a recent import)."""
    dataset = Dataset.generate(2_000, seed=7, end=NOW - 100_000)
    day = 86_400
    first = dataset.apply_changes(random.Random(1), now=NOW, edits=1_500)
    before = {i: dataset.record(i)["date_modified"] for i in dataset.ids()}
    second = dataset.apply_changes(random.Random(2), now=NOW + 60, edits=1_500, over=day)
    again = set(first.edited) & set(second.edited)
    assert len(again) > 500  # most records edited twice: the second drew earlier moments
    for record_id in second.edited:
        modified = dataset.record(record_id)["date_modified"]
        assert before[record_id] <= modified <= NOW + 60
    # The order the searches read stays that of the stamps.
    ordered = search(dataset, {"sort_by": "date_modified"})
    values = [dataset.record(i)["date_modified"] for i in ordered]
    assert values == sorted(values)
