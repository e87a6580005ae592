"""``client.custom_field_definitions()`` over loopback, and the CSV export by name."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from copper_async._custom_fields import CustomFieldNames
from copper_async._export import run_export
from copper_async._options import SearchOptions
from copper_async._retry import RetryPolicy
from copper_async.client import CopperClient
from copper_async.exceptions import CheckpointError, InvalidOptionError, RateLimitedError
from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions
from copper_async.testing._definitions import DEFINITIONS
from tests.stopping import stop_after

pytestmark = pytest.mark.asyncio

FAST_RETRY = RetryPolicy(attempts=4, initial_backoff=0.001, max_backoff=0.005, max_retry_after=0.5)


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[FakeCopperServer, CopperClient]]:
    options = FakeServerOptions()
    async with (
        FakeCopperServer(Dataset.generate(300, seed=4), options=options) as server,
        CopperClient(
            access_token=options.access_token,
            user_email=options.user_email,
            base_url=server.url,
            rate_limit=None,
            retry=FAST_RETRY,
        ) as client,
    ):
        yield server, client


async def test_definitions_come_typed_and_match_the_records(
    served: tuple[FakeCopperServer, CopperClient],
) -> None:
    server, client = served
    definitions = await client.custom_field_definitions()
    assert [d.id for d in definitions] == [d["id"] for d in DEFINITIONS]
    names = CustomFieldNames.for_records(definitions)
    used = {
        field["custom_field_definition_id"]
        for record in await client.opportunities.search(raw=True).to_list()
        for field in record["custom_fields"]
    }
    # Every field the records carry is defined for opportunities, and only those.
    assert used == set(names.columns)
    assert client.stats.responses == {200: 3}  # definitions, then two pages
    assert server.stats["requests_by_status"] == {200: 3}


async def test_definitions_wait_for_the_clients_limiter(
    served: tuple[FakeCopperServer, CopperClient],
) -> None:
    server, client = served
    # A 429 elsewhere paused every request longer than this policy waits: not sent.
    client.limiter.pause_until(asyncio.get_running_loop().time() + 60)
    with pytest.raises(RateLimitedError, match="not sent"):
        await client.custom_field_definitions()
    assert server.stats["requests_by_status"] == {}


async def test_definitions_are_retried_like_searches() -> None:
    answers = [web.Response(status=503, text="busy")]
    seen: list[str] = []

    async def definitions(request: web.Request) -> web.Response:
        seen.append(request.method)
        if answers:
            return answers.pop()
        return web.Response(body=orjson.dumps(list(DEFINITIONS)), content_type="application/json")

    app = web.Application()
    app.router.add_get("/developer_api/v1/custom_field_definitions", definitions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with CopperClient(
            access_token="t",
            user_email="u@example.com",
            base_url=f"http://{host}:{port}/developer_api/v1",
            rate_limit=None,
            retry=FAST_RETRY,
        ) as client:
            assert len(await client.custom_field_definitions()) == len(DEFINITIONS)
            assert client.stats.retries == 1
    finally:
        await runner.cleanup()
    assert seen == ["GET", "GET"]


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


async def test_the_csv_export_names_columns_and_options(
    served: tuple[FakeCopperServer, CopperClient], tmp_path: Path
) -> None:
    server, client = served
    names = CustomFieldNames.for_records(await client.custom_field_definitions())
    out = tmp_path / "named.csv"
    result = await run_export(
        client, out=out, format="csv", options=SearchOptions(page_size=100), custom_fields=names
    )
    assert result.records == 300
    written = {int(row["id"]): row for row in rows(out)}
    assert sorted(written) == server.dataset.ids()
    regions = {"North", "South", "East", "West", "Central", "EMEA", "APAC", "LATAM", ""}
    products = {"Hardware", "Software", "Services", "Support"}
    for record_id, row in written.items():
        values = {
            f["custom_field_definition_id"]: f["value"]
            for f in server.dataset.record(record_id)["custom_fields"]
        }
        region = values[5]
        assert row["cf_region"] == ("" if region is None else names.value(5, region))
        assert row["cf_region"] in regions
        chosen = row["cf_products"]
        assert chosen in ("", "[]") or set(chosen.split(";")) <= products
        assert row["cf_referral"] == ("true" if values[7] else "false")
    assert not any(column.startswith("custom_field_") for column in next(iter(written.values())))


async def test_named_and_id_exports_are_different_jobs(
    served: tuple[FakeCopperServer, CopperClient], tmp_path: Path
) -> None:
    _server, client = served
    names = CustomFieldNames.for_records(await client.custom_field_definitions())
    out, checkpoint = tmp_path / "out.csv", tmp_path / "out.checkpoint"
    await run_export(client, out=out, format="csv", checkpoint=checkpoint, custom_fields=names)
    with pytest.raises(CheckpointError, match="custom_field_names"):
        await run_export(client, out=out, format="csv", checkpoint=checkpoint, resume=True)
    with pytest.raises(InvalidOptionError) as raised:
        await run_export(client, out=tmp_path / "x.jsonl", format="jsonl", custom_fields=names)
    assert raised.value.option == "custom_fields"


async def test_a_resume_after_fields_were_renamed_keeps_each_column_to_its_field(
    served: tuple[FakeCopperServer, CopperClient], tmp_path: Path
) -> None:
    """The header is the first run's: a field renamed since, or one renamed to a
    column's name, must not make that column hold another field's values."""
    server, client = served
    definitions = await client.custom_field_definitions()
    names = CustomFieldNames.for_records(definitions)
    out, checkpoint = tmp_path / "out.csv", tmp_path / "out.checkpoint"
    options = SearchOptions(page_size=20)
    stop = stop_after(3, KeyboardInterrupt)

    with pytest.raises(KeyboardInterrupt):
        await run_export(
            client, out=out, format="csv", options=options, checkpoint=checkpoint,
            custom_fields=names, progress=stop,
        )  # fmt: skip
    # Meanwhile, in Copper: "Region" becomes "Territory", "Account Notes" becomes "Region".
    renamed = {5: "Territory", 3: "Region"}
    changed = CustomFieldNames.for_records(
        attrs.evolve(d, name=renamed.get(d.id, d.name)) for d in definitions
    )
    await run_export(
        client, out=out, format="csv", options=options, checkpoint=checkpoint,
        custom_fields=changed, resume=True,
    )  # fmt: skip
    written = rows(out)
    assert sorted(int(row["id"]) for row in written) == server.dataset.ids()
    for row in written:
        values = {
            f["custom_field_definition_id"]: f["value"]
            for f in server.dataset.record(int(row["id"]))["custom_fields"]
        }
        region, notes = values[5], values[3]
        assert row["cf_region"] == ("" if region is None else names.value(5, region)), row["id"]
        assert row["cf_account_notes"] == ("" if notes is None else notes), row["id"]
