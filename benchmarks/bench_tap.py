"""Benchmark: this tap beside tap-copper, on the same fake server and data.

One fake server (its own process) serves N generated records (250,000 by
default) under the real 100,000-record search cap, with no rate limit or
latency. Each tap runs as a child process whose Singer messages go to a
file: ``tap-copper`` (PyPI) through the wrapper of ``bench_alternatives``
(which points its hard-coded base URL at the server), and
``copper-async tap`` (``--peer-python``'s environment must hold
tap-copper). Reported: RECORD messages delivered out of N, unique and
missing records, requests, records per second (delivered over wall time,
start-up included), CPU seconds, peak RSS.

Run ``python benchmarks/bench_tap.py --help``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import bench_alternatives

__all__ = ["main", "run_copper_tap"]

TAPS = ("tap-copper", "copper-async tap")
TITLE = "Singer taps on one fake server"


def run_copper_tap(
    server: _common.FakeServerProcess, folder: Path, *, page_size: int, cap: int
) -> dict[str, Any]:
    """Run ``copper-async tap`` against ``server``; its figures."""
    config = folder / "tap.json"
    settings: dict[str, object] = {"access_token": server.token, "user_email": server.email}
    settings |= {"base_url": server.url, "rate_limit": "none", "page_size": page_size, "cap": cap}
    config.write_bytes(orjson.dumps(settings))
    out = folder / "copper-async-tap.out"
    before = server.stats()["requests"]
    with open(out, "wb") as handle:
        command = [sys.executable, "-m", "copper_async", "tap", "--config", str(config)]
        run = _common.run_child(command, stdout=handle)
    ids = bench_alternatives.read_ids(out, singer=True)
    return bench_alternatives.figures(TAPS[-1], run, ids, server.stats()["requests"] - before)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="copper-async tap beside tap-copper on one fake server: records "
        "delivered, requests, records/s."
    )
    bench_alternatives.add_data_options(parser)
    _common.add_json_option(parser)
    return parser


def _run_taps(args: argparse.Namespace) -> tuple[set[int], list[dict[str, Any]]]:
    """Both taps against one fake server: the server's ids and each tap's figures."""
    server_args = ["--generate", str(args.records), "--seed", str(args.seed)]
    server_args += ["--cap", str(args.cap)]
    with (
        _common.fake_server_process(server_args) as server,
        tempfile.TemporaryDirectory(prefix="copper-tap-bench-") as folder,
    ):
        truth = bench_alternatives._truth(server)
        sizes = {"page_size": args.page_size, "cap": args.cap}  # the same for both taps
        interpreters = {"python": sys.executable, "peer_python": args.peer_python}
        peer = bench_alternatives.run_client(TAPS[0], server, Path(folder), **interpreters, **sizes)
        ours = run_copper_tap(server, Path(folder), **sizes)
    for result in (peer, ours):
        ids = result.pop("ids", None)
        if ids is not None:
            result["missing"] = len(truth) - len(set(ids) & truth)
    return truth, [peer, ours]


def main(argv: list[str] | None = None) -> int:
    """Run both taps; print a table; 0 when this tap delivered every record once."""
    args = _parser().parse_args(argv)
    truth, results = _run_taps(args)
    n = len(truth)
    rows = [bench_alternatives.result_row(result, n) for result in results]
    ours = results[-1]
    complete = ours.get("unique") == ours.get("delivered") == n and ours.get("missing") == 0
    checks = [_common.check("copper-async tap: every record once", int(complete), "1", complete)]
    notes = [
        f"N = {n:,} generated records, cap {args.cap:,}, page size {args.page_size}, no rate "
        "limit or latency; each tap a child process measured alone (os.wait4), Singer "
        "messages written to a file; records/s = RECORD messages / wall time."
    ]
    notes += [
        f"{r['client']} stderr: {r['stderr_tail'][-600:]}" for r in results if r.get("stderr_tail")
    ]
    print(notes[0])
    _common.print_table(bench_alternatives.COLUMNS, rows)
    _common.print_checks(checks)
    config = vars(args) | {"json": str(args.json) if args.json else None}
    payload = _common.result_payload(
        "tap",
        "Singer taps on one fake server",
        config=config,
        columns=bench_alternatives.COLUMNS,
        rows=rows,
        checks=checks,
        notes=notes,
    )
    payload["results"] = results
    _common.write_json(args.json, payload)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
