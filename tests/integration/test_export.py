"""Bulk export, as a library call and as the ``copper-async export`` command.

The command runs in a subprocess against a fake server served by the test's
own event loop, so the tests also cover SIGKILL at arbitrary moments.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from copper_async._engine import SearchOptions, SearchStats
from copper_async._export import run_export
from copper_async._pages import PageSource, RawPage
from copper_async._planner import Restored, WindowPlanner
from copper_async._retry import RetryPolicy
from copper_async.client import CopperClient
from copper_async.exceptions import (
    CheckpointError,
    InvalidOptionError,
    OutputError,
    TransportError,
)
from copper_async.filters import OpportunityFilter
from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions
from tests.fakes import Account, closed_port, generated_records, ids_in
from tests.stopping import stop_after

pytestmark = pytest.mark.asyncio

CAP, PAGE = 1_000, 50
TOKEN = "export-test-token-3f9a"
EMAIL = "exporter@example.com"
ACCOUNT = Account(TOKEN, EMAIL)


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return generated_records(2_600, seed=21)


@pytest_asyncio.fixture
async def server(records: list[dict[str, Any]]) -> AsyncIterator[FakeCopperServer]:
    async with ACCOUNT.server(records, cap=CAP) as running:
        yield running


def search_options() -> SearchOptions:
    return SearchOptions(page_size=PAGE, cap=CAP)


def client_for(server: FakeCopperServer) -> CopperClient:
    return ACCOUNT.client(server, retry=RetryPolicy(initial_backoff=0.001, max_backoff=0.01))


# -- the library call ------------------------------------------------------------------


@pytest.mark.parametrize("format_", ["jsonl", "csv"])
async def test_export_writes_every_record_once(
    server: FakeCopperServer, records: list[dict[str, Any]], tmp_path: Path, format_: str
) -> None:
    out = tmp_path / f"out.{format_}"
    async with client_for(server) as client:
        result = await run_export(client, out=out, format=format_, options=search_options())  # type: ignore[arg-type]
    written = ids_in(out)
    assert len(written) == len(set(written)) == len(records) == result.records
    assert set(written) == {r["id"] for r in records}
    assert result.bytes == out.stat().st_size


async def test_jsonl_export_holds_the_records_as_served(
    server: FakeCopperServer, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    query = OpportunityFilter(statuses=["Won"])
    async with client_for(server) as client:
        await run_export(client, query, out=out, options=search_options())
    by_id = {r["id"]: r for r in records}
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert lines
    assert all(line == by_id[line["id"]] for line in lines)
    assert {line["id"] for line in lines} == {r["id"] for r in records if r["status"] == "Won"}


@pytest.mark.parametrize("stop_at", [1, 23], ids=["first page", "mid-run"])
async def test_an_interrupted_export_resumes_to_exactly_once(
    server: FakeCopperServer, records: list[dict[str, Any]], tmp_path: Path, stop_at: int
) -> None:
    """Stopped mid-run, or after its first page: the search is split, so its
    first page leaves pages to hand out and is no commit point, and the run
    stops with that page in the file."""
    out, checkpoint = tmp_path / "out.jsonl", tmp_path / "job.ckpt"
    stop_after_some_pages = stop_after(stop_at, KeyboardInterrupt)

    async with client_for(server) as client:
        with pytest.raises(KeyboardInterrupt):
            await run_export(
                client,
                out=out,
                options=search_options(),
                checkpoint=checkpoint,
                progress=stop_after_some_pages,
            )
        state = json.loads(checkpoint.read_bytes())
        assert (state["records"] > 0) == (stop_at > 1)
        assert state["records"] < len(records)
        in_file = len(ids_in(out))
        assert in_file == PAGE if stop_at == 1 else in_file > PAGE
        result = await run_export(
            client, out=out, options=search_options(), checkpoint=checkpoint, resume=True
        )
    written = ids_in(out)
    assert len(written) == len(set(written)) == len(records)
    assert result.resumed
    assert json.loads(checkpoint.read_bytes())["complete"] is True
    assert TOKEN not in checkpoint.read_text()


async def test_resuming_a_different_job_is_refused_before_any_request(
    server: FakeCopperServer, tmp_path: Path
) -> None:
    out, checkpoint = tmp_path / "out.jsonl", tmp_path / "job.ckpt"
    async with client_for(server) as client:
        await run_export(client, out=out, options=search_options(), checkpoint=checkpoint)
        before = server.stats["requests"]
        with pytest.raises(CheckpointError, match="differs in: filter"):
            await run_export(
                client,
                OpportunityFilter(statuses=["Open"]),
                out=out,
                options=search_options(),
                checkpoint=checkpoint,
                resume=True,
            )
        with pytest.raises(CheckpointError, match="differs in: output"):
            await run_export(
                client,
                out=tmp_path / "other.jsonl",
                options=search_options(),
                checkpoint=checkpoint,
                resume=True,
            )
        with pytest.raises(CheckpointError, match="exists"):
            await run_export(client, out=out, options=search_options(), checkpoint=checkpoint)
        with pytest.raises(InvalidOptionError, match="directory"):
            await run_export(client, out=tmp_path, options=search_options())
        assert server.stats["requests"] == before


async def interrupted_export(
    client: PageSource, out: Path, checkpoint: Path, *, pages: int = 23
) -> dict[str, Any]:
    """Start an export and stop it after ``pages`` pages; return its checkpoint."""
    stop = stop_after(pages, KeyboardInterrupt)

    with pytest.raises(KeyboardInterrupt):
        await run_export(
            client, out=out, options=search_options(), checkpoint=checkpoint, progress=stop
        )
    state: dict[str, Any] = json.loads(checkpoint.read_bytes())  # noqa: ASYNC240
    return state


async def test_a_resume_against_another_server_or_account_is_refused(
    server: FakeCopperServer, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    out, checkpoint = tmp_path / "out.jsonl", tmp_path / "job.ckpt"
    async with client_for(server) as client:
        state = await interrupted_export(client, out, checkpoint)
    # The account is in the job, but only as a digest.
    assert state["job"]["account"] == hashlib.sha256(EMAIL.encode()).hexdigest()
    assert state["job"]["base_url"] == server.url
    assert EMAIL not in checkpoint.read_text()
    before = out.read_bytes()
    options = FakeServerOptions(cap=CAP, access_token=TOKEN, user_email="other@example.com")
    async with FakeCopperServer(Dataset.generate(300, seed=4), options=options) as other:
        async with client_for(other) as elsewhere:
            with pytest.raises(CheckpointError, match=r"differs in: base_url\)"):
                await run_export(
                    elsewhere, out=out, options=search_options(), checkpoint=checkpoint, resume=True
                )
        someone_else = CopperClient(
            access_token=TOKEN, user_email="other@example.com", base_url=server.url, rate_limit=None
        )
        async with someone_else:
            with pytest.raises(CheckpointError, match=r"differs in: account\)"):
                await run_export(
                    someone_else,
                    out=out,
                    options=search_options(),
                    checkpoint=checkpoint,
                    resume=True,
                )
        assert other.stats["requests"] == 0
    assert out.read_bytes() == before
    # The same server and account resume to exactly once.
    async with client_for(server) as client:
        await run_export(
            client, out=out, options=search_options(), checkpoint=checkpoint, resume=True
        )
    written = ids_in(out)
    assert len(written) == len(set(written)) == len(records)


class BareFetcher:
    """A PageSource that is not a CopperClient: it answers from another API root."""

    base_url = "https://other.example/developer_api/v1"
    user_email = "someone@example.com"

    def __init__(self, client: CopperClient) -> None:
        self._client = client

    async def fetch_page(
        self,
        body: Mapping[str, Any],
        *,
        path: str = "opportunities/search",
        context: Mapping[str, Any] | None = None,
    ) -> RawPage:
        return await self._client.fetch_page(body, path=path, context=context)


async def test_any_page_fetcher_can_export_and_resume(
    server: FakeCopperServer, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    out, checkpoint = tmp_path / "out.jsonl", tmp_path / "job.ckpt"
    async with client_for(server) as client:
        state = await interrupted_export(BareFetcher(client), out, checkpoint)
        # The job is the source's, not the client's it happens to wrap.
        assert state["job"]["base_url"] == BareFetcher.base_url
        assert state["job"]["account"] == hashlib.sha256(b"someone@example.com").hexdigest()
        await run_export(
            BareFetcher(client),
            out=out,
            options=search_options(),
            checkpoint=checkpoint,
            resume=True,
        )
    assert sorted(ids_in(out)) == sorted(r["id"] for r in records)


async def test_a_resume_shows_progress_from_the_file_and_the_first_total(
    server: FakeCopperServer, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    out, checkpoint = tmp_path / "out.jsonl", tmp_path / "job.ckpt"
    calls: list[tuple[int, int | None, int]] = []

    def record(stats: SearchStats, written: int) -> None:
        calls.append((stats.records, stats.total_hint, written))

    async with client_for(server) as client:
        state = await interrupted_export(client, out, checkpoint)
        first_total = state["stats"]["total_hint"]
        assert first_total == len(records)
        await run_export(
            client,
            out=out,
            options=search_options(),
            checkpoint=checkpoint,
            resume=True,
            progress=record,
        )
    # Before the first request: what the file holds, and the whole search's total.
    assert calls[0] == (0, first_total, state["records"])
    assert all(total == first_total for _, total, _ in calls)
    assert calls[-1][2] == len(records)
    assert json.loads(checkpoint.read_bytes())["stats"]["total_hint"] == first_total


async def test_the_stats_of_a_resumed_export_cover_every_run(
    server: FakeCopperServer, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Requests and records add up over the runs; the planner's counters come
    back with its state, so the last run's already cover the first."""
    out, checkpoint = tmp_path / "out.jsonl", tmp_path / "job.ckpt"
    async with client_for(server) as client:
        first = (await interrupted_export(client, out, checkpoint))["stats"]
        before = server.stats["requests"]
        result = await run_export(
            client, out=out, options=search_options(), checkpoint=checkpoint, resume=True
        )
    stats = result.stats
    assert first["requests"] > 0
    assert stats["requests"] == first["requests"] + server.stats["requests"] - before
    assert stats["records"] == stats["records_delivered"] == len(records)
    assert first["windows_done"] < stats["windows_done"]
    assert stats["total_hint"] == first["total_hint"] == len(records)
    assert json.loads(checkpoint.read_bytes())["stats"] == stats


async def test_a_resume_keeps_the_options_max_passes(
    server: FakeCopperServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, checkpoint = tmp_path / "out.jsonl", tmp_path / "job.ckpt"
    restored: list[WindowPlanner] = []
    original = WindowPlanner.restore.__func__  # type: ignore[attr-defined]

    def spy(cls: type[WindowPlanner], *args: Any, **kwargs: Any) -> Restored:
        result: Restored = original(cls, *args, **kwargs)
        restored.append(result.planner)
        return result

    monkeypatch.setattr(WindowPlanner, "restore", classmethod(spy))
    options = SearchOptions(page_size=PAGE, cap=CAP, max_passes=7)
    async with client_for(server) as client:
        await interrupted_export(client, out, checkpoint)
        await run_export(client, out=out, options=options, checkpoint=checkpoint, resume=True)
    assert [planner.max_passes for planner in restored] == [7]


async def test_a_checkpoint_on_the_output_itself_is_refused_before_any_request(
    server: FakeCopperServer, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"the previous export\n")
    link = tmp_path / "link.ckpt"
    os.link(out, link)
    async with client_for(server) as client:
        for checkpoint in (out, tmp_path / "." / "out.jsonl", link):
            for resume in (False, True):
                with pytest.raises(InvalidOptionError, match="output file itself") as raised:
                    await run_export(
                        client,
                        out=out,
                        options=search_options(),
                        checkpoint=checkpoint,
                        resume=resume,
                    )
                assert raised.value.option == "checkpoint"
        # Not yet existing: the same path still.
        with pytest.raises(InvalidOptionError, match="output file itself"):
            await run_export(
                client,
                out=tmp_path / "new.jsonl",
                options=search_options(),
                checkpoint=tmp_path / "new.jsonl",
            )
    assert server.stats["requests"] == 0
    assert out.read_bytes() == b"the previous export\n"


@pytest.mark.parametrize(
    ("where", "phrase"),
    [
        ("missing/job.ckpt", "does not exist"),
        ("afile/job.ckpt", "does not exist"),
        (".", "directory"),
    ],
)
async def test_an_unusable_checkpoint_path_is_refused_before_any_request(
    server: FakeCopperServer, tmp_path: Path, where: str, phrase: str
) -> None:
    (tmp_path / "afile").write_text("x")
    async with client_for(server) as client:
        with pytest.raises(InvalidOptionError, match=phrase) as raised:
            await run_export(
                client,
                out=tmp_path / "out.jsonl",
                options=search_options(),
                checkpoint=tmp_path / where,
            )
    assert raised.value.option == "checkpoint"
    assert server.stats["requests"] == 0
    assert not (tmp_path / "out.jsonl").exists()


async def test_a_start_removes_what_a_killed_checkpoint_save_left(
    server: FakeCopperServer, tmp_path: Path
) -> None:
    out, checkpoint = tmp_path / "out.jsonl", tmp_path / "job.ckpt"
    stale, unrelated = tmp_path / ".job.ckpt.x1y2z3_q.tmp", tmp_path / ".other.ckpt.x1y2z3_q.tmp"
    stale.write_bytes(b'{"version": 1, "half')
    unrelated.write_bytes(b"not ours")
    async with client_for(server) as client:
        await run_export(client, out=out, options=search_options(), checkpoint=checkpoint)
    assert not stale.exists()
    assert unrelated.exists()


def closed_port_url() -> str:
    return f"http://127.0.0.1:{closed_port()}/v1"


@pytest.mark.parametrize("with_checkpoint", [False, True])
async def test_a_failure_before_the_first_page_leaves_the_old_output_untouched(
    tmp_path: Path, with_checkpoint: bool
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"id": 1}\n{"id": 2}\n')
    unreachable = CopperClient(
        access_token=TOKEN,
        user_email=EMAIL,
        base_url=closed_port_url(),
        rate_limit=None,
        retry=RetryPolicy(attempts=2, initial_backoff=0.001, max_backoff=0.002),
    )
    checkpoint = tmp_path / "job.ckpt" if with_checkpoint else None
    async with unreachable:
        with pytest.raises(TransportError):
            await run_export(unreachable, out=out, options=search_options(), checkpoint=checkpoint)
    assert out.read_bytes() == b'{"id": 1}\n{"id": 2}\n'


@pytest.mark.parametrize(
    ("out_name", "checkpoint_name"),
    [("job.ckpt.lock", "job.ckpt"), ("out.jsonl", "out.jsonl.lock")],
)
async def test_a_checkpoint_and_an_output_that_are_each_others_lock_are_refused(
    server: FakeCopperServer, tmp_path: Path, out_name: str, checkpoint_name: str
) -> None:
    # Each run removes its lock files when it ends: one of them would be the other file.
    out, checkpoint = tmp_path / out_name, tmp_path / checkpoint_name
    async with client_for(server) as client:
        with pytest.raises(InvalidOptionError, match="lock file") as raised:
            await run_export(client, out=out, options=search_options(), checkpoint=checkpoint)
    assert raised.value.option == "checkpoint"
    assert server.stats["requests"] == 0
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("how", ["removed", "replaced", "folder removed"])
async def test_an_output_removed_during_the_export_is_an_output_error(
    server: FakeCopperServer, tmp_path: Path, how: str
) -> None:
    # The records would go on into a file no name reaches, and the run say it succeeded.
    folder = tmp_path / "exports"
    folder.mkdir()
    out = folder / "out.jsonl"
    pages = 0

    def remove_the_output(_stats: Any, _written: int) -> None:
        nonlocal pages
        pages += 1
        if pages == 3:
            out.unlink()
            if how == "replaced":
                out.write_bytes(b"")
            elif how == "folder removed":
                for left in folder.iterdir():
                    left.unlink()
                folder.rmdir()

    async with client_for(server) as client:
        with pytest.raises(OutputError, match="removed or replaced"):
            await run_export(client, out=out, options=search_options(), progress=remove_the_output)


@pytest.mark.parametrize("change", ["removed", "cut short"])
async def test_resuming_a_complete_export_whose_output_changed_is_refused(
    server: FakeCopperServer, tmp_path: Path, change: str
) -> None:
    # "Already complete" would report records that are no longer in the file.
    out, checkpoint = tmp_path / "out.jsonl", tmp_path / "job.ckpt"
    async with client_for(server) as client:
        await run_export(client, out=out, options=search_options(), checkpoint=checkpoint)
        if change == "removed":
            out.unlink()
        else:
            os.truncate(out, out.stat().st_size // 2)
        with pytest.raises(CheckpointError, match=f"{change}"):
            await run_export(
                client, out=out, options=search_options(), checkpoint=checkpoint, resume=True
            )


async def test_resuming_an_export_to_a_pipe_is_a_checkpoint_error(
    server: FakeCopperServer, tmp_path: Path
) -> None:
    """``--out >(gzip > x.gz) --checkpoint c``, stopped, then ``--resume``: a pipe
    cannot be cut back to its committed length, and the records it passed on are
    gone with its reader. The resume is refused before any request, as a
    checkpoint error, not an OSError from seeking a pipe."""
    fifo, checkpoint = tmp_path / "pipe", tmp_path / "job.ckpt"
    os.mkfifo(fifo)

    def drain() -> None:
        with open(fifo, "rb") as reader:
            while reader.read(65536):
                pass

    stop = stop_after(3, KeyboardInterrupt)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        async with client_for(server) as client:
            with pytest.raises(KeyboardInterrupt):
                await run_export(
                    client, out=fifo, options=search_options(), checkpoint=checkpoint,
                    progress=stop,
                )  # fmt: skip
    finally:
        reader.join(timeout=10)
    assert json.loads(checkpoint.read_bytes())["committed_bytes"] > 0
    server.reset_stats()
    async with client_for(server) as client:
        with pytest.raises(CheckpointError, match="pipe"):
            await run_export(
                client, out=fifo, options=search_options(), checkpoint=checkpoint, resume=True
            )
    assert server.stats["requests_by_status"] == {}
