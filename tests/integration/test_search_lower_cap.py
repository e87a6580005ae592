"""The engine against a server whose real cap is below the client's ``cap``
and not a whole number of pages: the page at the server's cap comes back
short, as a window's last page would. Every record still comes once, and the
observed cap is named in a warning."""

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


# A total capped at the server's own cap is left out: a window of exactly that
# many records looks the same, so nothing shows more records without asking.
@pytest.mark.parametrize("total_mode", ["exact", "overcount", "absent"])
@pytest.mark.parametrize("past_cap", ["empty", "error"])
@pytest.mark.parametrize(
    ("server_cap", "client_cap", "split_field"),
    [(493, 500, "date_modified"), (293, 500, "date_created"), (493, 1_000, "date_created")],
)
async def test_a_server_cap_off_a_page_boundary_loses_no_record(
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
