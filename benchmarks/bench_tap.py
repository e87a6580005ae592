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


def run_copper_tap(
    server: _common.FakeServerProcess, folder: Path, *, page_size: int, cap: int
) -> dict[str, Any]:
    """Run ``copper-async tap`` against ``server``; its figures."""
    config = folder / "tap.json"
    config.write_bytes(
        orjson.dumps(
            {
                "access_token": server.token,
                "user_email": server.email,
                "base_url": server.url,
                "rate_limit": "none",
                "page_size": page_size,
                "cap": cap,
            }
        )
    )
    out = folder / "copper-async-tap.out"
    before = server.stats()["requests"]
    with open(out, "wb") as handle:
        command = [sys.executable, "-m", "copper_async", "tap", "--config", str(config)]
        run = _common.run_child(command, stdout=handle)
    ids = bench_alternatives.read_ids(out, singer=True)
    status = "ok" if run.returncode == 0 else f"failed (exit {run.returncode})"
    return {
        "client": "copper-async tap",
        "status": status,
        "delivered": len(ids),
        "unique": len(set(ids)),
        "ids": ids,
        "requests": server.stats()["requests"] - before,
        "seconds": run.wall_seconds,
        "cpu_seconds": run.cpu_seconds,
        "peak_rss": run.max_rss_bytes,
        "stderr_tail": run.stderr_tail if run.returncode else "",
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="copper-async tap beside tap-copper on one fake server: records "
        "delivered, requests, records/s."
    )
    parser.add_argument("--records", type=_common.positive_int, default=250_000)
    parser.add_argument("--cap", type=_common.positive_int, default=100_000)
    parser.add_argument("--page-size", type=_common.positive_int, default=200)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument(
        "--peer-python",
        default=sys.executable,
        help="interpreter with tap-copper installed (default: this one)",
    )
    _common.add_json_option(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run both taps; print a table; 0 when this tap delivered every record once."""
    args = _parser().parse_args(argv)
    server_args = ["--generate", str(args.records), "--seed", str(args.seed)]
    server_args += ["--cap", str(args.cap)]
    results = []
    with (
        _common.fake_server_process(server_args) as server,
        tempfile.TemporaryDirectory(prefix="copper-tap-bench-") as folder,
    ):
        truth = bench_alternatives._truth(server)
        results.append(
            bench_alternatives.run_client(
                "tap-copper",
                server,
                Path(folder),
                python=sys.executable,
                peer_python=args.peer_python,
                page_size=args.page_size,
                cap=args.cap,
            )
        )
        results.append(run_copper_tap(server, Path(folder), page_size=args.page_size, cap=args.cap))
    n = len(truth)
    columns = ["tap", "status", "delivered", "of N", "unique", "missing", "requests"]
    columns += ["records/s", "CPU s", "peak RSS MiB"]
    rows = []
    for result in results:
        ids = result.pop("ids", None)
        if ids is None:
            rows.append([result["client"], result["status"], *[None] * (len(columns) - 2)])
            continue
        result["missing"] = n - len(set(ids) & truth)
        rows.append(
            [
                result["client"],
                result["status"],
                result["delivered"],
                result["delivered"] / n,
                result["unique"],
                result["missing"],
                result["requests"],
                result["delivered"] / result["seconds"],
                result["cpu_seconds"],
                result["peak_rss"] / 2**20,
            ]
        )
    ours = results[-1]
    complete = ours.get("delivered") == n and ours.get("missing") == 0
    checks = [_common.check("copper-async tap: every record once", int(complete), "1", complete)]
    notes = [
        f"N = {n:,} generated records, cap {args.cap:,}, page size {args.page_size}, no rate "
        "limit or latency; each tap a child process measured alone (os.wait4), Singer "
        "messages written to a file; records/s = RECORD messages / wall time."
    ]
    print(notes[0])
    _common.print_table(columns, rows)
    _common.print_checks(checks)
    payload = _common.result_payload(
        "tap",
        "Singer taps on one fake server",
        config=vars(args) | {"json": str(args.json) if args.json else None},
        columns=columns,
        rows=rows,
        checks=checks,
        notes=notes,
        results=results,
    )
    _common.write_json(args.json, payload)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
