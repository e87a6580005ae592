"""Benchmark: this library against the alternatives, on the same server and data.

One fake server (``copper-async fake-server``, in its own process) serves N
generated records (250,000 by default) under the real 100,000-record search
cap, with no rate limit and no latency. Each client runs as a child process
that writes every record it gets to a file; its wall time, CPU time and peak
RSS come from ``os.wait4``, its request count from the server's counters:

- ``tap-copper`` (PyPI; a Singer tap): its ``opportunities`` stream, run
  through a wrapper script written here that loads the tap's own catalog
  (selecting that one stream), points its client's base URL at the fake
  server (the tap hard-codes ``https://api.copper.com``) and calls its
  ``sync``; its Singer messages go to the file.
- ``requests`` page loop, as Copper's docs suggest: POST ``page_number`` 1,
  2, ... with ``page_size`` 200 until a short page; one JSON line a record.
- ``copper-async export`` (this library), JSON lines.

Reported per client: records delivered out of N (what the cap costs it),
unique records, requests, records per second (delivered over wall time),
CPU seconds, peak RSS. A peer that is not installed in ``--peer-python``'s
environment, or that fails, gets a row saying so, with no figures. The
peers' versions are read from that interpreter, into the JSON result.

Run ``python benchmarks/bench_alternatives.py --help``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

__all__ = [
    "COLUMNS",
    "PEER_PACKAGES",
    "REQUESTS_LOOP",
    "TAP_WRAPPER",
    "add_data_options",
    "figures",
    "main",
    "peer_versions",
    "read_ids",
    "result_row",
    "run_client",
]

#: Runs tap-copper's opportunities stream against URL; Singer messages on stdout.
TAP_WRAPPER = """\
import sys
url, token, email, page_size = sys.argv[1:5]
from singer import metadata
import tap_copper.client
from tap_copper.discover import discover
from tap_copper.sync import sync

_init = tap_copper.client.Client.__init__

def _init_at_url(self, config):
    _init(self, config)
    self.base_url = url  # the tap hard-codes https://api.copper.com/developer_api/v1

tap_copper.client.Client.__init__ = _init_at_url
config = {"api_key": token, "user_email": email, "start_date": "2000-01-01T00:00:00Z",
          "page_size": int(page_size)}
catalog = discover(config=None)  # None: no probe requests to the real API
for entry in catalog.streams:
    mdata = metadata.to_map(entry.metadata)
    mdata = metadata.write(mdata, (), "selected", entry.tap_stream_id == "opportunities")
    entry.metadata = metadata.to_list(mdata)
with tap_copper.client.Client(config) as client:
    sync(client=client, config=config, catalog=catalog, state={})
"""

#: The page loop Copper's docs describe, with requests; one JSON line a record.
REQUESTS_LOOP = """\
import json, sys
import requests
url, token, email, page_size, out = sys.argv[1:6]
page_size = int(page_size)
headers = {"X-PW-AccessToken": token, "X-PW-Application": "developer_api",
           "X-PW-UserEmail": email, "Content-Type": "application/json"}
with requests.Session() as session, open(out, "w") as file:
    page = 1
    while True:
        response = session.post(url + "/opportunities/search", headers=headers,
                                json={"page_number": page, "page_size": page_size}, timeout=60)
        response.raise_for_status()
        records = response.json()
        for record in records:
            file.write(json.dumps(record) + "\\n")
        if len(records) < page_size:
            break
        page += 1
"""

CLIENTS = ("tap-copper", "requests loop", "copper-async")
COLUMNS: tuple[str, ...] = ("client", "status", "delivered", "of N", "unique", "missing")
COLUMNS += ("requests", "records/s", "CPU s", "CPU ms/1k rec", "peak RSS MiB")
#: The peers' distributions, whose versions the report gives.
PEER_PACKAGES = ("requests", "tap-copper", "singer-python")
_VERSIONS = """\
import importlib.metadata, json, sys
def version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
print(json.dumps({name: version(name) for name in sys.argv[1:]}))
"""
_MODULES = {"tap-copper": "tap_copper", "requests loop": "requests", "copper-async": None}


def read_ids(path: Path, *, singer: bool) -> list[int]:
    """The record ids in an output file: JSON lines, or Singer RECORD messages."""
    ids: list[int] = []
    if not path.exists():
        return ids
    with open(path, "rb") as file:
        for line in file:
            if not line.strip():
                continue
            message = orjson.loads(line)
            if singer:
                if message.get("type") == "RECORD":
                    ids.append(int(message["record"]["id"]))
            else:
                ids.append(int(message["id"]))
    return ids


def peer_versions(python: str) -> dict[str, str | None]:
    """The peers' installed versions in ``python``'s environment (None: not installed)."""
    probe = subprocess.run(
        [python, "-c", _VERSIONS, *PEER_PACKAGES],
        capture_output=True,
        check=False,
        timeout=120,
    )
    if probe.returncode != 0:
        return dict.fromkeys(PEER_PACKAGES)
    versions: dict[str, str | None] = json.loads(probe.stdout)
    return versions


def _installed(python: str, module: str) -> bool:
    probe = subprocess.run(
        [python, "-c", f"import {module}"], capture_output=True, check=False, timeout=120
    )
    return probe.returncode == 0


def run_client(
    name: str,
    server: _common.FakeServerProcess,
    folder: Path,
    *,
    python: str,
    peer_python: str,
    page_size: int,
    cap: int,
) -> dict[str, Any]:
    """Run one client against ``server``; its figures, or why there are none."""
    module = _MODULES[name]
    interpreter = peer_python if module is not None else python
    if module is not None and not _installed(interpreter, module):
        return {"client": name, "status": f"not installed ({module} in {interpreter})"}
    out = folder / f"{name.replace(' ', '-')}.out"
    stdout: Any = subprocess.DEVNULL
    if name == "tap-copper":
        script = folder / "tap_wrapper.py"
        script.write_text(TAP_WRAPPER, encoding="utf-8")
        command = [interpreter, str(script), server.url, server.token, server.email]
        command.append(str(page_size))
    elif name == "requests loop":
        script = folder / "requests_loop.py"
        script.write_text(REQUESTS_LOOP, encoding="utf-8")
        command = [interpreter, str(script), server.url, server.token, server.email]
        command += [str(page_size), str(out)]
    else:
        command = [interpreter, "-m", "copper_async", "export", "--out", str(out)]
        command += ["--rate-limit", "none", "--base-url", server.url, "--token", server.token]
        command += ["--email", server.email, "--page-size", str(page_size), "--cap", str(cap)]
        command.append("--quiet")
    before = server.stats()["requests"]
    if name == "tap-copper":
        with open(out, "wb") as handle:
            run = _common.run_child(command, stdout=handle)
    else:
        run = _common.run_child(command, stdout=stdout)
    ids = read_ids(out, singer=name == "tap-copper")
    return figures(name, run, ids, server.stats()["requests"] - before)


def figures(name: str, run: _common.ChildRun, ids: list[int], requests: int) -> dict[str, Any]:
    """One client's result: its run, the ids it delivered, the requests it made."""
    status = "ok"
    if run.returncode != 0:
        last = run.stderr_tail.splitlines()[-1] if run.stderr_tail else ""
        status = f"failed (exit {run.returncode}): {last[:160]}"
    return {
        "client": name,
        "status": status,
        "delivered": len(ids),
        "unique": len(set(ids)),
        "ids": ids,
        "requests": requests,
        "seconds": run.wall_seconds,
        "cpu_seconds": run.cpu_seconds,
        "peak_rss": run.max_rss_bytes,
        "stderr_tail": run.stderr_tail if run.returncode else "",
    }


def result_row(result: dict[str, Any], n: int) -> list[Any]:
    """One client's row of :data:`COLUMNS` (figures empty when it did not run)."""
    if "delivered" not in result:
        return [result["client"], result["status"], *[None] * (len(COLUMNS) - 2)]
    delivered, cpu = result["delivered"], result["cpu_seconds"]
    return [
        result["client"],
        result["status"],
        delivered,
        delivered / n,
        result["unique"],
        result["missing"],
        result["requests"],
        delivered / result["seconds"],
        cpu,
        1000 * cpu / delivered * 1000 if delivered else None,
        result["peak_rss"] / 2**20,
    ]


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The data served (N, cap, page size, seed) and the peers' interpreter."""
    parser.add_argument("--records", type=_common.positive_int, default=250_000)
    parser.add_argument("--cap", type=_common.positive_int, default=100_000)
    parser.add_argument("--page-size", type=_common.positive_int, default=200)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument(
        "--peer-python",
        default=sys.executable,
        help="interpreter that has the peers (tap-copper, requests) installed (default: this one)",
    )


def _truth(server: _common.FakeServerProcess) -> set[int]:
    import urllib.request

    request = urllib.request.Request(
        f"{server.root}/_fake/truth",
        data=b"{}",
        method="POST",
        headers={
            "X-PW-AccessToken": server.token,
            "X-PW-UserEmail": server.email,
            "X-PW-Application": "developer_api",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return set(json.loads(response.read()))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="tap-copper, a plain requests page loop and copper-async export against "
        "the same fake server: records delivered, requests, records/s, CPU seconds."
    )
    add_data_options(parser)
    parser.add_argument(
        "--past-cap",
        choices=["empty", "error"],
        default="empty",
        help="the server's answer past the cap (empty page, or 422)",
    )
    parser.add_argument(
        "--client", action="append", choices=CLIENTS, help="repeatable (default: all)"
    )
    _common.add_json_option(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a table; 0 when copper-async delivered every record once."""
    args = _parser().parse_args(argv)
    clients = args.client or list(CLIENTS)
    server_args = ["--generate", str(args.records), "--seed", str(args.seed)]
    server_args += ["--cap", str(args.cap), "--past-cap", args.past_cap]
    results = []
    with (
        _common.fake_server_process(server_args) as server,
        tempfile.TemporaryDirectory(prefix="copper-alt-") as folder,
    ):
        truth = _truth(server)
        for name in clients:
            result = run_client(
                name,
                server,
                Path(folder),
                python=sys.executable,
                peer_python=args.peer_python,
                page_size=args.page_size,
                cap=args.cap,
            )
            ids = result.pop("ids", None)
            if ids is not None:
                result["correct_unique"] = len(set(ids) & truth)
                result["missing"] = len(truth) - result["correct_unique"]
            print(f"  {name}: {result['status']}")
            results.append(result)
    n = len(truth)
    columns = list(COLUMNS)
    rows = [result_row(r, n) for r in results]
    ours = next((r for r in results if r["client"] == "copper-async"), None)
    checks = []
    if ours is not None and "delivered" in ours:
        complete = ours["delivered"] == n and ours["correct_unique"] == n
        checks.append(_common.check("copper-async every record once", int(complete), "1", complete))
    notes = [
        f"N = {n:,} generated records, cap {args.cap:,} (past it: {args.past_cap} answer), page "
        f"size {args.page_size} for every client, no rate limit or latency; fake server in "
        "its own process. Each client is a child process measured alone (os.wait4); "
        "records/s = delivered / wall time, process start-up included.",
        "tap-copper runs unmodified except its base URL (a constant in its Client), set by "
        "a wrapper; its page size comes from its `page_size` config key (default 100). It "
        "pages page_number 1, 2, ... with no sort or date window, so it stops at the cap; "
        "it also flushes stdout once per record (Singer).",
    ]
    for r in results:
        if r.get("stderr_tail"):
            notes.append(f"{r['client']} stderr: {r['stderr_tail'][-600:]}")
    print(notes[0])
    _common.print_table(columns, rows)
    _common.print_checks(checks)
    config = {
        "records": n,
        "cap": args.cap,
        "page_size": args.page_size,
        "past_cap": args.past_cap,
        "peer_python": args.peer_python,
    }
    payload = _common.result_payload(
        "alternatives",
        "Against the alternatives",
        config=config,
        columns=columns,
        rows=rows,
        checks=checks,
        notes=notes,
        results=results,
        peer_versions=peer_versions(args.peer_python),
    )
    _common.write_json(args.json, payload)
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
