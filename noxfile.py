"""Sessions that CI and developers run: tests, lint, typecheck, bench."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
# The versions the classifiers claim are the versions the tests run on.
PYTHON = nox.project.python_versions(PYPROJECT)
# Lint, types and benchmarks need one interpreter: the oldest supported.
OLDEST = PYTHON[0]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    session.install(".[test]")
    args = session.posargs or ["-n", "auto", "--maxprocesses", "4"]  # the README's command
    session.run("python", "-W", "error", "-m", "pytest", *args)


@nox.session(python=OLDEST)
def lint(session: nox.Session) -> None:
    session.install(".[dev]")
    session.run("ruff", "check", "copper_async", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "copper_async", "tests", "benchmarks", "noxfile.py")


@nox.session(python=OLDEST)
def typecheck(session: nox.Session) -> None:
    session.install(".[dev]")
    session.run("mypy", "--strict", "copper_async", "tests", "benchmarks", "noxfile.py")


@nox.session(python=OLDEST)
def stress(session: nox.Session) -> None:
    """The full-size fault run: 250,000 records through every fault, exactly once."""
    session.install(".")
    session.run("python", "benchmarks/stress.py", *session.posargs)


@nox.session(python=OLDEST)
def bench(session: nox.Session) -> None:
    """The benchmark suite against the alternatives: writes benchmarks/results/.

    The peers (tap-copper, requests) and the plotting tools go into this
    session's own environment, never into the project's dependencies.
    Pass ``-- --quick`` for a small smoke run (written to a temporary folder
    unless ``--results`` is given).
    """
    session.install(".[test]", "requests", "tap-copper", "matplotlib", "psutil")
    session.run("python", "benchmarks/run_all.py", *session.posargs)


def _fake_server(session: nox.Session, *args: str) -> tuple[subprocess.Popen[str], str]:
    """``copper-async fake-server`` in its own process; returns it and its URL."""
    python = Path(session.bin) / "python"
    server = subprocess.Popen(
        [str(python), "-m", "copper_async", "fake-server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    first = server.stdout.readline()
    if not first.startswith("fake Copper server: "):
        server.kill()
        session.error(f"the fake server did not start: {first!r}")
    return server, first.split(": ", 1)[1].strip()


def _unique_ids(path: Path) -> tuple[int, int]:
    ids = [json.loads(line)["id"] for line in path.read_text().splitlines() if line]
    return len(ids), len(set(ids))


@nox.session(python=PYTHON)
def meltano(session: nox.Session) -> None:
    """Meltano runs the tap (a custom extractor) into target-jsonl, twice.

    25,000 records under a 10,000 cap: the first run loads each once, the
    second, from the state Meltano kept, only the records changed between.
    """
    root = Path(__file__).resolve().parent
    session.install(".", "meltano")
    project = Path(session.create_tmp()).resolve() / "meltano-project"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir()
    shutil.copy(root / "tests" / "e2e" / "meltano" / "meltano.yml", project)
    server, url = _fake_server(session, "--generate", "25000", "--cap", "10000")
    env = {
        "COPPER_ASYNC_ROOT": str(root),
        "COPPER_FAKE_URL": url,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    try:
        session.chdir(project)
        session.run("meltano", "install", env=env)
        session.run("meltano", "invoke", "tap-copper-async", "--about", env=env)
        session.run("meltano", "run", "tap-copper-async", "target-jsonl", env=env)
        output = project / "output" / "opportunities.jsonl"
        count, unique = _unique_ids(output)
        if (count, unique) != (25_000, 25_000):
            session.error(f"first run: {count} records, {unique} unique, of 25000")
        changes = {"edits": 120, "creates": 30, "deletes": 0, "seed": 1}
        request = urllib.request.Request(
            url.split("/developer_api")[0] + "/_fake/changes",
            data=json.dumps(changes).encode(),
            headers={
                "X-PW-AccessToken": "fake-token",
                "X-PW-UserEmail": "fake@example.com",
                "X-PW-Application": "developer_api",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request) as answer:  # loopback only
            changed = json.loads(answer.read())
        session.run("meltano", "run", "tap-copper-async", "target-jsonl", env=env)
        count, _ = _unique_ids(output)
        expected = 25_000 + len(changed["edited"]) + len(changed["created"])
        if count != expected:
            added, wanted = count - 25_000, expected - 25_000
            session.error(f"second run: {added} records added, expected {wanted}")
        session.log(f"meltano: 25000 records, then {count - 25_000} changed ones")
    finally:
        server.terminate()
        server.wait(timeout=30)


@nox.session(python=OLDEST)
def targets(session: nox.Session) -> None:
    """The tap piped into target-jsonl and target-postgres (needs PostgreSQL), at
    full size: 250,000 records past the real 100,000 cap, twice (full, then the
    changes). ``COPPER_ASYNC_TARGETS=small`` runs the suite's 10,000 instead.
    """
    session.install(".[test]")
    size = os.environ.get("COPPER_ASYNC_TARGETS", "full")
    session.run(
        *("python", "-W", "error", "-m", "pytest", "tests/e2e/test_tap_targets.py", "-m", "slow"),
        *session.posargs,
        env={"COPPER_ASYNC_TARGETS": size},
    )
