"""The tap piped into real Singer targets from the package registry.

Each target gets its own virtualenv (its pins clash with this project's),
made by the fixture with ``python -m venv`` + pip and cached under the temp
folder, keyed by the target's version and this Python. A failed install
fails the test with pip's words; nothing is skipped. PostgreSQL runs as a
throwaway cluster (initdb / pg_ctl as the ``postgres`` user when run as
root) on a unix socket only.

The data: 25,000 records under a search cap of 10,000 (pages of 200), so
every run must split past the cap. The second run starts from the STATE
the target passed through and must read exactly the records changed since.
"""

from __future__ import annotations

import asyncio
import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions

RECORDS, CAP, PAGE = 25_000, 10_000, 200
TARGETS = {
    "target-jsonl": ("target-jsonl==0.1.4", "target-jsonl"),
    "target-postgres": ("meltanolabs-target-postgres==0.8.1", "target-postgres"),
}
_PIPELINE_TIMEOUT = 300


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


# -- PostgreSQL ---------------------------------------------------------------------


def _pg_program(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        pytest.fail(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found


class Postgres:
    """A throwaway cluster on a unix socket; ``sql`` runs one query through psql."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket_dir = folder / "socket"
        self.port = 5432  # only names the socket file, in a folder of our own
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def sql(self, query: str) -> list[list[str]]:
        done = subprocess.run(
            [
                _pg_program("psql"),
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-At",
                "-F",
                "\t",
                "-c",
                query,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return [line.split("\t") for line in done.stdout.splitlines()]


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    folder = Path(tempfile.mkdtemp(prefix="copper-tap-pg-"))
    server = Postgres(folder)
    server.socket_dir.mkdir()
    data = folder / "data"
    if server.as_owner:
        os.chmod(folder, 0o755)
        shutil.chown(server.socket_dir, "postgres")
        data.mkdir(mode=0o700)
        shutil.chown(data, "postgres")
    owner = server.as_owner
    subprocess.run(
        [
            *owner,
            _pg_program("initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-k {server.socket_dir} -c listen_addresses='' -p {server.port} -F"
    log = folder / "log" if not owner else server.socket_dir / "log"
    subprocess.run(
        [
            *owner,
            _pg_program("pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(log),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield server
    finally:
        subprocess.run(
            [*owner, _pg_program("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=120,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)


# -- the pipeline --------------------------------------------------------------------


def tap_config(server: FakeCopperServer, folder: Path) -> Path:
    path = folder / "tap.json"
    config = {
        "access_token": "fake-token",
        "user_email": "fake@example.com",
        "base_url": server.url,
        "rate_limit": "none",
        "page_size": PAGE,
        "cap": CAP,
    }
    path.write_bytes(orjson.dumps(config))
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
    stdout, stderr = await asyncio.wait_for(process.communicate(), _PIPELINE_TIMEOUT)
    assert process.returncode == 0, stderr.decode(errors="replace")[-3000:]
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "the target printed no state"
    return orjson.loads(lines[-1])


async def two_runs(
    target: Path, target_config: dict[str, Any], folder: Path, after_first: Any
) -> tuple[FakeCopperServer, Any]:
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


@pytest.mark.slow
@pytest.mark.asyncio
async def test_target_postgres_gets_every_record_once_then_only_the_changes(
    tmp_path: Path, postgres: Postgres
) -> None:
    target = await asyncio.to_thread(target_executable, "target-postgres")
    config = {
        "sqlalchemy_url": postgres.url(),
        "default_target_schema": "copper",
        "add_record_metadata": True,
    }

    def check_first(server: FakeCopperServer) -> None:
        rows = postgres.sql("select count(*), count(distinct id) from copper.opportunities")
        assert rows == [[str(RECORDS), str(RECORDS)]]

    server, changes = await two_runs(target, config, tmp_path, check_first)
    rows = postgres.sql("select count(*), count(distinct id) from copper.opportunities")
    assert rows == [[str(RECORDS + len(changes.created))] * 2]  # upserted on id
    # The second batch loaded only the changed records, with their new values.
    batches = postgres.sql(
        "select id, extract(epoch from date_modified)::bigint, interaction_count "
        "from copper.opportunities where _sdc_batched_at = "
        "(select max(_sdc_batched_at) from copper.opportunities)"
    )
    assert sorted(int(row[0]) for row in batches) == sorted(changes.edited + changes.created)
    for record_id, modified, interactions in batches:
        truth = server.dataset.record(int(record_id))
        assert int(modified) == truth["date_modified"]
        assert int(interactions) == truth["interaction_count"]
