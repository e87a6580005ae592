"""Export files and checkpoints, without a server."""

from __future__ import annotations

import csv
import os
import stat
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest

from copper_async._checkpoint import (
    Checkpoint,
    job_fingerprint,
    load_checkpoint,
    remove_stale_temp_files,
    save_checkpoint,
)
from copper_async._writers import (
    CSV_BASE_COLUMNS,
    CsvWriter,
    ExportFormat,
    open_writer,
    read_committed,
    read_list_cell,
)
from copper_async.exceptions import (
    CheckpointError,
    InvalidOptionError,
    OutputClosedError,
    OutputError,
)
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
    writer = open_writer(tmp_path / "missing" / "out.jsonl", "jsonl")
    with pytest.raises(InvalidOptionError, match="cannot write") as raised:
        writer.write_page(records())
    assert raised.value.option == "out"


def test_an_old_output_is_only_truncated_when_the_first_page_is_written(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"the previous export\n")
    writer = open_writer(path, "jsonl")
    writer.write_page([])
    writer.close()  # e.g. the first request failed
    assert path.read_bytes() == b"the previous export\n"
    writer = open_writer(path, "jsonl")
    writer.write_page(records()[:1])
    writer.commit()
    writer.close()
    assert [orjson.loads(line) for line in path.read_bytes().splitlines()] == records()[:1]


def test_an_export_of_nothing_still_leaves_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    path.write_bytes(b"old")
    writer = open_writer(path, "csv")
    assert writer.commit() == 0
    writer.close()
    assert path.read_bytes() == b""


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_failed_write_is_one_copper_error_naming_the_file() -> None:
    writer = open_writer(Path("/dev/full"), "jsonl")
    page = [{**records()[0], "details": "x" * 20_000}]  # past the write buffer
    with pytest.raises(OutputError, match="cannot write '/dev/full': No space left") as raised:
        writer.write_page(page)
    assert raised.value.path == "/dev/full"
    assert isinstance(raised.value.__cause__, OSError)
    writer.close()  # the same failure again: not a second error


def test_a_stream_whose_reader_left_is_an_output_closed_error() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "wb", buffering=0) as stream:
        writer = open_writer(stream, "jsonl")
        with pytest.raises(OutputClosedError, match="'<stdout>': its reader closed it"):
            writer.write_page(records())
        writer.close()


def test_a_device_needs_no_fsync() -> None:
    writer = open_writer(Path(os.devnull), "jsonl")
    writer.write_page(records())
    assert writer.commit() > 0
    writer.close()


def test_csv_has_stable_columns_and_flattens_lists_and_custom_fields(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    data = records()
    writer = open_writer(path, "csv")
    writer.write_page(data[:2])
    assert isinstance(writer, CsvWriter)
    columns = writer.columns
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
        assert read_list_cell(row["tags"]) == record["tags"]
        if record["tags"]:
            assert row["tags"] == ";".join(record["tags"])
        for field in record["custom_fields"]:
            column = f"custom_field_{field['custom_field_definition_id']}"
            if column in row:
                value = field["value"]
                if isinstance(value, list):
                    assert read_list_cell(row[column]) == value
                    continue
                expected = (
                    ""
                    if value is None
                    else str(value).lower()
                    if isinstance(value, bool)
                    else str(value)
                )
                assert row[column] == expected


TRICKY_LISTS = [
    None,
    [],
    [""],
    ["a", ""],
    ["x", "y;z"],
    [";"],
    ["[not json"],
    ["a", "[b"],
    ["vip", "new"],
    ['quote " and, comma', "line\nbreak"],
    ["  spaced  "],
    ["1", "2"],
    [1, 2],
    [1.5, "1.5"],
    [True, None],
    [{"id": 1}],
    [["nested"]],
    ["ünï", "😀"],
]


def test_csv_list_cells_round_trip_every_tricky_value(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    base = records()[0]
    page = [
        {**base, "id": 1_000 + i, "tags": value, "custom_fields": []}
        for i, value in enumerate(TRICKY_LISTS)
    ]
    writer = open_writer(path, "csv")
    writer.write_page(page)
    writer.commit()
    writer.close()
    with open(path, newline="", encoding="utf-8") as file:
        cells = [row["tags"] for row in csv.DictReader(file)]
    assert [read_list_cell(cell) for cell in cells] == TRICKY_LISTS
    # Plain tags stay plain; only what ';' cannot carry is JSON.
    assert cells[TRICKY_LISTS.index(["vip", "new"])] == "vip;new"
    assert cells[TRICKY_LISTS.index([])] == "[]"
    assert cells[TRICKY_LISTS.index(None)] == ""
    assert cells[TRICKY_LISTS.index(["x", "y;z"])] == '["x","y;z"]'


def test_csv_resume_keeps_the_first_header(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    writer = open_writer(path, "csv")
    writer.write_page(records()[:1])
    committed = writer.commit()
    assert isinstance(writer, CsvWriter)
    columns = writer.columns
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


def write_and_commit(
    path: Path, format_: ExportFormat, *, past_commit: list[dict[str, Any]] | None = None
) -> int:
    """Write and commit ``records()`` to a new ``path``, then ``past_commit``
    uncommitted; the committed length."""
    writer = open_writer(path, format_)
    writer.write_page(records())
    committed = writer.commit()
    if past_commit:
        writer.write_page(past_commit)
    writer.close()
    return committed


@pytest.mark.parametrize("format_", ["jsonl", "csv"])
def test_committed_records_are_read_back_with_their_split_fields(
    tmp_path: Path, format_: ExportFormat
) -> None:
    path = tmp_path / f"out.{format_}"
    committed = write_and_commit(path, format_, past_commit=records()[:1])  # not read back
    back = list(read_committed(path, format_, committed, ["date_created"]))
    assert back == [{"id": r["id"], "date_created": r["date_created"]} for r in records()]


@pytest.mark.parametrize("format_", ["jsonl", "csv"])
def test_reading_back_stops_at_the_committed_length(tmp_path: Path, format_: ExportFormat) -> None:
    path = tmp_path / f"out.{format_}"
    committed = write_and_commit(path, format_)
    # What a killed run left past the commit: half a line, not even text.
    with open(path, "ab") as file:
        file.write(b'\xff\xfe{"id": "garbage", "unterminated \n' * 3)
    back = list(read_committed(path, format_, committed, ["date_created"]))
    assert back == [{"id": r["id"], "date_created": r["date_created"]} for r in records()]


@pytest.mark.parametrize("format_", ["jsonl", "csv"])
def test_a_committed_part_changed_since_is_a_checkpoint_error(
    tmp_path: Path, format_: ExportFormat
) -> None:
    path = tmp_path / f"out.{format_}"
    committed = write_and_commit(path, format_)
    data = path.read_bytes()
    path.write_bytes(data[: committed // 2] + b'\xff"{' + data[committed // 2 + 3 :])
    with pytest.raises(CheckpointError, match="changed since"):
        list(read_committed(path, format_, committed, ["date_created"]))


@pytest.mark.parametrize("format_", ["jsonl", "csv"])
def test_reading_back_streams_instead_of_loading_the_file(
    tmp_path: Path, format_: ExportFormat
) -> None:
    path = tmp_path / f"big.{format_}"
    base = {**records()[0], "details": "x" * 1_000}
    writer = open_writer(path, format_)
    for start in range(0, 4_000, 500):
        writer.write_page([{**base, "id": i + 1} for i in range(start, start + 500)])
    committed = writer.commit()
    writer.close()
    assert committed > 4_000_000
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_committed(path, format_, committed, ["date_created"]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 4_000
    assert peak < 1_000_000, f"read {peak} bytes into memory at once"


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


def saved_state(path: Path) -> bytes:
    save_checkpoint(path, checkpoint(records=2))
    return path.read_bytes()


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_save_that_fails_mid_way_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "job.checkpoint"
    before = saved_state(path)

    def fail(*_args: Any) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(CheckpointError, match="cannot write checkpoint"):
        save_checkpoint(path, checkpoint(records=3))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path).records == 2
    assert [p.name for p in tmp_path.iterdir()] == ["job.checkpoint"]


# A child saves a checkpoint bigger than its file size limit: the kernel stops the
# write part-way, killing the child (SIGXFSZ) or failing the write (EFBIG).
_SAVE_OVER_THE_LIMIT = """
import resource, signal, sys
from pathlib import Path
from copper_async._checkpoint import Checkpoint, save_checkpoint
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
# Python ignores SIGXFSZ; its default action kills the process mid-write.
signal.signal(signal.SIGXFSZ, signal.SIG_DFL if sys.argv[2] == "killed" else signal.SIG_IGN)
big = Checkpoint(
    fingerprint="f", job={}, committed_bytes=10, records=3, planner={"windows": ["w" * 50] * 4_000}
)
save_checkpoint(Path(sys.argv[1]), big)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs POSIX file size limits")
@pytest.mark.parametrize("how", ["killed", "error"])
def test_a_save_cut_off_by_the_kernel_keeps_the_previous_checkpoint(
    tmp_path: Path, how: str
) -> None:
    path = tmp_path / "job.checkpoint"
    before = saved_state(path)
    child = subprocess.run(
        [sys.executable, "-c", _SAVE_OVER_THE_LIMIT, str(path), how],
        capture_output=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    if how == "killed":
        assert child.returncode == -25, child.stderr  # SIGXFSZ
    else:
        assert child.returncode == 1
        assert b"CheckpointError: cannot write checkpoint" in child.stderr
    assert path.read_bytes() == before
    assert load_checkpoint(path).records == 2
    temps = sorted(p.name for p in tmp_path.iterdir() if p.name != "job.checkpoint")
    if how == "error":
        assert temps == []
    else:
        # A killed save leaves its temp file; the next start removes it, and only it.
        assert len(temps) == 1
        assert temps[0].startswith(".job.checkpoint.")
        assert temps[0].endswith(".tmp")
        assert remove_stale_temp_files(path) == [tmp_path / temps[0]]
        assert [p.name for p in tmp_path.iterdir()] == ["job.checkpoint"]


def test_only_this_checkpoints_own_temp_files_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "job"
    names = [
        ".job.k2j4_9xq.tmp",  # this checkpoint's
        ".job.ckpt.k2j4_9xq.tmp",  # the checkpoint job.ckpt's, beside it
        ".jobs.k2j4_9xq.tmp",
        "job.k2j4_9xq.tmp",
        ".job.k2j4_9xq.tmp.keep",
        "job",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".job.folder.tmp").mkdir()
    assert remove_stale_temp_files(path) == [tmp_path / ".job.k2j4_9xq.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names[1:], ".job.folder.tmp"])


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


def folders_fsynced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The (device, inode) of every folder fsynced from now on, in order."""
    synced: list[tuple[int, int]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            synced.append((info.st_dev, info.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_a_new_outputs_folder_is_fsynced_at_its_first_commit_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power loss after a commit keeps a new output's name, not only its
    bytes: the checkpoint counting them may live in another folder."""
    synced = folders_fsynced(monkeypatch)
    folder = tmp_path.stat()
    path = tmp_path / "out.jsonl"
    writer = open_writer(path, "jsonl")
    writer.write_page(records()[:2])
    committed = writer.commit()
    writer.write_page(records()[2:])
    writer.commit()
    writer.close()
    assert synced == [(folder.st_dev, folder.st_ino)]
    resumed = open_writer(path, "jsonl", committed=committed)  # its name was made durable
    resumed.write_page(records()[2:])
    resumed.commit()
    resumed.close()
    assert len(synced) == 1


def test_a_new_output_made_through_a_symlink_fsyncs_the_folder_it_lies_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--out latest.jsonl``, a symlink to a file not made yet in another folder:
    the new name lives in the target's folder, which a power loss must keep."""
    synced = folders_fsynced(monkeypatch)
    links, data = tmp_path / "links", tmp_path / "data"
    links.mkdir()
    data.mkdir()
    path = links / "latest.jsonl"
    path.symlink_to(data / "export.jsonl")
    writer = open_writer(path, "jsonl")
    writer.write_page(records())
    writer.commit()
    writer.close()
    assert (data / "export.jsonl").stat().st_size > 0
    folder = data.stat()
    assert (folder.st_dev, folder.st_ino) in synced
