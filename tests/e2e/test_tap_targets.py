"""The tap piped into real Singer targets from the package registry.

Each target gets its own virtualenv (its pins clash with this project's),
made by the fixture with ``python -m venv`` + pip and cached under the temp
folder, keyed by the target's version and this Python. A failed install
fails the test with pip's words; nothing is skipped. PostgreSQL is the
session's throwaway cluster (``tests/pg.py``), a fresh database per test.

The data: by default 10,000 records under a search cap of 4,000 (pages of
200), so every run must split past the cap. ``COPPER_ASYNC_TARGETS=full``
(``nox -s targets``, CI) runs the same tests at full size: 250,000 records
under the real cap of 100,000. The second run starts from the STATE the
target passed through and must read exactly the records changed since.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from copper_async._options import SEARCH_CAP
from copper_async.testing import Changes, Dataset, FakeCopperServer, FakeServerOptions
from tests.pg import pg_cluster, pg_url
from tests.singer_support import fake_tap_config

__all__ = ["pg_cluster", "pg_url"]  # the fixtures, for pytest

#: records, search cap, seconds one ``tap | target`` run may take
SIZES = {"small": (10_000, 4_000, 300), "full": (250_000, SEARCH_CAP, 1_800)}
SIZE = os.environ.get("COPPER_ASYNC_TARGETS", "small")
if SIZE not in SIZES:
    raise pytest.UsageError(f"COPPER_ASYNC_TARGETS must be one of {sorted(SIZES)}, not {SIZE!r}")
RECORDS, CAP, PIPELINE_TIMEOUT = SIZES[SIZE]
PAGE = 200
TARGETS = {
    "target-jsonl": ("target-jsonl==0.1.4", "target-jsonl"),
    "target-postgres": ("meltanolabs-target-postgres==0.8.1", "target-postgres"),
}


def cache_root() -> Path:
    return Path(tempfile.gettempdir()) / "copper-async-test-targets"


def target_executable(name: str) -> Path:
    """The target's executable in its own cached virtualenv, made if missing."""
    requirement, executable = TARGETS[name]
    key = hashlib.sha256(f"{requirement}|{sys.version}".encode()).hexdigest()[:12]
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / f"{name}-{key}"
    ready = venv / ".installed"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install at a time
        if not ready.exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
            install = subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", requirement],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            if install.returncode != 0:
                pytest.fail(
                    f"installing {requirement} into {venv} failed "
                    f"(exit {install.returncode}):\n{install.stderr[-3000:]}"
                )
            ready.touch()
    return venv / "bin" / executable


# -- the pipeline --------------------------------------------------------------------


def tap_config(server: FakeCopperServer, folder: Path) -> Path:
    path = folder / "tap.json"
    path.write_bytes(orjson.dumps(fake_tap_config(server, page_size=PAGE, cap=CAP)))
    return path


async def pipeline(
    tap_config: Path, target: Path, target_config: dict[str, Any], folder: Path, state: Any
) -> Any:
    """``tap | target``; returns the last STATE the target printed."""
    (folder / "target.json").write_bytes(orjson.dumps(target_config))
    command = [sys.executable, "-m", "copper_async", "tap", "--config", str(tap_config)]
    if state is not None:
        (folder / "state.json").write_bytes(orjson.dumps(state))
        command += ["--state", str(folder / "state.json")]
    script = 'set -o pipefail; "${@:2:$1}" | "${@:$(($1 + 2))}"'
    target_command = [str(target), "--config", str(folder / "target.json")]
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        script,
        "pipeline",
        str(len(command)),
        *command,
        *target_command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), PIPELINE_TIMEOUT)
    assert process.returncode == 0, stderr.decode(errors="replace")[-3000:]
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "the target printed no state"
    return orjson.loads(lines[-1])


async def two_runs(
    target: Path, target_config: dict[str, Any], folder: Path, after_first: Any
) -> tuple[FakeCopperServer, Changes]:
    """Run the pipeline, play user changes, run it again from the state."""
    dataset = Dataset.generate(RECORDS, seed=23)
    async with FakeCopperServer(dataset, options=FakeServerOptions(cap=CAP)) as server:
        config = tap_config(server, folder)
        state = await pipeline(config, target, target_config, folder, None)
        assert state["bookmarks"]["opportunities"]["replication_key"] == "date_modified"
        after_first(server)
        changes = server.play_changes(edits=300, creates=100, deletes=50, seed=9)
        requests = server.stats["requests"]
        second = await pipeline(config, target, target_config, folder, state)
        assert server.stats["requests"] - requests <= 3  # ~400 changed records, 2 pages
        assert second != state
    return server, changes


@pytest.mark.slow
@pytest.mark.asyncio
async def test_target_jsonl_gets_every_record_once_then_only_the_changes(
    tmp_path: Path,
) -> None:
    target = await asyncio.to_thread(target_executable, "target-jsonl")
    out = tmp_path / "out"
    output = out / "opportunities.jsonl"
    first: list[int] = []

    def read_first(server: FakeCopperServer) -> None:
        first.extend(orjson.loads(line)["id"] for line in output.read_bytes().splitlines())
        assert len(first) == len(set(first)) == RECORDS
        assert set(first) == set(server.dataset.ids())

    config = {"destination_path": str(out), "do_timestamp_file": False}
    _, changes = await two_runs(target, config, tmp_path, read_first)
    # target-jsonl appends: what the second run added is exactly the changes.
    lines = output.read_bytes().splitlines()
    added = [orjson.loads(line)["id"] for line in lines[len(first) :]]
    assert sorted(added) == sorted(changes.edited + changes.created)


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(sql).fetchall()


@pytest.mark.slow
@pytest.mark.asyncio
async def test_target_postgres_gets_every_record_once_then_only_the_changes(
    tmp_path: Path, pg_url: str
) -> None:
    target = await asyncio.to_thread(target_executable, "target-postgres")
    config = {
        # The target's SQLAlchemy URL names the driver; libpq reads the rest alike.
        "sqlalchemy_url": pg_url.replace("postgresql://", "postgresql+psycopg://", 1),
        "default_target_schema": "copper",
        "add_record_metadata": True,
    }
    counts = "select count(*), count(distinct id) from copper.opportunities"

    def check_first(server: FakeCopperServer) -> None:
        assert query(pg_url, counts) == [(RECORDS, RECORDS)]

    server, changes = await two_runs(target, config, tmp_path, check_first)
    assert query(pg_url, counts) == [(RECORDS + len(changes.created),) * 2]  # upserted on id
    # The second batch loaded only the changed records, with their new values.
    batches = query(
        pg_url,
        "select id, extract(epoch from date_modified)::bigint, interaction_count "
        "from copper.opportunities where _sdc_batched_at = "
        "(select max(_sdc_batched_at) from copper.opportunities)",
    )
    assert sorted(row[0] for row in batches) == sorted(changes.edited + changes.created)
    for record_id, modified, interactions in batches:
        truth = server.dataset.record(record_id)
        assert (modified, interactions) == (truth["date_modified"], truth["interaction_count"])
