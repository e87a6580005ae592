"""The sync's ``opportunities_named`` view, in SQLite and PostgreSQL.

Each view is checked against the export's own naming
(:class:`~copper_async._custom_fields.CustomFieldNames`) applied to the
records in Python.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

import attrs
import psycopg
import pytest

from copper_async._custom_fields import CustomFieldNames, structure_definitions
from copper_async.exceptions import StoreBusyError
from copper_async.filters import OpportunityFilter
from copper_async.sync import open_store, run_sync
from copper_async.sync._bookmark import job_identity
from copper_async.testing._definitions import DEFINITIONS
from tests.sync_support import comparable, named_rows_expected, world

pytestmark = pytest.mark.asyncio

NAMES = CustomFieldNames.for_records(structure_definitions(list(DEFINITIONS)))


def read_view(db: str, columns: list[str]) -> dict[int, dict[str, Any]]:
    select = f"SELECT id, {', '.join(columns)} FROM opportunities_named"
    if db.startswith("postgresql://"):
        with psycopg.connect(db) as connection:
            rows = connection.execute(select).fetchall()
    else:
        with sqlite3.connect(db) as connection:
            rows = connection.execute(select).fetchall()
    return {row[0]: dict(zip(columns, map(comparable, row[1:]), strict=True)) for row in rows}


async def test_the_named_view_has_a_column_per_field_and_options_by_name(db: str) -> None:
    async with world(1_500) as w:
        plain = await run_sync(w.client, open_store(db), clock=w.clock)
        assert w.server.stats["requests_by_status"] == {200: plain.requests}
        w.server.reset_stats()
        named = await run_sync(w.client, open_store(db), clock=w.clock, custom_field_names=True)
        # One more answer than search requests: the definitions.
        assert w.server.stats["requests_by_status"] == {200: named.requests + 1}
        columns = list(NAMES.columns.values())
        assert columns == [
            "cf_account_notes", "cf_region", "cf_renewal_date", "cf_referral", "cf_products",
        ]  # fmt: skip
        view = read_view(db, columns)
        expected = named_rows_expected(w.truth(), NAMES)
        assert [(view[i], expected[i]) for i in expected if view[i] != expected[i]][:2] == []
        assert view == expected
        regions = {row["cf_region"] for row in view.values()}
        assert regions
        assert regions <= {
            "North",
            "South",
            "East",
            "West",
            "Central",
            "EMEA",
            "APAC",
            "LATAM",
            None,
        }
        assert any(
            isinstance(row["cf_products"], list) and row["cf_products"] for row in view.values()
        )


async def test_a_busy_database_is_refused_before_the_definitions_are_asked(db: str) -> None:
    async with world(300) as w:
        holder = open_store(db)
        job, key = job_identity(
            OpportunityFilter(), base_url=w.client.base_url, user_email=w.client.user_email
        )
        await holder.open(job, key)
        try:
            with pytest.raises(StoreBusyError, match="another sync"):
                await run_sync(w.client, open_store(db), clock=w.clock, custom_field_names=True)
        finally:
            await holder.close()
        assert w.server.stats["requests_by_status"] == {}  # the definitions' GET included


def m_d_yyyy(seconds: int) -> str:
    day = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return f"{day.month}/{day.day}/{day.year}"


async def test_dates_sent_as_text_read_as_the_same_day(db: str) -> None:
    """Copper's docs give custom dates as M/D/YYYY, its example as seconds: a
    server sending text gives PostgreSQL's view the same (midnight) seconds;
    SQLite's view keeps the value as sent."""
    async with world(400) as w:
        w.server.options = attrs.evolve(w.server.options, custom_dates="text")
        await run_sync(w.client, open_store(db), clock=w.clock, custom_field_names=True)
        seconds = {
            i: row["cf_renewal_date"] for i, row in named_rows_expected(w.truth(), NAMES).items()
        }
    view = {i: row["cf_renewal_date"] for i, row in read_view(db, ["cf_renewal_date"]).items()}
    assert sum(value is not None for value in seconds.values()) > 100
    if db.startswith("postgresql://"):
        assert view == seconds
    else:
        as_text = {i: None if v is None else m_d_yyyy(v) for i, v in seconds.items()}
        assert view == as_text


def tricky_names() -> CustomFieldNames:
    definitions = [
        {"id": 1, "name": 'Bob\'s "Region"; DROP TABLE x', "data_type": "Dropdown",
         "available_on": ["opportunity"],
         "options": [{"id": 1, "name": "O'Brien \"quoted\""}, {"id": 2, "name": "--"}]},
        {"id": 2, "name": "Bob's Region", "data_type": "MultiSelect",
         "available_on": ["opportunity"], "options": [{"id": 3, "name": "a'b"}]},
        {"id": 3, "name": "Flag", "data_type": "Checkbox", "available_on": ["opportunity"]},
        {"id": 4, "name": "Renewal", "data_type": "Date", "available_on": ["opportunity"]},
    ]  # fmt: skip
    return CustomFieldNames.for_records(structure_definitions(definitions))


async def test_names_with_quotes_and_values_of_other_types_are_safe(db: str) -> None:
    names = tricky_names()
    columns = ["cf_bob_s_region_drop_table_x", "cf_bob_s_region", "cf_flag", "cf_renewal"]
    assert list(names.columns.values()) == columns
    records: dict[int, dict[str, Any]] = {
        1: {"id": 1, "custom_fields": [
            {"custom_field_definition_id": 1, "value": 1},
            {"custom_field_definition_id": 2, "value": [3, 99, "x"]},
            {"custom_field_definition_id": 3, "value": True},
            {"custom_field_definition_id": 4, "value": 1515744000}]},
        2: {"id": 2, "custom_fields": [
            {"custom_field_definition_id": 1, "value": 2},
            {"custom_field_definition_id": 2, "value": None},
            {"custom_field_definition_id": 3, "value": "yes"},
            {"custom_field_definition_id": 4, "value": "1/12/2018"}]},
        3: {"id": 3, "custom_fields": [{"custom_field_definition_id": 1, "value": 7},
            {"custom_field_definition_id": 4, "value": "2/30/2020"}]},
        4: {"id": 4, "custom_fields": None},
        5: {"id": 5, "custom_fields": [{"custom_field_definition_id": 1, "value": True},
            {"custom_field_definition_id": 4, "value": "13/1/2020"}]},
        # A field twice: the last entry counts, as in the CSV export.
        6: {"id": 6, "custom_fields": [{"custom_field_definition_id": 1, "value": 1},
            {"custom_field_definition_id": 3, "value": False},
            {"custom_field_definition_id": 1, "value": 2}]},
    }  # fmt: skip
    store = open_store(db)
    job, key = job_identity(OpportunityFilter(), base_url="http://x", user_email="e@x")
    try:
        await store.open(job, key)
        await store.upsert_page(1, list(records.values()), 1_700_000_000)
        await store.name_custom_fields(names)
        await store.name_custom_fields(names)  # recreated, not refused
    finally:
        await store.close()
    view = read_view(db, list(names.columns.values()))
    expected = named_rows_expected(records, names)
    if not db.startswith("postgresql://"):
        expected[1]["cf_flag"] = 1  # SQLite has no boolean: JSON true reads as 1
        expected[2]["cf_flag"] = "yes"
        expected[5]["cf_bob_s_region_drop_table_x"] = 1
    else:
        expected[2]["cf_flag"] = None  # a boolean column: a string is no value
        expected[3]["cf_bob_s_region_drop_table_x"] = "7"  # a text column
        expected[5]["cf_bob_s_region_drop_table_x"] = "true"
        # Dates are Unix seconds: Copper's M/D/YYYY as midnight UTC, no such day NULL.
        expected[2]["cf_renewal"] = 1515715200
        expected[3]["cf_renewal"] = expected[5]["cf_renewal"] = None
    assert view == expected
    assert view[1]["cf_bob_s_region_drop_table_x"] == 'O\'Brien "quoted"'
    assert view[1]["cf_bob_s_region"] == ["a'b", 99, "x"]
    assert view[6]["cf_bob_s_region_drop_table_x"] == "--"
