"""Smoke runs of every benchmark script at tiny sizes, and their pure helpers.

Each script's ``main([...])`` runs once (a module fixture) with sizes small
enough for a few seconds, against real loopback fake servers (in this
process or a child process, as each script does); the tests then read the
JSON it wrote. ``run_all.py`` renders its report from those JSON files.
The requests-loop peer must run (``requests`` is a test dependency);
tap-copper runs where it is installed and is skipped, saying so, elsewhere.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import logging
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from copper_async._ratelimit import RateLimit

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


common = _load("_common")
rate_limit = _load("bench_rate_limit")
requests_bench = _load("bench_requests")
cost = _load("bench_cost")
memory = _load("bench_memory")
alternatives = _load("bench_alternatives")
tap_bench = _load("bench_tap")
sync_bench = _load("bench_sync")
stress = _load("stress")
run_all = _load("run_all")

# Tiny sizes: the whole module runs in well under 30 s on two cores.
TINY: dict[str, list[str]] = {
    "rate_limit": [
        "--max-requests",
        "200",
        "--period",
        "50",
        "--scale",
        "2",
        "--duration",
        "0.8",
        "--page-size",
        "4",
        "--latency",
        "0.01",
        "--jitter",
        "0.005",
    ],
    "requests": [
        "--records",
        "600",
        "--cap",
        "100",
        "--page-size",
        "10",
        "--hot-spots",
        "1",
        "--hot-spot-size",
        "150",
    ],
    "cost": ["--records", "300", "--page-size", "20", "--rounds", "1"],
    "memory": ["--sizes", "300", "600", "--cap", "200"],
    "alternatives": ["--records", "500", "--cap", "200", "--page-size", "50"],
    "tap": ["--records", "500", "--cap", "200", "--page-size", "50"],
    "sync": ["--quick", "--skip", "memory,write"],  # all of it: tests/e2e/test_sync_bench.py
}
MAINS = {
    "rate_limit": rate_limit.main,
    "requests": requests_bench.main,
    "cost": cost.main,
    "memory": memory.main,
    "alternatives": alternatives.main,
    "tap": tap_bench.main,
    "sync": sync_bench.main,
}


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """Run every script once at tiny sizes; the results folder and exit codes."""
    folder = tmp_path_factory.mktemp("bench-results")
    codes = {
        name: main([*TINY[name], "--json", str(folder / f"{name}.json")])
        for name, main in MAINS.items()
    }
    return folder, codes


def _payload(suite: tuple[Path, dict[str, int]], name: str) -> dict[str, Any]:
    folder, codes = suite
    assert codes[name] == 0
    payload: dict[str, Any] = json.loads((folder / f"{name}.json").read_text())
    assert payload["benchmark"] == name
    assert all(len(row) == len(payload["columns"]) for row in payload["rows"])
    assert payload["machine"]["cores"] >= 1
    return payload


# -- the scripts, at tiny sizes ----------------------------------------------------


def test_rate_limit_sends_within_the_limit_and_records_the_series(
    suite: tuple[Path, dict[str, int]],
) -> None:
    payload = _payload(suite, "rate_limit")
    # 200 per 25 s: a period long enough that pacing absorbs a loaded machine's jitter.
    assert payload["config"]["period"] == pytest.approx(50.0 / 2)
    times = payload["series"]["send_times"]
    assert len(times) >= 3
    assert times == sorted(times)
    assert times[0] == 0
    # The client holds the same limit as the server: no 429, and never faster than its pace.
    assert payload["counters"]["server_sent_429"] == 0
    interval = RateLimit(200, 25.0).interval
    assert (len(times) - 1) * interval <= times[-1] + interval / 2
    checks = {check["name"]: check for check in payload["checks"]}
    assert checks["429s received"]["passed"]


def test_requests_delivers_every_id_once_in_every_mode(
    suite: tuple[Path, dict[str, int]],
) -> None:
    payload = _payload(suite, "requests")
    results = payload["results"]
    modes = {(r["total_mode"], r["past_cap"]) for r in results}
    assert modes == {
        (total, past)
        for total in requests_bench.TOTAL_MODES
        for past in requests_bench.PAST_CAP_MODES
    }
    for result in results:
        assert result["exactly_once"], result
        assert result["ideal"] == math.ceil(600 / 10)
        assert result["ratio"] == pytest.approx(result["requests"] / result["ideal"])
        assert result["bound"] == pytest.approx(1.01 * 60 + 3 * result["leaf_windows"])
        assert result["requests"] == result["server_requests"]
    # The hot spot (150 records in one second, over the cap of 100) needs a second level.
    assert all(r["hot_spots"] >= 1 for r in results)
    checks = {check["name"]: check for check in payload["checks"]}
    target = "requests <= 1.01 x ideal + 3 x leaf windows"
    assert f"absent/empty {target}" not in checks
    for result in results:
        if result["total_mode"] == "absent":
            continue
        # The bound is the target: at tiny sizes the per-window allowance matters.
        check = checks[f"{result['total_mode']}/{result['past_cap']} {target}"]
        assert check["value"] == result["requests"]
        assert check["passed"] == (result["requests"] <= result["bound"])
        assert f"{result['leaf_windows']:,}" in check["target"]
    # The plain ratio is only information: no check, a clearly labelled note.
    assert not any(name.endswith("requests/ideal") for name in checks)
    assert any(note.startswith("Secondary, not a target") for note in payload["notes"])


def test_cost_reads_the_same_records_in_every_case(suite: tuple[Path, dict[str, int]]) -> None:
    payload = _payload(suite, "cost")
    assert payload["config"]["server"] == "process"
    assert set(payload["samples"]) == set(cost.CASES)
    for samples in payload["samples"].values():
        assert [s["records"] for s in samples] == [300]
    rows = {row[0]: row for row in payload["rows"]}
    assert set(rows) == set(cost.CASES)
    assert cost.CATTRS_CASE == "bare typed (plain cattrs preconf orjson converter)"
    assert all(rows[name][5] is not None and rows[name][5] > 0 for name in rows if "ours" in name)
    # The cattrs baseline is shown and explained, but is not what the target compares.
    assert [check["name"] for check in payload["checks"]] == [
        "ours typed / bare typed (records/s)",
        "ours raw / bare raw (records/s)",
    ]
    assert payload["ratios"][f"ours typed / {cost.CATTRS_CASE}"] > 0
    assert any("Information only" in note and "cattrs" in note for note in payload["notes"])


def test_the_cattrs_baseline_structures_what_the_engine_does() -> None:
    from copper_async.testing import Dataset

    dataset = Dataset.generate(50, seed=2)
    page = [dataset.record(record_id) for record_id in dataset.ids()]
    structured = cost.STRUCTURERS[cost.CATTRS_CASE]
    engine = cost.STRUCTURERS["bare typed"]
    assert structured is not None
    assert engine is not None
    assert structured(page) == engine(page)


def test_memory_measures_each_export_alone(suite: tuple[Path, dict[str, int]]) -> None:
    payload = _payload(suite, "memory")
    assert [r["records"] for r in payload["results"]] == [300, 600]
    for result in payload["results"]:
        assert result["written"] == result["records"]
        # The export's own peak, above a bare import of the CLI, far below a server's.
        assert payload["import_floor_bytes"] <= result["peak_rss"] < 500 * 2**20
    # 100 MB, shown on the plot's MiB axis in MiB.
    assert payload["target_bytes"] == 100 * 10**6
    assert run_all.memory_target(payload) == (
        pytest.approx(95.367, abs=1e-3),
        "target: 100 MB = 95.4 MiB",
    )
    size_check = next(c for c in payload["checks"] if c["name"].startswith("peak RSS at"))
    assert size_check["target"] == "< 95.4 (100 MB)"


def _alternative(suite: tuple[Path, dict[str, int]], name: str) -> dict[str, Any]:
    payload = _payload(suite, "alternatives")
    by_client = {r["client"]: r for r in payload["results"]}
    assert set(by_client) == set(alternatives.CLIENTS)
    result: dict[str, Any] = by_client[name]
    return result


def test_alternatives_runs_ours(suite: tuple[Path, dict[str, int]]) -> None:
    ours = _alternative(suite, "copper-async")
    assert ours["status"] == "ok"
    assert ours["delivered"] == ours["unique"] == ours["correct_unique"] == 500
    assert ours["missing"] == 0


def test_alternatives_runs_the_requests_loop(suite: tuple[Path, dict[str, int]]) -> None:
    # requests is a test dependency: this peer must run, never be "not installed".
    peer = _alternative(suite, "requests loop")
    assert peer["status"] == "ok", peer
    # A plain page loop stops at the cap: 200 of the 500, each once, in 200 / 50 + 1 pages.
    assert peer["delivered"] == peer["unique"] == peer["correct_unique"] == 200
    assert peer["missing"] == 300
    assert peer["requests"] == 5
    versions = _payload(suite, "alternatives")["peer_versions"]
    assert versions["requests"] == importlib.metadata.version("requests")


def test_alternatives_runs_tap_copper(suite: tuple[Path, dict[str, int]]) -> None:
    peer = _alternative(suite, "tap-copper")
    if importlib.util.find_spec("tap_copper") is None:
        assert peer["status"].startswith("not installed")
        pytest.skip("tap-copper is not installed here (nox -s bench installs it)")
    assert peer["status"] == "ok", peer
    # It pages with no date window, so it stops at the cap too.
    assert peer["unique"] == peer["correct_unique"] == 200
    assert peer["missing"] == 300


def test_run_all_renders_the_report_from_the_results(
    suite: tuple[Path, dict[str, int]],
) -> None:
    folder, _ = suite
    assert run_all.main(["--no-run", "--results", str(folder)]) == 0
    markdown = (folder / "RESULTS.md").read_text()
    assert "do not edit by hand" in markdown
    for name, script in run_all.BENCHMARKS.items():
        assert f"`{script}`" in markdown
        payload = json.loads((folder / f"{name}.json").read_text())
        for check in payload["checks"]:
            mark = "PASS" if check["passed"] else "MISS"
            assert f"**{mark}** {check['name']}" in markdown
    combined = json.loads((folder / "results.json").read_text())
    assert set(combined["benchmarks"]) == set(run_all.BENCHMARKS)
    plotted = combined["benchmarks"]["memory"]["plotted"]
    assert plotted == (folder / "memory.png").exists()


def test_run_all_reports_when_and_where_the_scripts_ran(
    suite: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    folder, _ = suite
    for name in run_all.BENCHMARKS:
        payload = json.loads((folder / f"{name}.json").read_text())
        payload["machine"]["date"] = "2001-02-03 04:05 UTC"
        payload["machine"]["packages"]["aiohttp"] = "0.0.test"
        payload["machine"]["load_average_1m"] = 7.25
        (tmp_path / f"{name}.json").write_text(json.dumps(payload))
    payload["peer_versions"] = {"requests": "9.9.9", "tap-copper": None}
    (tmp_path / "alternatives.json").write_text(json.dumps(payload))
    assert run_all.main(["--no-run", "--results", str(tmp_path)]) == 0
    first = (tmp_path / "RESULTS.md").read_text()
    # The figures' date and versions, not the renderer's.
    assert "- Date: 2001-02-03 04:05 UTC (when the benchmarks ran)" in first
    packages = next(line for line in first.splitlines() if line.startswith("- Packages: "))
    assert "aiohttp 0.0.test" in packages
    # The peers are listed as the interpreter that ran them has them, on their own line.
    assert "tap-copper" not in packages
    assert "- Peers (in the interpreter that ran them): requests 9.9.9, tap-copper not " in first
    assert first.count("Ran 2001-02-03 04:05 UTC, load average at the end 7.25.") == len(
        run_all.BENCHMARKS
    )
    assert run_all.main(["--no-run", "--results", str(tmp_path)]) == 0
    assert (tmp_path / "RESULTS.md").read_text() == first


def test_run_all_quick_never_writes_the_committed_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed = tmp_path / "committed"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(run_all, "DEFAULT_RESULTS", committed)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert run_all.main(["--quick", "--only", "requests"]) == 0
    assert not committed.exists()
    (results,) = scratch.iterdir()
    markdown = (results / "RESULTS.md").read_text()
    assert "- **--quick** (small sizes, a smoke run): requests" in markdown
    assert "| requests | exact/empty exactly once | 1 | 1 | PASS |" in markdown
    assert "| cost | (no result) | - | - | MISS |" in markdown
    # Rendering again keeps the run log: the exit code and the --quick mark.
    assert run_all.main(["--no-run", "--results", str(results)]) == 0
    again = (results / "RESULTS.md").read_text()
    assert again == markdown
    assert "(--quick sizes)." in again
    assert json.loads((results / "results.json").read_text())["quick"] is True
    shutil.rmtree(results)


def test_run_all_refuses_to_render_quick_results_it_cannot_find(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as raised:
        run_all.main(["--quick", "--no-run"])
    assert raised.value.code == 2
    assert "give the --results to render" in capsys.readouterr().err


# -- stress.py and every script's --help -------------------------------------------


def test_stress_smoke_run_delivers_every_record_exactly_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    package = logging.getLogger("copper_async")
    handlers = list(package.handlers)
    code = stress.main(
        ["--records", "3000", "--cap", "500", "--page-size", "20", "--timeout", "0.2"]
    )
    figures = json.loads(capsys.readouterr().out)
    assert code == 0
    assert figures["exactly_once"] is True
    assert figures["records_written"] == figures["records_at_start"] == 3000
    assert figures["repeated"] == figures["lasting_missing"] == figures["unexpected"] == 0
    # Past the cap and through the fault mix: the run was not a trivial one.
    assert figures["windows_split"] >= 1
    assert sum(figures["faults"].values()) >= 1
    assert figures["retries"] >= 1
    # It gives the caller's process its logging back.
    assert package.propagate
    assert package.handlers == handlers


def test_every_benchmark_script_answers_help() -> None:
    scripts = sorted(BENCHMARKS.glob("[!_]*.py"))
    assert {"run_all.py", "stress.py", "bench_requests.py"} <= {s.name for s in scripts}
    processes = {
        script.name: subprocess.Popen(
            [sys.executable, str(script), "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for script in scripts
    }
    for name, process in processes.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, (name, err.decode())
        assert out.decode().startswith("usage: "), name


# -- pure helpers ------------------------------------------------------------------


def test_steady_rate_excludes_the_first_request() -> None:
    assert rate_limit.steady_rate([0.0, 1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert rate_limit.steady_rate([5.0, 5.5, 6.0]) == pytest.approx(2.0)
    assert math.isnan(rate_limit.steady_rate([1.0]))


def test_peak_in_window_counts_a_closed_window() -> None:
    times = [0.0, 1.0, 2.0, 2.5, 10.0]
    assert rate_limit.peak_in_window(times, 2.0) == 3  # 0, 1, 2 and 1, 2, 2.5
    assert rate_limit.peak_in_window(times, 0.1) == 1
    assert rate_limit.peak_in_window([], 1.0) == 0


def test_hot_spots_fall_on_distinct_seconds() -> None:
    spots = requests_bench.hot_spots(7, 10, 60)
    assert len({spot.created for spot in spots}) == 7
    assert all(spot.count == 10 and spot.modified_spread == 60 for spot in spots)


def test_read_ids_reads_jsonl_and_singer_records(tmp_path: Path) -> None:
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"id": 3}\n{"id": 1}\n\n')
    singer = tmp_path / "b.singer"
    singer.write_text(
        '{"type": "SCHEMA", "stream": "opportunities"}\n'
        '{"type": "RECORD", "stream": "opportunities", "record": {"id": 7}}\n'
        '{"type": "STATE", "value": {}}\n'
    )
    assert alternatives.read_ids(jsonl, singer=False) == [3, 1]
    assert alternatives.read_ids(singer, singer=True) == [7]
    assert alternatives.read_ids(tmp_path / "missing", singer=False) == []


def test_format_table_aligns_numbers_right() -> None:
    lines = common.format_table(["name", "n"], [["a", 5], ["bb", 1234.5]])
    assert lines == ["name      n", "----  -----", "a         5", "bb    1,234"]


def test_check_never_passes_without_a_value() -> None:
    assert not common.check("x", None, ">= 1", True).passed
    assert common.check("x", 2, ">= 1", True).passed


def test_run_child_measures_the_child_alone(tmp_path: Path) -> None:
    script = "import sys; x = bytearray(64 * 2**20); sys.stderr.write('done'); sys.exit(3)"
    run = common.run_child([sys.executable, "-c", script])
    assert run.returncode == 3
    assert run.stderr_tail == "done"
    assert run.max_rss_bytes >= 64 * 2**20
    assert run.cpu_seconds > 0
    assert run.wall_seconds >= run.cpu_seconds * 0.5
