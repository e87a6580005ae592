"""The engine against a server whose real cap is below the client's ``cap``.

Off a page boundary, the page at the server's cap comes back short, as a
window's last page would. On one, with the total capped there too, a window
holds just what its total says, as a window of exactly that size would.
Every record still comes once, and the observed cap is named in a warning."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from copper_async.testing import Dataset, FakeServerOptions
from copper_async.testing._options import TotalMode
from copper_async.testing._server import PastCap
from tests.fakes import generated_records
from tests.integration.test_search import HarnessFactory, collect, harness_factory

__all__ = ["harness_factory"]  # the fixture, shared with the module it comes from

pytestmark = pytest.mark.asyncio

PAGE = 50
RECORDS = 1_600


@pytest.fixture(scope="module")
def dataset_records() -> list[dict[str, Any]]:
    return generated_records(RECORDS, seed=5)


def cap_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "caps a query's results at" in r.getMessage()
    ]


# Off a page boundary the short page shows the cap whatever the total says; on
# one, a total capped there is all that can show it (other totals are covered
# by the reads past a page boundary in test_search.py).
LOWER_CAPS = [
    *(
        (server_cap, client_cap, split_field, total_mode)
        for server_cap, client_cap, split_field in [
            (493, 500, "date_modified"),
            (293, 500, "date_created"),
            (493, 1_000, "date_created"),
        ]
        for total_mode in ("exact", "overcount", "absent")
    ),
    (500, 1_000, "date_created", "capped"),
    (400, 500, "date_modified", "capped"),
    (100, 1_000, "date_created", "capped"),
]


@pytest.mark.parametrize("past_cap", ["empty", "error"])
@pytest.mark.parametrize(("server_cap", "client_cap", "split_field", "total_mode"), LOWER_CAPS)
async def test_a_server_cap_below_the_clients_loses_no_record(
    harness_factory: HarnessFactory,
    dataset_records: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    total_mode: TotalMode,
    past_cap: PastCap,
    server_cap: int,
    client_cap: int,
    split_field: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="copper_async")
    harness = await harness_factory(
        Dataset.from_records(dataset_records),
        FakeServerOptions(cap=server_cap, total_mode=total_mode, past_cap=past_cap),
    )
    search = harness.client.opportunities.search(
        page_size=PAGE, cap=client_cap, raw=True, split_field=split_field
    )
    ids = [record["id"] for record in await collect(search)]
    assert len(ids) == len(set(ids)), "a record came twice"
    assert sorted(ids) == sorted(r["id"] for r in dataset_records), "records were lost"
    assert search.stats.windows_continued >= 1
    assert cap_warnings(caplog) == [
        f"the API caps a query's results at {server_cap} records, below the configured "
        f"cap of {client_cap}: windows are read on past it"
    ]


@pytest.mark.parametrize("records", [PAGE * 8, PAGE * 8 + 1])
async def test_a_total_of_whole_pages_costs_one_request_to_rule_out_a_lower_cap(
    harness_factory: HarnessFactory,
    dataset_records: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    records: int,
) -> None:
    """An API that serves every record: a search of whole pages asks once
    more (the records at its last value), one of any other size does not,
    and no warning is given."""
    caplog.set_level(logging.WARNING, logger="copper_async")
    harness = await harness_factory(
        Dataset.from_records(dataset_records[:records]), FakeServerOptions(total_mode="exact")
    )
    search = harness.client.opportunities.search(page_size=PAGE, cap=1_000, raw=True)
    ids = [record["id"] for record in await collect(search)]
    assert sorted(ids) == sorted(r["id"] for r in dataset_records[:records])
    pages = -(-records // PAGE)
    assert search.stats.requests == pages + (records % PAGE == 0)
    assert cap_warnings(caplog) == []
    # The records of the last second, asked for again: no duplicate the server sent.
    last = max(r["date_created"] for r in dataset_records[:records])
    again = sum(r["date_created"] == last for r in dataset_records[:records])
    assert search.stats.duplicates_dropped == 0
    assert search.stats.overlaps_dropped == (again if records % PAGE == 0 else 0)


async def test_a_larger_total_seen_before_rules_out_a_capped_total(
    harness_factory: HarnessFactory,
    dataset_records: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past the client's cap the search splits: the first total (above the
    cap) shows totals are not capped, so windows of whole pages are not read on."""
    caplog.set_level(logging.WARNING, logger="copper_async")
    harness = await harness_factory(
        Dataset.from_records(dataset_records), FakeServerOptions(total_mode="exact")
    )
    search = harness.client.opportunities.search(page_size=PAGE, cap=500, raw=True)
    ids = [record["id"] for record in await collect(search)]
    assert sorted(ids) == sorted(r["id"] for r in dataset_records)
    assert search.stats.windows_continued == 0
    assert cap_warnings(caplog) == []


async def test_a_second_past_a_lower_cap_is_a_warned_and_counted_mismatch(
    harness_factory: HarnessFactory,
    dataset_records: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Records the API cannot serve, in one second on every split field, that
    no total reveals: the window may miss records, so it counts in
    ``count_mismatches`` and is a warning, not routine INFO."""
    caplog.set_level(logging.INFO, logger="copper_async")
    second = dataset_records[0]["date_created"]
    hot = [{**r, "date_created": second, "date_modified": second} for r in dataset_records[:250]]
    harness = await harness_factory(
        Dataset.from_records(hot), FakeServerOptions(cap=100, total_mode="absent")
    )
    search = harness.client.opportunities.search(page_size=PAGE, cap=1_000, raw=True)
    ids = [record["id"] for record in await collect(search)]
    assert len(ids) == len(set(ids)) == 100  # all the API serves of that second
    assert search.stats.count_mismatches == 1
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("in one second" in message for message in warned), warned
