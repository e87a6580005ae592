"""Export files and checkpoints, without a server."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson
import pytest

from copper_async.checkpoint import Checkpoint, job_fingerprint, load_checkpoint, save_checkpoint
from copper_async.exceptions import CheckpointError, InvalidOptionError
from copper_async.writers import CSV_BASE_COLUMNS, open_writer, read_committed
from tests.reference import reference_examples


def records() -> list[dict[str, Any]]:
    # One example's records: ids are unique within it.
    return [dict(r) for r in reference_examples()[0].records]


def test_jsonl_writes_records_exactly_as_received(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    writer = open_writer(path, "jsonl")
    writer.write_page(records()[:3])
    writer.write_page(records()[3:])
    length = writer.commit()
    writer.close()
    assert length == path.stat().st_size
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == records()


def test_a_resumed_writer_drops_what_was_written_after_the_last_commit(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    writer = open_writer(path, "jsonl")
    writer.write_page(records()[:2])
    committed = writer.commit()
    writer.write_page(records()[2:4])  # never committed: the process died here
    writer.close()
    resumed = open_writer(path, "jsonl", committed=committed)
    resumed.write_page(records()[2:])
    resumed.commit()
    resumed.close()
    assert [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()] == [
        r["id"] for r in records()
    ]


def test_a_resumed_writer_refuses_a_file_shorter_than_committed(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"{}\n")
    with pytest.raises(CheckpointError, match="changed since"):
        open_writer(path, "jsonl", committed=100)


def test_an_unwritable_output_is_an_option_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="cannot write") as raised:
        open_writer(tmp_path / "missing" / "out.jsonl", "jsonl")
    assert raised.value.option == "out"


def test_csv_has_stable_columns_and_flattens_lists_and_custom_fields(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    data = records()
    writer = open_writer(path, "csv")
    writer.write_page(data[:2])
    columns = writer.columns  # type: ignore[union-attr]
    writer.write_page(data[2:])
    writer.commit()
    writer.close()
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert columns is not None
    assert list(rows[0]) == columns
    assert columns[: len(CSV_BASE_COLUMNS)] == list(CSV_BASE_COLUMNS)
    assert [int(row["id"]) for row in rows] == [r["id"] for r in data]
    for row, record in zip(rows, data, strict=True):
        assert row["tags"] == ";".join(record["tags"])
        for field in record["custom_fields"]:
            column = f"custom_field_{field['custom_field_definition_id']}"
            if column in row:
                value = field["value"]
                expected = (
                    ""
                    if value is None
                    else ";".join(map(str, value))
                    if isinstance(value, list)
                    else str(value).lower()
                    if isinstance(value, bool)
                    else str(value)
                )
                assert row[column] == expected


def test_csv_resume_keeps_the_first_header(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    writer = open_writer(path, "csv")
    writer.write_page(records()[:1])
    committed = writer.commit()
    columns = writer.columns  # type: ignore[union-attr]
    writer.close()
    resumed = open_writer(path, "csv", committed=committed, columns=columns)
    later = {**records()[1], "custom_fields": [{"custom_field_definition_id": 999, "value": 1}]}
    resumed.write_page([later])
    resumed.commit()
    resumed.close()
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2
    # A custom field unknown to the header goes to the JSON column, not a new column.
    assert orjson.loads(rows[1]["other_custom_fields"]) == {"999": 1}


@pytest.mark.parametrize("format_", ["jsonl", "csv"])
def test_committed_records_are_read_back_with_their_split_fields(
    tmp_path: Path, format_: str
) -> None:
    path = tmp_path / f"out.{format_}"
    writer = open_writer(path, format_)  # type: ignore[arg-type]
    writer.write_page(records())
    committed = writer.commit()
    writer.write_page(records()[:1])  # past the commit: not read back
    writer.close()
    back = list(read_committed(path, format_, committed, ["date_created"]))  # type: ignore[arg-type]
    assert back == [{"id": r["id"], "date_created": r["date_created"]} for r in records()]


def checkpoint(**changes: Any) -> Checkpoint:
    job = {"filter": {}, "output": "/tmp/x.jsonl"}
    values: dict[str, Any] = {
        "fingerprint": job_fingerprint(job),
        "job": job,
        "committed_bytes": 10,
        "records": 2,
        "planner": {"windows": []},
    }
    values.update(changes)
    return Checkpoint(**values)


def test_checkpoints_round_trip_and_replace_atomically(tmp_path: Path) -> None:
    path = tmp_path / "job.checkpoint"
    save_checkpoint(path, checkpoint())
    save_checkpoint(path, checkpoint(records=3))
    assert load_checkpoint(path).records == 3
    assert [p.name for p in tmp_path.iterdir()] == ["job.checkpoint"]


def test_the_fingerprint_depends_on_every_part_of_the_job() -> None:
    base = {"filter": {"ids": [1]}, "output": "a", "format": "jsonl"}
    assert job_fingerprint(base) == job_fingerprint(dict(reversed(base.items())))
    assert job_fingerprint(base) != job_fingerprint({**base, "filter": {"ids": [2]}})
    assert job_fingerprint(base) != job_fingerprint({**base, "output": "b"})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no checkpoint"),
        (b"{not json", "unreadable"),
        (b'{"version": 99}', "unknown format"),
        (b'{"version": 1, "surprise": 1}', "damaged"),
    ],
)
def test_bad_checkpoints_are_refused(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "job.checkpoint"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_a_checkpoint_in_a_missing_folder_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="cannot write checkpoint"):
        save_checkpoint(tmp_path / "nope" / "job.checkpoint", checkpoint())
