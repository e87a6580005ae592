"""Run the whole benchmark suite and write its report.

Runs, each as its own process (``--quick`` for small sizes):

1. ``bench_rate_limit.py``: rate-limit saturation,
2. ``bench_requests.py``: requests per record past the cap,
3. ``bench_cost.py``: cost per record against a bare loop,
4. ``bench_memory.py``: peak RSS of an export by N,
5. ``bench_alternatives.py``: tap-copper and a requests loop against this library,
6. ``bench_tap.py``: ``copper-async tap`` beside tap-copper, Singer to Singer,

then writes, into ``--results`` (``benchmarks/results/`` by default; a new
temporary folder with ``--quick``, so a smoke run never replaces the
committed figures), ``RESULTS.md`` (machine, versions, date, one table per
benchmark with its targets marked PASS or MISS; regenerated on every run,
never edited by hand), ``results.json`` (every script's results) and, when
matplotlib is importable, ``rate_limit.png`` (requests over time against the
limit) and ``memory.png`` (peak RSS by N).

The machine, date and package versions in the report are those each script
recorded in its JSON when it ran, never the renderer's: ``--no-run`` only
renders the report again from the JSON files already in the results folder
(and the run log kept in its ``results.json``). ``nox -s bench`` runs this.

Run ``python benchmarks/run_all.py --help``.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import importlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import bench_memory

__all__ = [
    "BENCHMARKS",
    "DEFAULT_RESULTS",
    "QUICK",
    "main",
    "memory_target",
    "plot_memory",
    "plot_rate_limit",
    "render_markdown",
]

HERE = Path(__file__).resolve().parent
#: Where a full run writes (the committed figures).
DEFAULT_RESULTS = HERE / "results"
#: Name -> script, in the order they run and are reported.
BENCHMARKS = {
    "rate_limit": "bench_rate_limit.py",
    "requests": "bench_requests.py",
    "cost": "bench_cost.py",
    "memory": "bench_memory.py",
    "alternatives": "bench_alternatives.py",
    "tap": "bench_tap.py",
    "sync": "bench_sync.py",
}
#: The small sizes of ``--quick`` (a smoke run of every script, about half a minute).
QUICK: dict[str, list[str]] = {
    "rate_limit": [
        "--max-requests",
        "20",
        "--scale",
        "10",
        "--duration",
        "3",
        "--page-size",
        "5",
        "--latency",
        "0.02",
        "--jitter",
        "0.01",
    ],
    "requests": [
        "--records",
        "3000",
        "--cap",
        "500",
        "--page-size",
        "20",
        "--hot-spots",
        "2",
        "--hot-spot-size",
        "700",
    ],
    "cost": ["--records", "2000", "--page-size", "50", "--rounds", "3"],
    "memory": ["--sizes", "2000", "6000", "--cap", "1000"],
    "alternatives": ["--records", "3000", "--cap", "1000"],
    "tap": ["--records", "3000", "--cap", "1000"],
    "sync": ["--quick"],
}
#: Arguments of a full run: the sync's kill -9 reliability part is a target of its own.
FULL: dict[str, list[str]] = {"sync": ["--stress"]}


def _run(name: str, extra: list[str], results: Path, *, quick: bool) -> dict[str, Any]:
    """Run one script; its exit code, seconds and sizes (its output goes to ours)."""
    command = [
        sys.executable,
        str(HERE / BENCHMARKS[name]),
        "--json",
        str(results / f"{name}.json"),
    ]
    print(f"== {name}: {' '.join(command[1:] + extra)}", flush=True)
    started = time.perf_counter()
    completed = subprocess.run([*command, *extra], check=False)
    seconds = time.perf_counter() - started
    print(f"== {name}: exit {completed.returncode} after {seconds:.0f} s", flush=True)
    return {"returncode": completed.returncode, "seconds": round(seconds, 1), "quick": quick}


def _md_cell(value: Any) -> str:
    return _common.format_table(["x"], [[value]])[2].strip().replace("|", "\\|")


def _md_table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_md_cell(value) for value in row) + " |" for row in rows]
    return lines


def _distinct(values: list[Any]) -> str:
    """The values, each once, in order, joined by " / "."""
    return " / ".join(str(value) for value in dict.fromkeys(values))


def _machine_lines(payloads: dict[str, dict[str, Any]]) -> list[str]:
    """Where and when the figures were measured, from what each script recorded."""
    machines = [payloads[name]["machine"] for name in BENCHMARKS if name in payloads]
    if not machines:
        return ["- Date: no benchmark result in this folder"]
    dates = sorted(machine["date"] for machine in machines)
    when = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    # The peers' own line says where they ran (maybe --peer-python, not this interpreter).
    peers: dict[str, str | None] = payloads.get("alternatives", {}).get("peer_versions") or {}
    versions: dict[str, list[str | None]] = {}
    for machine in machines:
        for package, version in machine["packages"].items():
            if package not in peers:
                versions.setdefault(package, []).append(version)
    packages = ", ".join(
        f"{package} {_distinct([v for v in found if v])}"
        for package, found in versions.items()
        if any(found)
    )
    missing = [package for package, found in versions.items() if not any(found)]
    lines = [
        f"- Date: {when} (when the benchmarks ran)",
        f"- Machine: {_distinct([m['cores'] for m in machines])} cores, "
        f"{_distinct([m['platform'] for m in machines])}",
        "- Python: " + _distinct([f"{m['implementation']} {m['python']}" for m in machines]),
        f"- Packages: {packages}" + (f" (not installed: {', '.join(missing)})" if missing else ""),
    ]
    if peers:
        shown = ", ".join(
            f"{package} {version or 'not installed'}" for package, version in peers.items()
        )
        lines.append(f"- Peers (in the interpreter that ran them): {shown}")
    return lines


def render_markdown(payloads: dict[str, dict[str, Any]], runs: dict[str, dict[str, Any]]) -> str:
    """RESULTS.md from each script's JSON result (and how its run went).

    Everything about where and when comes from the payloads, recorded as each
    script ran: rendering again later changes nothing.
    """
    quick = [name for name, run in runs.items() if run.get("quick") and name in payloads]
    lines = [
        "# Benchmark results",
        "",
        "<!-- Generated by benchmarks/run_all.py: do not edit by hand; rerun it "
        "(`nox -s bench`). -->",
        "",
        "**Generated by `benchmarks/run_all.py` on every run; do not edit by hand.** "
        "Regenerate with `nox -s bench` (or `python benchmarks/run_all.py`).",
        "",
        *_machine_lines(payloads),
    ]
    if quick:
        lines.append(f"- **--quick** (small sizes, a smoke run): {', '.join(quick)}")
    lines += [
        "",
        "## Targets",
        "",
        "| benchmark | target | value | wanted | result |",
        "|---|---|---|---|---|",
    ]
    for name in BENCHMARKS:
        payload = payloads.get(name)
        if payload is None:
            lines.append(f"| {name} | (no result) | - | - | MISS |")
            continue
        for item in payload["checks"]:
            result = "PASS" if item["passed"] else "MISS"
            lines.append(
                f"| {name} | {item['name']} | {_md_cell(item['value'])} | {item['target']} "
                f"| {result} |"
            )
    for name, script in BENCHMARKS.items():
        payload = payloads.get(name)
        run = runs.get(name, {})
        lines += ["", f"## {payload['title'] if payload else name} (`{script}`)", ""]
        if run:
            sizes = " (--quick sizes)" if run.get("quick") else ""
            lines.append(f"Exit {run['returncode']} after {run['seconds']} s{sizes}.")
            lines.append("")
        if payload is None:
            lines.append("No result: the script did not write its JSON (see its output).")
            continue
        machine = payload["machine"]
        lines += [
            f"Ran {machine['date']}, load average at the end {machine['load_average_1m']}.",
            "",
        ]
        config = ", ".join(f"{key}={value}" for key, value in payload["config"].items())
        lines += [f"Configuration: {config}.", ""]
        lines += _md_table(payload["columns"], payload["rows"])
        lines.append("")
        for item in payload["checks"]:
            result = "PASS" if item["passed"] else "MISS"
            lines.append(
                f"- **{result}** {item['name']}: {_md_cell(item['value'])} (target "
                f"{item['target']})"
            )
        for note in payload["notes"]:
            lines.append(f"- {note}")
        plot = {"rate_limit": "rate_limit.png", "memory": "memory.png"}.get(name)
        if plot and payload.get("plotted"):
            lines += ["", f"![{name}]({plot})"]
    return "\n".join(lines) + "\n"


def _pyplot() -> Any:
    try:
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")  # files only, no display
        return importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return None


def plot_rate_limit(payload: dict[str, Any], path: Path) -> bool:
    """Requests over time against the limit; False when matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        return False
    config = payload["config"]
    times = payload["series"]["send_times"]
    period, limit = config["period"], config["max_requests"]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    top.plot(times, range(1, len(times) + 1), label="requests sent (cumulative)")
    if times:
        top.plot([0, times[-1]], [0, times[-1] * limit / period], "--", label="the limit's rate")
    top.set_ylabel("requests")
    top.legend(loc="upper left")
    top.set_title(
        f"Rate limit {limit} per {period:g} s (scale {config['scale']:g} of "
        f"{limit} per {config['real_period']:g} s), latency {config['latency']:g} s"
    )
    rolling = [index + 1 - bisect.bisect_right(times, t - period) for index, t in enumerate(times)]
    bottom.plot(times, rolling, label=f"requests in the trailing {period:g} s")
    bottom.axhline(limit, color="red", linestyle="--", label=f"limit ({limit})")
    bottom.set_xlabel("seconds since the first request")
    bottom.set_ylabel("requests per window")
    bottom.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def memory_target(payload: dict[str, Any]) -> tuple[float, str]:
    """The memory target in MiB (the plot's unit) and its legend label."""
    # Results written before the target was recorded used the same one.
    target = payload.get("target_bytes", bench_memory.TARGET_BYTES)
    return target / 2**20, f"target: {target / 10**6:g} MB = {target / 2**20:.1f} MiB"


def plot_memory(payload: dict[str, Any], path: Path) -> bool:
    """Peak RSS of the export by N; False when matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        return False
    results = payload["results"]
    sizes = [r["records"] for r in results]
    peaks = [r["peak_rss"] / 2**20 for r in results]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot(sizes, peaks, "o-", label="copper-async export, peak RSS")
    target, label = memory_target(payload)
    axes.axhline(target, color="red", linestyle="--", label=label)
    axes.axhline(
        payload["import_floor_bytes"] / 2**20,
        color="gray",
        linestyle=":",
        label="importing the CLI only",
    )
    axes.set_xscale("log")
    axes.set_xlabel("records exported")
    axes.set_ylabel("peak RSS (MiB)")
    axes.set_ylim(bottom=0)
    axes.legend()
    axes.set_title("Peak RSS of an export by N")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Run every benchmark and write RESULTS.md, results.json and plots."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes (a smoke run), into a new temporary folder unless --results is given",
    )
    parser.add_argument(
        "--results",
        type=Path,
        help="output folder (default: benchmarks/results; with --quick, a temporary folder)",
    )
    parser.add_argument(
        "--only", action="append", choices=list(BENCHMARKS), help="repeatable (default: all)"
    )
    parser.add_argument(
        "--peer-python",
        help="interpreter with tap-copper and requests, for bench_alternatives.py and bench_tap.py",
    )
    parser.add_argument(
        "--no-run", action="store_true", help="only render the report from existing JSON"
    )
    return parser


def _results_folder(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    if args.results is not None:
        return Path(args.results)
    if args.quick:
        if args.no_run:
            parser.error("--no-run --quick renders nothing new: give the --results to render")
        # Smoke figures must never replace the committed ones.
        return Path(tempfile.mkdtemp(prefix="copper-bench-quick-"))
    return DEFAULT_RESULTS


def _previous_runs(path: Path) -> dict[str, dict[str, Any]]:
    """The run log of the last report in the folder (kept by --no-run and --only)."""
    try:
        runs: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["runs"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return runs


def main(argv: list[str] | None = None) -> int:
    """Run the suite, write the report; 0 when every script exited 0 (targets are reported)."""
    parser = _parser()
    args = parser.parse_args(argv)
    results = _results_folder(parser, args)
    results.mkdir(parents=True, exist_ok=True)
    names = args.only or list(BENCHMARKS)
    runs = _previous_runs(results / "results.json")
    ran: list[str] = []
    if not args.no_run:
        for name in names:
            (results / f"{name}.json").unlink(missing_ok=True)
            extra = list(QUICK[name]) if args.quick else list(FULL.get(name, []))
            if name in ("alternatives", "tap") and args.peer_python:
                extra += ["--peer-python", args.peer_python]
            runs[name] = _run(name, extra, results, quick=args.quick)
            ran.append(name)
    payloads: dict[str, dict[str, Any]] = {}
    for name in BENCHMARKS:
        path = results / f"{name}.json"
        if path.exists():
            payloads[name] = json.loads(path.read_text(encoding="utf-8"))
    if "rate_limit" in payloads:
        payloads["rate_limit"]["plotted"] = plot_rate_limit(
            payloads["rate_limit"], results / "rate_limit.png"
        )
    if "memory" in payloads:
        payloads["memory"]["plotted"] = plot_memory(payloads["memory"], results / "memory.png")
    runs = {name: run for name, run in runs.items() if name in BENCHMARKS}
    markdown = render_markdown(payloads, runs)
    (results / "RESULTS.md").write_text(markdown, encoding="utf-8")
    combined = {
        "generated_by": "benchmarks/run_all.py",
        "rendered_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": any(run.get("quick") for name, run in runs.items() if name in payloads),
        "runs": runs,
        "benchmarks": payloads,
    }
    _common.write_json(results / "results.json", combined)
    print(f"wrote {results / 'RESULTS.md'} and {results / 'results.json'}")
    failed = [name for name in ran if runs[name]["returncode"] != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
