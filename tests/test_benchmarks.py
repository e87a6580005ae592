"""Smoke runs of every benchmark script at tiny sizes, and their pure helpers.

Each script's ``main([...])`` runs once (a module fixture) with sizes small
enough for a few seconds, against real loopback fake servers (in this
process or a child process, as each script does); the tests then read the
JSON it wrote. ``run_all.py`` renders its report from those JSON files.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from copper_async.ratelimit import RateLimit

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


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
}
MAINS = {
    "rate_limit": rate_limit.main,
    "requests": requests_bench.main,
    "cost": cost.main,
    "memory": memory.main,
    "alternatives": alternatives.main,
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
        assert result["requests"] == result["server_requests"]
    # The hot spot (150 records in one second, over the cap of 100) needs a second level.
    assert all(r["hot_spots"] >= 1 for r in results)
    names = {check["name"] for check in payload["checks"]}
    assert "absent/empty requests/ideal" not in names
    assert "exact/empty requests/ideal" in names


def test_cost_reads_the_same_records_in_every_case(suite: tuple[Path, dict[str, int]]) -> None:
    payload = _payload(suite, "cost")
    assert payload["config"]["server"] == "process"
    assert set(payload["samples"]) == set(cost.CASES)
    for samples in payload["samples"].values():
        assert [s["records"] for s in samples] == [300]
    ours_rows = [row for row in payload["rows"] if row[0].startswith("ours")]
    assert all(row[5] is not None and row[5] > 0 for row in ours_rows)


def test_memory_measures_each_export_alone(suite: tuple[Path, dict[str, int]]) -> None:
    payload = _payload(suite, "memory")
    assert [r["records"] for r in payload["results"]] == [300, 600]
    for result in payload["results"]:
        assert result["written"] == result["records"]
        # The export's own peak, above a bare import of the CLI, far below a server's.
        assert payload["import_floor_bytes"] <= result["peak_rss"] < 500 * 2**20


def test_alternatives_runs_ours_and_reports_each_peer(suite: tuple[Path, dict[str, int]]) -> None:
    payload = _payload(suite, "alternatives")
    by_client = {r["client"]: r for r in payload["results"]}
    assert set(by_client) == set(alternatives.CLIENTS)
    ours = by_client["copper-async"]
    assert ours["status"] == "ok"
    assert ours["delivered"] == ours["unique"] == ours["correct_unique"] == 500
    assert ours["missing"] == 0
    for name in ("tap-copper", "requests loop"):
        peer = by_client[name]
        # Installed only in the bench environment: either a clear row or real figures.
        assert peer["status"].startswith("not installed") or peer["status"] == "ok"
        if peer["status"] == "ok":
            # A plain page loop stops at the cap.
            assert peer["unique"] == 200
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


def test_run_all_runs_a_script_and_reports_a_missing_one(tmp_path: Path) -> None:
    assert run_all.main(["--quick", "--only", "requests", "--results", str(tmp_path)]) == 0
    markdown = (tmp_path / "RESULTS.md").read_text()
    assert "--quick" in markdown
    assert "| requests | exact/empty exactly once | 1 | 1 | PASS |" in markdown
    assert "| cost | (no result) | - | - | MISS |" in markdown


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
