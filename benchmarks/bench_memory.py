"""Benchmark: peak memory of an export, by the number of records.

For each size (100,000 and 1,000,000 records by default) a fake server with
that many generated records runs in its own process (``copper-async
fake-server``, so its memory is not counted) and ``copper-async export`` to a
JSON-lines file runs as another child process, unthrottled; its peak RSS
comes from ``os.wait4`` (that child's own ``ru_maxrss``). The ratio of the
largest size's peak to the smallest's shows whether memory grows with N
(targets: <= 1.2, and under 100 MB, i.e. 10**8 bytes = 95.4 MiB; every size
is shown in MiB). The peak RSS of a process that only imports the CLI is
shown as the floor. The file is checked to hold N lines.

``--trace`` also runs each export under ``tracemalloc`` and lists where the
memory alive at the peak was allocated (slower; for investigating a miss).

Run ``python benchmarks/bench_memory.py --help``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

__all__ = ["TRACE_SCRIPT", "export_command", "main", "measure_size"]

TARGET_RATIO = 1.2
#: "Under 100 MB": decimal megabytes, the stricter reading (95.4 MiB).
TARGET_BYTES = 100 * 10**6
MIB = 2**20

#: Runs the export CLI under tracemalloc; prints the top allocation sites at the peak.
TRACE_SCRIPT = """\
import gc, sys, tracemalloc
tracemalloc.start(8)
from copper_async import _engine as _search
_original = _search.Search._take_one
_state = {"peak": 0, "snapshot": None}

async def _take_one(self):
    await _original(self)
    current, _ = tracemalloc.get_traced_memory()
    if current > _state["peak"] + 2**20:
        _state["peak"] = current
        _state["snapshot"] = tracemalloc.take_snapshot()

_search.Search._take_one = _take_one
from copper_async.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    snapshot = _state["snapshot"]
    if snapshot is not None:
        print(f"TRACE peak traced {_state['peak'] / 2**20:.1f} MiB", file=sys.stderr)
        for stat in snapshot.statistics("lineno")[:12]:
            print(f"TRACE {stat.size / 2**20:8.2f} MiB {stat.count:>9} blocks  "
                  f"{stat.traceback[0]}", file=sys.stderr)
"""


def export_command(
    python: str, url: str, token: str, email: str, out: Path, *, cap: int
) -> list[str]:
    """``copper-async export`` of everything to ``out``, unthrottled and quiet."""
    return [
        python,
        "-m",
        "copper_async",
        "export",
        "--out",
        str(out),
        "--rate-limit",
        "none",
        "--cap",
        str(cap),
        "--base-url",
        url,
        "--token",
        token,
        "--email",
        email,
        "--quiet",
    ]


def _lines(path: Path) -> int:
    with open(path, "rb") as file:
        return sum(1 for line in file if line.strip())


def measure_size(records: int, *, cap: int, seed: int, trace: bool) -> dict[str, Any]:
    """Serve ``records`` from another process; export them; peak RSS and timings."""
    server_args = ["--generate", str(records), "--seed", str(seed), "--cap", str(cap)]
    result: dict[str, Any] = {"records": records}
    with (
        _common.fake_server_process(server_args) as server,
        tempfile.TemporaryDirectory(prefix="copper-bench-") as folder,
    ):
        out = Path(folder) / "export.jsonl"
        command = export_command(
            sys.executable, server.url, server.token, server.email, out, cap=cap
        )
        run = _common.run_child(command)
        result.update(
            returncode=run.returncode,
            peak_rss=run.max_rss_bytes,
            seconds=run.wall_seconds,
            cpu_seconds=run.cpu_seconds,
            written=_lines(out) if out.exists() else 0,
            error=run.stderr_tail if run.returncode else "",
        )
        if trace:
            out.unlink(missing_ok=True)
            traced = _common.run_child([sys.executable, "-c", TRACE_SCRIPT, *command[3:]])
            result["trace"] = [
                line.removeprefix("TRACE ")
                for line in traced.stderr_tail.splitlines()
                if line.startswith("TRACE ")
            ]
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Peak RSS of copper-async export (JSON lines) by N, the fake server "
        "in another process."
    )
    parser.add_argument(
        "--sizes",
        type=_common.positive_int,
        nargs="+",
        default=[100_000, 1_000_000],
        help="record counts (default: 100000 1000000)",
    )
    parser.add_argument("--cap", type=_common.positive_int, default=100_000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--trace", action="store_true", help="also list allocations at the peak")
    _common.add_json_option(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a table; 0 when every export ran and wrote N records."""
    args = _parser().parse_args(argv)
    sizes = sorted(set(args.sizes))
    floor = _common.run_child([sys.executable, "-c", "import copper_async.cli"])
    results = []
    for size in sizes:
        result = measure_size(size, cap=args.cap, seed=args.seed, trace=args.trace)
        print(
            f"  {size:,} records: peak RSS {result['peak_rss'] / MIB:.1f} MiB "
            f"in {result['seconds']:.1f} s"
        )
        results.append(result)
    columns = ["records", "written", "peak RSS MiB", "over import MiB", "seconds", "CPU s"]
    columns += ["records/s"]
    rows = [
        [
            r["records"],
            r["written"],
            r["peak_rss"] / MIB,
            (r["peak_rss"] - floor.max_rss_bytes) / MIB,
            r["seconds"],
            r["cpu_seconds"],
            r["records"] / r["seconds"],
        ]
        for r in results
    ]
    largest, smallest = results[-1], results[0]
    ratio = largest["peak_rss"] / smallest["peak_rss"]
    checks = []
    if len(results) > 1:
        checks.append(
            _common.check(
                f"peak RSS {largest['records']:,} / {smallest['records']:,}",
                ratio,
                f"<= {TARGET_RATIO}",
                ratio <= TARGET_RATIO,
            )
        )
    checks.append(
        _common.check(
            f"peak RSS at {largest['records']:,} (MiB)",
            largest["peak_rss"] / MIB,
            f"< {TARGET_BYTES / MIB:.1f} ({TARGET_BYTES / 10**6:g} MB)",
            largest["peak_rss"] < TARGET_BYTES,
        )
    )
    checks += [
        _common.check(
            f"{r['records']:,} written",
            r["written"],
            f"= {r['records']:,}",
            r["written"] == r["records"],
        )
        for r in results
    ]
    notes = [
        f"copper-async export --format jsonl --rate-limit none, cap {args.cap:,}, the fake "
        f"server in another process; peak RSS of the export process alone (os.wait4); "
        f"a process importing copper_async.cli peaks at {floor.max_rss_bytes / MIB:.1f} MiB.",
    ]
    for r in results:
        if r["error"]:
            notes.append(f"{r['records']:,}: exit {r['returncode']}: {r['error']}")
        if r.get("trace"):
            notes.append(f"{r['records']:,} tracemalloc at the peak: " + " | ".join(r["trace"]))
    print(notes[0])
    _common.print_table(columns, rows)
    _common.print_checks(checks)
    for note in notes[1:]:
        print(note)
    config = {"sizes": sizes, "cap": args.cap, "seed": args.seed, "cpus": os.cpu_count()}
    payload = _common.result_payload(
        "memory",
        "Peak memory of an export",
        config=config,
        columns=columns,
        rows=rows,
        checks=checks,
        notes=notes,
        results=results,
        import_floor_bytes=floor.max_rss_bytes,
        target_bytes=TARGET_BYTES,
    )
    _common.write_json(args.json, payload)
    return 0 if all(r["written"] == r["records"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
