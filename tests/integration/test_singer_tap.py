"""The tap against the fake server on loopback: complete past the cap, once,
incremental from its STATE, selection honoured, and restartable after a stop."""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio

from copper_async import InvalidOptionError
from copper_async.singer import TapConfig, discover, run_tap
from copper_async.singer._tap import STATE_EVERY
from copper_async.testing import Changes, Dataset, FakeCopperServer, FakeServerOptions
from tests.singer_support import fake_tap_config

END = 1_700_000_000  # every generated record was created and modified before this
FIRST_RUN = END + 1_000
CAP, PAGE, RECORDS = 1_000, 100, 3_000


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeCopperServer]:
    dataset = Dataset.generate(RECORDS, seed=11, end=END)
    async with FakeCopperServer(dataset, options=FakeServerOptions(cap=CAP)) as running:
        yield running


def config(server: FakeCopperServer, **extra: Any) -> TapConfig:
    settings = fake_tap_config(server, **{"page_size": PAGE, "cap": CAP, **extra})
    return TapConfig.from_mapping(settings, environ={})


def messages(out: io.BytesIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def records(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["record"] for m in lines if m["type"] == "RECORD"]


def states(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["value"] for m in lines if m["type"] == "STATE"]


async def sync(
    server: FakeCopperServer,
    *,
    state: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
    at: int = FIRST_RUN,
    out: io.BytesIO | None = None,
    state_every: int = STATE_EVERY,
    **extra: Any,
) -> list[dict[str, Any]]:
    out = out if out is not None else io.BytesIO()
    server.clock = lambda: at  # one clock: the tap's and Copper's agree
    await run_tap(
        config(server, **extra),
        out,
        state=state,
        catalog=catalog,
        now=lambda: at,
        state_every=state_every,
    )
    return messages(out)


async def first_run_then_changes(
    server: FakeCopperServer, *, at: int, **changes: Any
) -> tuple[dict[str, Any], Changes]:
    """A full run's STATE, then users' changes on the server at ``at``."""
    state = states(await sync(server))[-1]
    server.clock = lambda: at
    return state, server.play_changes(**changes)


@pytest.mark.asyncio
async def test_a_full_run_emits_every_record_once_past_the_cap(server: FakeCopperServer) -> None:
    lines = await sync(server)
    assert lines[0]["type"] == "SCHEMA"
    assert lines[0]["key_properties"] == ["id"]
    assert lines[0]["bookmark_properties"] == ["date_modified"]
    ids = [r["id"] for r in records(lines)]
    assert len(ids) == len(set(ids)) == RECORDS > CAP
    assert set(ids) == set(server.dataset.ids())
    # One STATE, after the last record: the run's start minus the overlap.
    assert lines[-1]["type"] == "STATE"
    assert len(states(lines)) == 1
    bookmark = lines[-1]["value"]["bookmarks"]["opportunities"]
    assert bookmark == {
        "replication_key": "date_modified",
        "replication_key_value": "2023-11-14T22:25:00Z",  # FIRST_RUN - 300
        "copper_async_job": bookmark["copper_async_job"],  # the filter, API root, account
    }
    first = records(lines)[0]
    truth = server.dataset.record(first["id"])
    assert first["date_created"].endswith("Z")
    assert first["name"] == truth["name"]


@pytest.mark.asyncio
async def test_a_run_from_the_state_reads_only_the_changed_records(
    server: FakeCopperServer,
) -> None:
    state, changes = await first_run_then_changes(
        server, at=FIRST_RUN + 500, edits=40, creates=10, deletes=5, seed=3
    )
    requests_before = server.stats["requests"]
    lines = await sync(server, state=state, at=FIRST_RUN + 900)
    ids = [r["id"] for r in records(lines)]
    assert sorted(ids) == sorted(changes.edited + changes.created)
    assert server.stats["requests"] - requests_before == 1  # one page holds them
    value = states(lines)[-1]["bookmarks"]["opportunities"]["replication_key_value"]
    assert value == "2023-11-14T22:40:00Z"  # FIRST_RUN + 900 - 300


@pytest.mark.asyncio
async def test_an_interrupted_run_restarted_from_its_last_state_loses_nothing(
    server: FakeCopperServer,
) -> None:
    state, early = await first_run_then_changes(server, at=FIRST_RUN + 100, edits=150, seed=4)

    class ClosedAfter(io.BytesIO):
        """A target that stops reading after a few writes."""

        writes = 0

        def write(self, data: Any) -> int:
            self.writes += 1
            if self.writes > 2:
                raise BrokenPipeError
            return super().write(data)

    cut = ClosedAfter()
    with pytest.raises(BrokenPipeError):
        await sync(server, state=state, at=FIRST_RUN + 200, out=cut, page_size=50, cap=50)
    assert 0 < len(records(messages(cut))) < len(early.edited)
    assert states(messages(cut)) == []  # no STATE: the bookmark did not move
    server.clock = lambda: FIRST_RUN + 300
    late = server.play_changes(edits=20, seed=5)
    lines = await sync(server, state=state, at=FIRST_RUN + 400)
    assert {r["id"] for r in records(lines)} >= set(early.edited) | set(late.edited)


class ClosedAfter(io.BytesIO):
    """A target that stops reading after ``limit`` writes (a page or a message each)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.writes = limit, 0

    def write(self, data: Any) -> int:
        self.writes += 1
        if self.writes > self.limit:
            raise BrokenPipeError
        return super().write(data)


async def stopped_first_load(server: FakeCopperServer) -> list[dict[str, Any]]:
    """The messages of a first load whose target closed after 26 writes, with a
    STATE every 5 pages."""
    cut = ClosedAfter(26)
    with pytest.raises(BrokenPipeError):
        await sync(server, out=cut, state_every=5)
    return messages(cut)


@pytest.mark.asyncio
async def test_a_stopped_first_load_goes_on_from_the_last_state_it_wrote(
    server: FakeCopperServer,
) -> None:
    before = await stopped_first_load(server)
    written = states(before)
    assert written, "a STATE was written during the run"
    entry = written[-1]["bookmarks"]["opportunities"]
    assert "replication_key_value" not in entry  # no bookmark before a first load ends
    assert entry["copper_async_run"]["started"] == FIRST_RUN
    sent = {r["id"] for r in records(before)}
    # Restarted later from that STATE: the same run goes on.
    result_out = io.BytesIO()
    server.clock = lambda: FIRST_RUN + 5_000
    result = await run_tap(
        config(server), result_out, state=written[-1], now=lambda: FIRST_RUN + 5_000
    )
    after = messages(result_out)
    ids = [r["id"] for r in records(after)]
    assert result.resumed
    assert sent | set(ids) == set(server.dataset.ids())
    assert len(ids) < RECORDS, "finished windows are not read again"
    assert len(ids) == len(set(ids))
    # The bookmark is the first process's start minus the overlap; the run is gone.
    final = states(after)[-1]
    job = final["bookmarks"]["opportunities"].pop("copper_async_job")
    assert final == {
        "bookmarks": {
            "opportunities": {
                "replication_key": "date_modified",
                "replication_key_value": "2023-11-14T22:25:00Z",  # FIRST_RUN - 300
            }
        }
    }
    assert (
        job
        == states(await sync(server, at=FIRST_RUN + 6_000))[-1]["bookmarks"]["opportunities"][
            "copper_async_job"
        ]
    ), "one job, one key"


@pytest.mark.asyncio
async def test_a_state_of_a_run_that_read_otherwise_starts_afresh(
    server: FakeCopperServer,
) -> None:
    carried = states(await stopped_first_load(server))[-1]
    out = io.BytesIO()
    server.clock = lambda: FIRST_RUN + 5_000
    result = await run_tap(
        config(server, page_size=PAGE // 2), out, state=carried, now=lambda: FIRST_RUN + 5_000
    )
    assert not result.resumed
    assert sorted(r["id"] for r in records(messages(out))) == sorted(server.dataset.ids())
    value = states(messages(out))[-1]["bookmarks"]["opportunities"]
    assert value["replication_key"] == "date_modified"
    assert value["replication_key_value"] == "2023-11-14T23:48:20Z"  # FIRST_RUN + 5,000 - 300


@pytest.mark.asyncio
async def test_a_damaged_run_in_the_state_is_read_anew(server: FakeCopperServer) -> None:
    carried = states(await stopped_first_load(server))[-1]
    carried["bookmarks"]["opportunities"]["copper_async_run"]["planner"] = {"version": 99}
    out = io.BytesIO()
    result = await run_tap(config(server), out, state=carried, now=lambda: FIRST_RUN + 5_000)
    assert not result.resumed
    assert sorted(r["id"] for r in records(messages(out))) == sorted(server.dataset.ids())


@pytest.mark.asyncio
async def test_a_deselected_stream_emits_nothing_and_asks_nothing(
    server: FakeCopperServer,
) -> None:
    catalog = discover()
    catalog["streams"][0]["metadata"][0]["metadata"]["selected"] = False
    assert await sync(server, catalog=catalog) == []
    assert server.stats["requests"] == 0


@pytest.mark.asyncio
async def test_only_selected_properties_are_emitted(server: FakeCopperServer) -> None:
    catalog = discover()
    for entry in catalog["streams"][0]["metadata"]:
        entry["metadata"]["selected"] = entry["breadcrumb"] in ([], ["properties", "status"])
    lines = await sync(server, catalog=catalog)
    assert set(lines[0]["schema"]["properties"]) == {"id", "status", "date_modified"}
    emitted = records(lines)
    assert len(emitted) == RECORDS
    assert all(set(r) == {"id", "status", "date_modified"} for r in emitted)


@pytest.mark.asyncio
async def test_full_table_replication_reads_everything_and_keeps_the_state(
    server: FakeCopperServer,
) -> None:
    catalog = discover()
    catalog["streams"][0]["metadata"][0]["metadata"]["replication-method"] = "FULL_TABLE"
    state = {"bookmarks": {"opportunities": {"replication_key_value": "2030-01-01T00:00:00Z"}}}
    lines = await sync(server, catalog=catalog, state=state)
    assert len(records(lines)) == RECORDS
    assert states(lines) == [state]
    # STATEs carrying the run under way are followed by one without it.
    lines = await sync(server, catalog=catalog, state_every=5)
    written = states(lines)
    assert len(written) > 1
    assert "copper_async_run" in written[0]["bookmarks"]["opportunities"]
    assert written[-1] == {"bookmarks": {"opportunities": {}}}


@pytest.mark.asyncio
async def test_start_date_and_filter_narrow_the_first_run(server: FakeCopperServer) -> None:
    dataset = server.dataset
    start = END - 200 * 86_400
    truth = {
        i
        for i in dataset.ids()
        if dataset.record(i)["date_modified"] >= start and dataset.record(i)["status"] == "Open"
    }
    assert 0 < len(truth) < RECORDS
    start_date = dt.datetime.fromtimestamp(start, dt.UTC).isoformat()
    lines = await sync(server, start_date=start_date, filter={"statuses": ["Open"]})
    assert {r["id"] for r in records(lines)} == truth


@pytest.mark.asyncio
async def test_the_bookmark_follows_coppers_clock_when_this_one_runs_ahead(
    server: FakeCopperServer,
) -> None:
    """An hour fast here: the bookmark is the run's start by Copper's clock
    (its answers' Date), or the edits of that hour would never be read."""
    server.clock = lambda: FIRST_RUN - 3_600
    out = io.BytesIO()
    await run_tap(config(server), out, now=lambda: FIRST_RUN)
    value = states(messages(out))[-1]["bookmarks"]["opportunities"]["replication_key_value"]
    assert value == "2023-11-14T21:25:00Z"  # FIRST_RUN - 3,600 - 300


# -- keys Copper adds that the schema does not know ------------------------------------

NEW_KEYS = {"forecast_category": "commit", "ai_score": 0.9}  # not in the schema


@pytest_asyncio.fixture
async def newer_server() -> AsyncIterator[FakeCopperServer]:
    """A server whose records carry top-level keys this version does not know."""
    generated = Dataset.generate(20, seed=5, end=END)
    newer = [{**generated.record(i), **NEW_KEYS} for i in generated.ids()]
    async with FakeCopperServer(Dataset.from_records(newer)) as running:
        yield running


def selecting(*chosen: str) -> dict[str, Any]:
    """The discovered catalog with Meltano's ``selected`` on every breadcrumb."""
    catalog = discover()
    for entry in catalog["streams"][0]["metadata"]:
        crumb = entry["breadcrumb"]
        entry["metadata"]["selected"] = not crumb or crumb[1] in chosen
    return catalog


def unknown_key_warnings(caplog: pytest.LogCaptureFixture, key: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and repr(key) in r.getMessage()
    ]


@pytest.mark.asyncio
async def test_a_selection_emits_no_unknown_key_and_warns_once_per_key(
    newer_server: FakeCopperServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="copper_async"):
        emitted = records(await sync(newer_server, catalog=selecting("status")))
    assert len(emitted) == 20
    assert all(set(r) == {"id", "status", "date_modified"} for r in emitted)
    for key in NEW_KEYS:
        assert len(unknown_key_warnings(caplog, key)) == 1


@pytest.mark.asyncio
async def test_selecting_every_property_still_drops_unknown_keys(
    newer_server: FakeCopperServer,
) -> None:
    every = discover()["streams"][0]["schema"]["properties"]
    emitted = records(await sync(newer_server, catalog=selecting(*every)))
    assert emitted
    assert all(not set(r) & set(NEW_KEYS) for r in emitted)
    assert all(set(r) <= set(every) for r in emitted)
    assert any("details" in r for r in emitted)


@pytest.mark.asyncio
async def test_without_property_selection_unknown_keys_pass_as_the_schema_admits(
    newer_server: FakeCopperServer, caplog: pytest.LogCaptureFixture
) -> None:
    stream_only = discover()
    stream = stream_only["streams"][0]
    stream["metadata"] = [{"breadcrumb": [], "metadata": {"selected": True}}]
    for catalog in (None, stream_only):
        with caplog.at_level(logging.WARNING, logger="copper_async"):
            emitted = records(await sync(newer_server, catalog=catalog))
        assert len(emitted) == 20
        assert all(r.items() >= NEW_KEYS.items() for r in emitted)
    assert not unknown_key_warnings(caplog, "ai_score")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "state",
    [
        {"bookmarks": {"opportunities": "2030-01-01"}},
        {"bookmarks": ["opportunities"]},
    ],
)
async def test_a_full_table_run_refuses_a_misshapen_state_before_any_request(
    server: FakeCopperServer, state: dict[str, Any]
) -> None:
    catalog = discover()
    catalog["streams"][0]["metadata"][0]["metadata"]["replication-method"] = "FULL_TABLE"
    out = io.BytesIO()
    with pytest.raises(InvalidOptionError, match="state"):
        await sync(server, catalog=catalog, state=state, out=out)
    assert out.getvalue() == b""
    assert server.stats["requests"] == 0


@pytest.mark.asyncio
async def test_a_bookmark_made_for_another_filter_is_not_used(
    server: FakeCopperServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Records a widened filter matches may have been modified before the old
    filter's bookmark: the run reads them all instead of skipping them."""
    narrow: dict[str, Any] = {"filter": {"minimum_monetary_value": 10**12}}  # matches nothing
    state = states(await sync(server, **narrow))[-1]
    assert records(await sync(server, state=state, at=FIRST_RUN + 60, **narrow)) == []
    with caplog.at_level(logging.WARNING, logger="copper_async"):
        lines = await sync(server, state=state, at=FIRST_RUN + 120)
    assert sorted(r["id"] for r in records(lines)) == sorted(server.dataset.ids())
    assert "made for another filter" in caplog.text
    # The new bookmark is the new job's: the next run reads only what changed.
    later = await sync(server, state=states(lines)[-1], at=FIRST_RUN + 180)
    assert records(later) == []


@pytest.mark.asyncio
async def test_a_bookmark_naming_no_job_is_used_as_it_is(server: FakeCopperServer) -> None:
    state = states(await sync(server))[-1]
    del state["bookmarks"]["opportunities"]["copper_async_job"]  # an earlier version's
    server.clock = lambda: FIRST_RUN + 500
    changes = server.play_changes(edits=7, seed=5)
    lines = await sync(server, state=state, at=FIRST_RUN + 900)
    assert sorted(r["id"] for r in records(lines)) == sorted(changes.edited)


@pytest.mark.asyncio
async def test_a_run_carried_from_another_api_root_is_not_continued(
    server: FakeCopperServer,
) -> None:
    """A first load's STATE of one Copper, restarted against another: its
    finished windows say nothing of the other's records, so all are read."""
    carried = states(await stopped_first_load(server))[-1]
    other_records = Dataset.generate(RECORDS, seed=12, end=END)
    async with FakeCopperServer(other_records, options=FakeServerOptions(cap=CAP)) as other:
        out = io.BytesIO()
        other.clock = lambda: FIRST_RUN + 5_000
        result = await run_tap(config(other), out, state=carried, now=lambda: FIRST_RUN + 5_000)
        assert not result.resumed
        assert sorted(r["id"] for r in records(messages(out))) == sorted(other.dataset.ids())


@pytest.mark.asyncio
async def test_a_base_url_that_is_the_search_endpoint_is_refused_before_any_request(
    server: FakeCopperServer,
) -> None:
    """The search URL copied from Copper's docs as ``base_url``: the export
    refuses it before any request, naming the API root to give; so must the tap,
    rather than write a SCHEMA and fail on a 404."""
    settings = fake_tap_config(server, page_size=PAGE, cap=CAP)
    settings["base_url"] = f"{server.url}/opportunities/search"
    out = io.BytesIO()
    with pytest.raises(InvalidOptionError, match="'base_url'") as refused:
        await run_tap(TapConfig.from_mapping(settings, environ={}), out)
    assert repr(server.url) in str(refused.value)  # the API root to give instead
    assert out.getvalue() == b""
    assert server.stats["requests"] == 0
