"""Sessions that CI and developers run: tests, lint, typecheck, bench."""

from __future__ import annotations

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
    session.run("python", "-W", "error", "-m", "pytest", *session.posargs)


@nox.session(python=OLDEST)
def lint(session: nox.Session) -> None:
    session.install(".[dev]")
    session.run("ruff", "check", "copper_async", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "copper_async", "tests", "benchmarks", "noxfile.py")


@nox.session(python=OLDEST)
def typecheck(session: nox.Session) -> None:
    session.install(".[dev]")
    session.run("mypy", "--strict", "copper_async")


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
