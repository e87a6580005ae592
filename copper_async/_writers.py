"""Output files of an export: JSON lines and CSV, written page by page.

A writer appends whole pages and, on :meth:`commit`, makes them durable and
returns the committed length; an interrupted export is cut back to that
length on resume, so a file never holds half a record. A new file is only
opened (and an old one truncated) when the first page is written, so an
export that fails before it leaves an existing file as it was. Both formats
can be read back (:func:`read_committed`, streaming, never past the committed
length) to tell a resumed search which records it already has.
"""

from __future__ import annotations

import csv
import io
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Protocol

import orjson

from copper_async._checkpoint import fsync_folder
from copper_async._custom_fields import CustomFieldNames
from copper_async.exceptions import (
    CheckpointError,
    InvalidOptionError,
    OutputClosedError,
    OutputError,
)

if TYPE_CHECKING:
    from _csv import Writer as CsvRowWriter

    from _typeshed import WriteableBuffer

__all__ = [
    "CSV_BASE_COLUMNS",
    "CsvWriter",
    "ExportFormat",
    "JsonlWriter",
    "RecordWriter",
    "open_writer",
    "read_committed",
    "read_list_cell",
]

ExportFormat = Literal["jsonl", "csv"]

#: The record fields in the order Copper sends them; custom fields follow.
CSV_BASE_COLUMNS: tuple[str, ...] = (
    "id",
    "name",
    "assignee_id",
    "close_date",
    "company_id",
    "company_name",
    "customer_source_id",
    "details",
    "loss_reason_id",
    "pipeline_id",
    "pipeline_is_revenue",
    "pipeline_stage_id",
    "pipeline_type",
    "primary_contact_id",
    "priority",
    "status",
    "tags",
    "interaction_count",
    "monetary_unit",
    "monetary_value",
    "converted_unit",
    "converted_value",
    "win_probability",
    "date_stage_changed",
    "date_last_contacted",
    "leads_converted_from",
    "date_lead_created",
    "date_created",
    "date_modified",
)
_CUSTOM_PREFIX = "custom_field_"
# Custom fields first seen after the header was written, and unknown keys.
_OTHER_CUSTOM = "other_custom_fields"
_EXTRA = "extra"
_LIST_SEPARATOR = ";"


class RecordWriter(Protocol):
    """Appends pages of records to an export file."""

    path: Path | None

    def write_page(self, records: Sequence[Mapping[str, Any]]) -> None: ...

    def finish(self) -> None: ...

    def commit(self) -> int: ...

    def close(self) -> None: ...


class _FileWriter:
    """Whole pages appended with unbuffered writes, so that on a write error
    (disk full) the file is cut back to the end of the last whole page, or of
    the last commit when the commit itself failed: it never ends mid-record.

    ``stream`` (stdout) replaces the file: written to as it is, never
    truncated nor closed.
    """

    def __init__(self, path: Path | None, committed: int, stream: BinaryIO | None = None) -> None:
        self.path = path
        self._file: BinaryIO | None = stream
        self._stream = stream is not None
        self._length = committed
        # The end of the last page written in full, and of the last commit.
        self._whole = self._committed = committed
        self._broken = False
        self._name_durable = True
        # A pipe or a device (/dev/null) cannot be fsynced, nor cut back, and needs not be.
        self._regular = not self._stream
        if committed:
            # A resume: the committed part is checked now, before any request.
            file = self._open("r+b")
            if not self._regular:
                self.close()
                raise CheckpointError(
                    f"{str(path)!r} is not a regular file (a pipe or a device): what the "
                    "stopped export wrote to it can neither be cut back nor read again; "
                    "delete the checkpoint to start over"
                )
            size = file.seek(0, os.SEEK_END)
            if size < committed:
                self.close()
                raise CheckpointError(
                    f"{str(path)!r} holds {size} bytes but the checkpoint committed {committed}: "
                    "the output was changed since"
                )
            # Whatever was written after the last commit is dropped.
            file.truncate(committed)
            file.seek(committed)

    @property
    def _name(self) -> str:
        return "<stdout>" if self.path is None else str(self.path)

    def _open(self, mode: Literal["r+b", "wb"]) -> BinaryIO:
        assert self.path is not None
        try:
            file = open(self.path, mode, buffering=0)  # noqa: SIM115
        except OSError as error:
            raise InvalidOptionError(
                "out", f"cannot write {str(self.path)!r}: {error.strerror}"
            ) from None
        self._file = file
        self._regular = stat.S_ISREG(os.fstat(file.fileno()).st_mode)
        # A new file's name lives in its folder: fsynced at the first commit,
        # or a power loss could keep a checkpoint (elsewhere) counting its bytes.
        self._name_durable = mode == "r+b" or not self._regular
        return file

    def _ensure_open(self) -> BinaryIO:
        # Truncating an old file waits for the first page: a failure before it keeps the file.
        return self._file if self._file is not None else self._open("wb")

    def _cannot_write(self, error: OSError, *, cut_to: int) -> OutputError:
        self._broken = True
        file = self._file
        if file is not None and self._regular and not self._stream:
            try:
                file.truncate(cut_to)  # frees room on a full disk: it succeeds there
                self._length = cut_to
            except OSError:
                pass  # the first error is the one to report
        if self._stream and isinstance(error, BrokenPipeError):
            return OutputClosedError(self._name, "its reader closed it")
        return OutputError(self._name, error.strerror or str(error))

    def _append(self, data: bytes) -> None:
        file = self._ensure_open()
        try:
            with memoryview(data) as view:
                written = 0
                while written < len(view):  # an unbuffered write may take only part
                    written += file.write(view[written:]) or 0
        except OSError as error:
            raise self._cannot_write(error, cut_to=self._whole) from error
        self._length += len(data)
        self._whole = self._length

    def finish(self) -> None:
        """Called once, after the last page, before the last commit."""

    def commit(self) -> int:
        """Flush and fsync what was written; return the committed length."""
        file = self._ensure_open()
        try:
            file.flush()
            if self._regular:
                os.fsync(file.fileno())
        except OSError as error:
            raise self._cannot_write(error, cut_to=self._committed) from error
        if self._regular and not self._still_named(file):
            self._broken = True
            raise OutputError(self._name, "removed or replaced while the export wrote it")
        if not self._name_durable:
            assert self.path is not None
            try:
                # Through a symlink, the new name lies in the folder of the file it leads to.
                fsync_folder(Path(os.path.realpath(self.path)).parent)
            except OSError as error:
                raise self._cannot_write(error, cut_to=self._committed) from error
            self._name_durable = True
        self._committed = self._length
        return self._length

    def _still_named(self, file: BinaryIO) -> bool:
        """Whether the path still leads to the file written: records written
        to a file removed meanwhile are lost."""
        try:
            return os.path.samestat(os.fstat(file.fileno()), os.stat(self._name))
        except OSError:
            return False

    def close(self) -> None:
        if self._file is None or self._file.closed or self._stream:
            return
        try:
            self._file.close()
        except OSError as error:
            # After a failed write, closing fails the same way: the first error is the one.
            if not self._broken:
                raise self._cannot_write(error, cut_to=self._committed) from error


class JsonlWriter(_FileWriter):
    """One JSON object a line, exactly as the API sent it."""

    def write_page(self, records: Sequence[Mapping[str, Any]]) -> None:
        if records:
            dumps = orjson.dumps
            self._append(b"".join([dumps(record) + b"\n" for record in records]))


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _list_cell(items: list[Any]) -> str:
    if (
        items
        and all(isinstance(item, str) and item and _LIST_SEPARATOR not in item for item in items)
        and not items[0].startswith("[")
    ):
        return _LIST_SEPARATOR.join(items)
    return orjson.dumps(items).decode()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return _list_cell(value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


def read_list_cell(cell: str) -> list[Any] | None:
    """The list a CSV list cell holds (the inverse of the writer's rule).

    An empty cell is null, a cell starting with ``[`` is JSON, and anything
    else is strings joined with ``;``.
    """
    if cell == "":
        return None
    if cell.startswith("["):
        value = orjson.loads(cell)
        if not isinstance(value, list):
            raise ValueError(f"not a JSON array: {cell!r}")
        return value
    return cell.split(_LIST_SEPARATOR)


class _Rows:
    """The target of a csv writer: rows end in ``\n``, and a cell holding a
    ``\r`` is quoted all the same.

    Python's csv writer quotes a cell only for the characters of its line
    terminator: with ``\n`` alone, a lone ``\r`` (old Mac line ends in a
    text field) stays bare, and every reader splits the row there. So the
    writer ends rows in ``\r\n`` (one write per row) and each row's end is
    written as ``\n``, as this format always ended rows.
    """

    def __init__(self) -> None:
        self._parts: list[str] = []

    def writer(self) -> CsvRowWriter:
        return csv.writer(self, lineterminator="\r\n")

    def write(self, row: str) -> int:
        if not row.endswith("\r\n"):
            raise AssertionError(f"csv wrote a partial row: {row!r}")
        self._parts.append(row[:-2])
        self._parts.append("\n")
        return len(row)

    def encoded(self) -> bytes:
        return "".join(self._parts).encode()


class CsvWriter(_FileWriter):
    """Flattened rows with stable columns.

    A list cell (tags, multi-select values) is its items joined with ``;``
    when every item is a non-empty string without ``;`` and the first does
    not start with ``[`` (``vip;new``); any other list is JSON (``[]``,
    ``[8,9]``, ``["x","y;z"]``), and null is an empty cell, so
    :func:`read_list_cell` gets every list back exactly. Objects
    (``leads_converted_from``) are JSON, and each custom field gets a column
    ``custom_field_<definition id>``. The custom columns are fixed by the
    first page (a resumed export reuses them); fields first seen later, and
    keys this version does not know, go to JSON columns at the end.

    With ``custom_fields`` (:class:`~copper_async._custom_fields.CustomFieldNames`)
    every field it defines gets a column named after the field (``cf_region``)
    and option ids become option names; a field whose column is not in the
    header (created since it was written) goes to the JSON column. A resumed
    file given its ``custom_columns`` (:attr:`named_columns` when it was
    written) keeps each column to the field it was written for, renamed or not;
    without them, the header's names are matched to today's.
    """

    def __init__(
        self,
        path: Path | None,
        committed: int,
        columns: Sequence[str] | None,
        stream: BinaryIO | None = None,
        custom_fields: CustomFieldNames | None = None,
        custom_columns: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(path, committed, stream)
        self.columns: list[str] | None = list(columns) if columns else None
        self._names: CustomFieldNames | None = None
        self._custom_ids: dict[int, str] = {}
        self._written_ids: dict[int, str] | None = (
            {int(i): column for i, column in custom_columns.items()}
            if custom_columns is not None
            else None
        )
        if custom_fields is not None:
            self.name_custom_fields(custom_fields)
        elif self.columns:
            self._custom_ids = {
                int(c.removeprefix(_CUSTOM_PREFIX)): c
                for c in self.columns
                if c.startswith(_CUSTOM_PREFIX)
            }

    def name_custom_fields(self, custom_fields: CustomFieldNames) -> None:
        """Name the custom-field columns by ``custom_fields``, before any page is
        written: as if given when the writer was made (a resumed header included)."""
        self._names = custom_fields
        if self.columns:
            if self._written_ids is not None:
                header = set(self.columns)
                self._custom_ids = {
                    i: column for i, column in self._written_ids.items() if column in header
                }
            else:
                self._custom_ids = custom_fields.column_ids(self.columns)

    @property
    def named_columns(self) -> dict[str, str] | None:
        """The definition id (as text) of each named custom-field column, once
        the header is written; None without names. Saved in the checkpoint."""
        if self._names is None or self.columns is None:
            return None
        return {str(i): column for i, column in self._custom_ids.items()}

    def _custom_columns(self, records: Sequence[Mapping[str, Any]]) -> dict[int, str]:
        """The custom columns of a new file: every named field, or the ids on its first page."""
        if self._names is not None:
            return dict(self._names.columns)
        ids = sorted(
            {
                field["custom_field_definition_id"]
                for record in records
                for field in record.get("custom_fields") or ()
                if isinstance(field, Mapping)
            }
        )
        return {i: f"{_CUSTOM_PREFIX}{i}" for i in ids}

    def write_page(self, records: Sequence[Mapping[str, Any]]) -> None:
        if not records:
            return
        rows = _Rows()
        writer = rows.writer()
        if self.columns is None:
            self._custom_ids = self._custom_columns(records)
            self.columns = [
                *CSV_BASE_COLUMNS,
                *self._custom_ids.values(),
                _OTHER_CUSTOM,
                _EXTRA,
            ]
            writer.writerow(self.columns)
        for record in records:
            writer.writerow(self._row(record))
        self._append(rows.encoded())

    def finish(self) -> None:
        if self.columns is None:  # no record at all: the header alone still says what is what
            self.columns = [*CSV_BASE_COLUMNS, _OTHER_CUSTOM, _EXTRA]
            rows = _Rows()
            rows.writer().writerow(self.columns)
            self._append(rows.encoded())

    def _row(self, record: Mapping[str, Any]) -> list[str]:
        assert self.columns is not None
        row = {column: _cell(record.get(column)) for column in CSV_BASE_COLUMNS}
        other: dict[str, Any] = {}
        names = self._names
        for field in record.get("custom_fields") or ():
            definition = field.get("custom_field_definition_id")
            value = field.get("value")
            if names is not None:
                value = names.value(definition, value)
            column = self._custom_ids.get(definition)
            if column is None:
                other[str(definition)] = value
            else:
                row[column] = _cell(value)
        known = {*CSV_BASE_COLUMNS, "custom_fields"}
        extra = {key: value for key, value in record.items() if key not in known}
        row[_OTHER_CUSTOM] = orjson.dumps(other).decode() if other else ""
        row[_EXTRA] = orjson.dumps(extra).decode() if extra else ""
        return [row.get(column, "") for column in self.columns]


def open_writer(
    path: Path | BinaryIO,
    format: ExportFormat,
    *,
    committed: int = 0,
    columns: Sequence[str] | None = None,
    custom_fields: CustomFieldNames | None = None,
    custom_columns: Mapping[str, str] | None = None,
) -> JsonlWriter | CsvWriter:
    """A writer appending to ``path`` after its first ``committed`` bytes,
    or to a binary stream (stdout) as it is.

    ``custom_fields`` names a CSV file's custom-field columns and options;
    ``custom_columns`` is a resumed file's :attr:`CsvWriter.named_columns`.
    """
    file, stream = (path, None) if isinstance(path, Path) else (None, path)
    if format == "jsonl":
        return JsonlWriter(file, committed, stream)
    if format == "csv":
        return CsvWriter(file, committed, columns, stream, custom_fields, custom_columns)
    raise InvalidOptionError("format", f"must be 'jsonl' or 'csv', not {format!r}")


class _Bounded(io.RawIOBase):
    """A raw reader that stops at ``limit`` bytes: nothing past it is read."""

    def __init__(self, raw: io.RawIOBase, limit: int) -> None:
        super().__init__()
        self._raw = raw
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        if self._left <= 0:
            return 0
        with memoryview(buffer) as view:
            count = self._raw.readinto(view[: self._left]) or 0
        self._left -= count
        return count


_READ_BUFFER = 64 * 1024


def read_committed(
    path: Path, format: ExportFormat, committed: int, fields: Sequence[str]
) -> Iterator[dict[str, Any]]:
    """The id and ``fields`` of each record in the first ``committed`` bytes.

    Streams line by line, so memory stays flat whatever the file's size.
    """
    keys = ("id", *fields)
    with (
        open(path, "rb", buffering=0) as raw,
        io.BufferedReader(_Bounded(raw, committed), _READ_BUFFER) as reader,
    ):
        try:
            if format == "jsonl":
                for line in reader:
                    if line.strip():
                        record = orjson.loads(line)
                        yield {key: record.get(key) for key in keys}
                return
            # A cell may be as long as the text Copper holds (past the csv module's
            # default limit of 128 KiB); none is longer than the committed part.
            limit = csv.field_size_limit()
            csv.field_size_limit(max(limit, committed))
            try:
                with io.TextIOWrapper(reader, encoding="utf-8", newline="") as text:
                    for row in csv.DictReader(text):
                        yield {
                            key: int(row[key]) if row.get(key) not in (None, "") else None
                            for key in keys
                        }
            finally:
                csv.field_size_limit(limit)
        except (ValueError, csv.Error) as error:  # JSON, UTF-8 and int errors are ValueErrors
            raise CheckpointError(
                f"the committed part of {str(path)!r} is unreadable ({error}): "
                "the output was changed since"
            ) from error
