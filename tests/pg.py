"""A throwaway PostgreSQL cluster for the tests: initdb and pg_ctl on a
temporary folder, a unix socket only, trust auth (and one password user).

initdb refuses to run as root, so as root the cluster belongs to the
``postgres`` system user. Missing PostgreSQL FAILS the tests that need it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PASSWORD_USER, PASSWORD = "copper_pw", "right-password"
_names = itertools.count()


def _bindir() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.fail(
            "PostgreSQL is not installed (no initdb on PATH, no pg_config): "
            "the PostgreSQL store tests need a real server; install postgresql"
        )
    path = Path(out.stdout.strip())
    if not (path / "initdb").exists():
        pytest.fail(f"PostgreSQL's initdb is not in {path}: install postgresql")
    return path


class Cluster:
    """One cluster; ``stop`` and ``start`` let a test take the server away."""

    def __init__(self) -> None:
        self.bindir = _bindir()
        self.root = Path(tempfile.mkdtemp(prefix="copper-pg-"))
        self.data = self.root / "data"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync",
            "-E", "UTF8", "--locale=C",
        )  # fmt: skip
        hba = self.data / "pg_hba.conf"
        hba.write_text(
            f"local all {PASSWORD_USER} scram-sha-256\nlocal all all trust\n" + hba.read_text()
        )
        self.start()
        self.sql(f"CREATE ROLE {PASSWORD_USER} LOGIN SUPERUSER PASSWORD '{PASSWORD}'")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            pytest.fail(f"{tool} failed ({result.returncode}): {result.stderr or result.stdout}")

    def start(self) -> None:
        options = f"-k {self.root} -c listen_addresses='' -F -c max_connections=40"
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w",
            "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@/{database}?host={self.root}"

    def sql(self, statement: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as connection:
            connection.execute(statement)

    def new_database(self) -> str:
        name = f"mirror_{next(_names)}"
        self.sql(f"CREATE DATABASE {name}")
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    cluster = Cluster()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    """A fresh, empty database on the session's cluster."""
    return pg_cluster.new_database()
