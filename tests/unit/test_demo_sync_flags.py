"""demo --sync refuses the export demo's flags rather than ignoring them; demo needs a file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from copper_async.cli import main


@pytest.mark.parametrize(
    "flags",
    [
        ["--out", "o.jsonl"],
        ["--format", "csv"],
        ["--page-size", "50"],
        ["--concurrency", "2"],
        ["--split-field", "date_modified"],
        ["--on-cap", "warn"],
        ["--verbose"],
        ["--page-size", "200", "-v"],
    ],
)
def test_an_export_flag_with_sync_is_refused_naming_it(
    cli_logging: None, tmp_path: Path, flags: list[str]
) -> None:
    flags = [str(tmp_path / flag) if flag.endswith(".jsonl") else flag for flag in flags]
    result = CliRunner().invoke(main, ["demo", "--sync", "--records", "10", *flags])
    assert result.exit_code == 2, result.output
    named = [flag for flag in flags if flag.startswith("-")]
    assert result.stderr.startswith("copper-async: --sync mirrors into SQLite")
    assert all(flag in result.stderr for flag in named)
    assert "table equals" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_demo_out_dash_is_refused_not_written_to_a_file_named_dash(
    cli_logging: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["demo", "--records", "10", "--out", "-"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        "copper-async: --out -: the demo checks the file it writes, so it needs a file"
    )
    assert list(tmp_path.iterdir()) == []
