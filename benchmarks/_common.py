"""Helpers shared by the benchmark scripts: options, tables, JSON, machine facts,
a fake server in its own process, and child processes measured with ``wait4``.

``benchmarks/`` is not a package: each script puts its own folder on
``sys.path`` and imports this module as ``_common``. Every script's JSON
result has the same outline, which ``run_all.py`` renders::

    {"benchmark": NAME, "title": ..., "config": {...}, "columns": [...],
     "rows": [[...], ...], "checks": [{"name", "value", "target", "passed"}],
     "notes": [...], "machine": {...}, ...extra data for plots}
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import attrs

from copper_async import CopperClient
from copper_async.testing import FakeCopperServer

__all__ = [
    "DEFAULT_EMAIL",
    "DEFAULT_TOKEN",
    "PACKAGES",
    "Check",
    "ChildRun",
    "FakeServerProcess",
    "add_json_option",
    "check",
    "fake_server_process",
    "format_table",
    "machine_info",
    "median",
    "package_version",
    "positive_int",
    "print_checks",
    "print_table",
    "result_payload",
    "run_child",
    "write_json",
]

DEFAULT_TOKEN = "fake-token"
DEFAULT_EMAIL = "fake@example.com"
#: The versions RESULTS.md reports (None when not installed).
PACKAGES = (
    "copper-async",
    "aiohttp",
    "orjson",
    "attrs",
    "cattrs",
    "aiolimiter",
    "requests",
    "tap-copper",
    "singer-python",
    "psutil",
    "matplotlib",
)
# A fake server generating a million records takes about a minute to start.
_SERVER_START_TIMEOUT = 600.0


def unpaced_client(server: FakeCopperServer) -> CopperClient:
    """A client of the fake ``server`` running in this process: its
    credentials, and no pacing (the benchmark measures the search, not the limit)."""
    return CopperClient(
        access_token=server.options.access_token,
        user_email=server.options.user_email,
        base_url=server.url,
        rate_limit=None,
    )


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (underscores allowed: ``1_000_000``)."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """The ``--json PATH`` option every script has."""
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")


def package_version(name: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """Where the figures were measured: cores, Python, platform, versions, date."""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        # Other work on the machine skews timings: say how busy it was.
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": {name: package_version(name) for name in PACKAGES},
    }


@attrs.frozen
class Check:
    """One target: the measured value, the target as text, and whether it holds."""

    name: str
    value: float | int | None
    target: str
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return attrs.asdict(self)


def check(name: str, value: float | int | None, target: str, passed: bool) -> Check:
    """A :class:`Check`; a missing value never passes."""
    return Check(name, value, target, bool(passed) and value is not None)


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else math.nan


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3f}"
    return str(value)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A plain-text table: text columns left, numbers right."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(column) for column in columns]
    for row in cells:
        for index, text in enumerate(row):
            widths[index] = max(widths[index], len(text))
    numeric = [
        all(isinstance(row[i], int | float) or row[i] is None for row in rows) and bool(rows)
        for i in range(len(columns))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            text.rjust(width) if right else text.ljust(width)
            for text, width, right in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return [line(columns), line(["-" * width for width in widths]), *map(line, cells)]


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, file: IO[str] | None = None
) -> None:
    """Print :func:`format_table`."""
    for text in format_table(columns, rows):
        print(text, file=file if file is not None else sys.stdout)


def print_checks(checks: Sequence[Check]) -> None:
    """One line per target: PASS or MISS."""
    for item in checks:
        shown = _cell(item.value)
        print(f"{'PASS' if item.passed else 'MISS'}  {item.name} = {shown} (target {item.target})")


def result_payload(
    benchmark: str,
    title: str,
    *,
    config: dict[str, Any],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    checks: Sequence[Check] = (),
    notes: Sequence[str] = (),
    **extra: Any,
) -> dict[str, Any]:
    """The JSON outline every script writes (see the module docstring)."""
    return {
        "benchmark": benchmark,
        "title": title,
        "config": config,
        "columns": list(columns),
        "rows": [list(row) for row in rows],
        "checks": [item.as_dict() for item in checks],
        "notes": list(notes),
        "machine": machine_info(),
        **extra,
    }


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON (no-op for None); NaN becomes null."""
    if path is None:
        return

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(payload), indent=2) + "\n", encoding="utf-8")


# -- child processes -------------------------------------------------------------------


@attrs.frozen
class ChildRun:
    """A finished child process: exit code, wall and CPU seconds, peak RSS, stderr tail."""

    returncode: int
    wall_seconds: float
    cpu_seconds: float
    max_rss_bytes: int
    stderr_tail: str


def run_child(
    command: Sequence[str],
    *,
    stdout: IO[bytes] | int | None = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
    timeout: float = 3600.0,
) -> ChildRun:
    """Run ``command`` and measure it alone.

    The command runs under a small launcher (``_measure_child.py``) that
    ``wait4``s it and reports that one process's CPU time and peak RSS: not
    those of other children of this process (a fake server), nor this
    process's own peak, which a child started from here would inherit. A
    command past ``timeout`` is killed with its launcher (returncode -9).
    """
    started = time.perf_counter()
    read_end, write_end = os.pipe()
    launcher = [sys.executable, str(Path(__file__).with_name("_measure_child.py"))]
    try:
        process = subprocess.Popen(
            [*launcher, str(write_end), *command],
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=(write_end,),
            start_new_session=True,  # one group: a timeout kills the command too
        )
    finally:
        os.close(write_end)
    assert process.stderr is not None
    chunks: list[bytes] = []
    # Drain stderr in a thread so a chatty child never blocks on a full pipe.
    reader = threading.Thread(target=lambda: chunks.append(process.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    timer = threading.Timer(timeout, lambda: _kill(process.pid))
    timer.start()
    try:
        with os.fdopen(read_end, "rb") as report:
            measured = report.read()
        process.wait()
    finally:
        timer.cancel()
    wall = time.perf_counter() - started
    reader.join()
    process.stderr.close()
    tail = b"".join(chunks).decode("utf-8", "replace").strip().splitlines()[-15:]
    if measured:
        status, user, system, max_rss_kib = json.loads(measured)
        returncode = os.waitstatus_to_exitcode(status)
    else:  # the launcher itself was killed
        returncode, user, system, max_rss_kib = process.returncode, 0.0, 0.0, 0
    return ChildRun(
        returncode=returncode,
        wall_seconds=wall,
        cpu_seconds=user + system,
        # Linux reports ru_maxrss in KiB.
        max_rss_bytes=max_rss_kib * 1024,
        stderr_tail="\n".join(tail),
    )


def _kill(pid: int) -> None:
    """Kill ``pid``'s process group (a launcher and its command)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@attrs.frozen
class FakeServerProcess:
    """A ``copper-async fake-server`` running in its own process."""

    url: str
    token: str
    email: str
    process: subprocess.Popen[bytes]

    @property
    def root(self) -> str:
        """The server's root URL (where the ``/_fake`` admin routes live)."""
        return self.url.split("/developer_api", 1)[0]

    def stats(self) -> dict[str, Any]:
        """The server's counters (``GET /_fake/stats``)."""
        request = urllib.request.Request(
            f"{self.root}/_fake/stats",
            headers={
                "X-PW-AccessToken": self.token,
                "X-PW-UserEmail": self.email,
                "X-PW-Application": "developer_api",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            stats: dict[str, Any] = json.loads(response.read())
        return stats


@contextlib.contextmanager
def fake_server_process(
    arguments: Sequence[str],
    *,
    python: str = sys.executable,
    token: str = DEFAULT_TOKEN,
    email: str = DEFAULT_EMAIL,
) -> Iterator[FakeServerProcess]:
    """Start ``python -m copper_async fake-server ARGUMENTS`` on a free loopback port.

    Waits for the URL line it prints once it serves; stops it with SIGTERM
    (then SIGKILL) on exit. Its CPU and memory are not this process's.
    """
    command = [
        python,
        "-m",
        "copper_async",
        "fake-server",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--token",
        token,
        "--email",
        email,
        *arguments,
    ]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
        assert process.stdout is not None
        stdout = process.stdout
        drain = threading.Thread(target=stdout.read, daemon=True)
        try:
            url = _read_url(process, errors, _SERVER_START_TIMEOUT)
            # Keep draining its output so the server never blocks on a full pipe.
            drain.start()
            yield FakeServerProcess(url, token, email, process)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if drain.ident is not None:
                drain.join(timeout=15)
            stdout.close()


def _read_url(process: subprocess.Popen[bytes], errors: IO[bytes], timeout: float) -> str:
    found: list[str] = []
    assert process.stdout is not None
    stdout = process.stdout

    def read() -> None:
        line = stdout.readline().decode()
        if "http://" in line:
            found.append("http://" + line.split("http://", 1)[1].strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not found:
        process.kill()
        process.wait()
        errors.seek(0)
        error = errors.read().decode("utf-8", "replace")
        raise RuntimeError(f"the fake server did not start: {error.strip()[-2000:]}")
    return found[0]
