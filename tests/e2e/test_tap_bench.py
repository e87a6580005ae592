"""``benchmarks/bench_tap.py`` at a tiny size: its JSON result, as run_all reports it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_benchmarks import run_all, tap_bench


def test_bench_tap_reports_every_record_once_in_the_alternatives_columns(tmp_path: Path) -> None:
    result = tmp_path / "tap.json"
    assert tap_bench.main(["--records", "600", "--cap", "250", "--json", str(result)]) == 0
    payload = json.loads(result.read_text())
    assert payload["benchmark"] == "tap"
    assert run_all.BENCHMARKS["tap"] == "bench_tap.py"
    rows = {row[0]: dict(zip(payload["columns"], row, strict=True)) for row in payload["rows"]}
    assert set(rows) == {"tap-copper", "copper-async tap"}
    ours = rows["copper-async tap"]
    assert (ours["status"], ours["delivered"], ours["unique"], ours["missing"]) == (
        "ok",
        600,
        600,
        0,
    )
    assert ours["requests"] >= 3  # 600 records in pages of 200, split past the cap of 250
    assert [check["passed"] for check in payload["checks"]] == [True]
