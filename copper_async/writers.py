"""Output files of an export: JSON lines and CSV, written page by page.

A writer appends whole pages and, on :meth:`commit`, makes them durable and
returns the committed length; an interrupted export is cut back to that
length on resume, so a file never holds half a record. Both formats can be
read back (:func:`read_committed`) to tell a resumed search which records it
already has.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

import orjson

from copper_async.exceptions import CheckpointError, InvalidOptionError

__all__ = [
    "CSV_BASE_COLUMNS",
    "CsvWriter",
    "ExportFormat",
    "JsonlWriter",
    "RecordWriter",
    "open_writer",
    "read_committed",
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

    path: Path

    def write_page(self, records: Sequence[Mapping[str, Any]]) -> None: ...

    def commit(self) -> int: ...

    def close(self) -> None: ...


class _FileWriter:
    def __init__(self, path: Path, committed: int) -> None:
        self.path = path
        try:
            self._file: BinaryIO = open(path, "r+b" if committed else "wb")  # noqa: SIM115
        except OSError as error:
            raise InvalidOptionError(
                "out", f"cannot write {str(path)!r}: {error.strerror}"
            ) from error
        if committed:
            size = self._file.seek(0, os.SEEK_END)
            if size < committed:
                self._file.close()
                raise CheckpointError(
                    f"{str(path)!r} holds {size} bytes but the checkpoint committed {committed}: "
                    "the output was changed since"
                )
            # Whatever was written after the last commit is dropped.
            self._file.truncate(committed)
            self._file.seek(committed)
        self._length = committed

    def _append(self, data: bytes) -> None:
        self._file.write(data)
        self._length += len(data)

    def commit(self) -> int:
        """Flush and fsync what was written; return the committed length."""
        self._file.flush()
        os.fsync(self._file.fileno())
        return self._length

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class JsonlWriter(_FileWriter):
    """One JSON object a line, exactly as the API sent it."""

    def write_page(self, records: Sequence[Mapping[str, Any]]) -> None:
        if records:
            dumps = orjson.dumps
            self._append(b"".join([dumps(record) + b"\n" for record in records]))


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        if all(
            isinstance(item, str | int | float) and not isinstance(item, bool) for item in value
        ):
            return _LIST_SEPARATOR.join(str(item) for item in value)
        return orjson.dumps(value).decode()
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


class CsvWriter(_FileWriter):
    """Flattened rows with stable columns.

    Lists of scalars (tags, multi-select values) are joined with ``;``,
    ``leads_converted_from`` is JSON, and each custom field gets a column
    ``custom_field_<definition id>``. The custom columns are fixed by the
    first page (a resumed export reuses them); fields first seen later, and
    keys this version does not know, go to JSON columns at the end.
    """

    def __init__(self, path: Path, committed: int, columns: Sequence[str] | None) -> None:
        super().__init__(path, committed)
        self.columns: list[str] | None = list(columns) if columns else None
        self._custom_ids: dict[int, str] = {}
        if self.columns:
            self._custom_ids = {
                int(c.removeprefix(_CUSTOM_PREFIX)): c
                for c in self.columns
                if c.startswith(_CUSTOM_PREFIX)
            }

    def write_page(self, records: Sequence[Mapping[str, Any]]) -> None:
        if not records:
            return
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if self.columns is None:
            ids = sorted(
                {
                    field["custom_field_definition_id"]
                    for record in records
                    for field in record.get("custom_fields") or ()
                    if isinstance(field, Mapping)
                }
            )
            self._custom_ids = {i: f"{_CUSTOM_PREFIX}{i}" for i in ids}
            self.columns = [
                *CSV_BASE_COLUMNS,
                *self._custom_ids.values(),
                _OTHER_CUSTOM,
                _EXTRA,
            ]
            writer.writerow(self.columns)
        for record in records:
            writer.writerow(self._row(record))
        self._append(buffer.getvalue().encode())

    def _row(self, record: Mapping[str, Any]) -> list[str]:
        assert self.columns is not None
        row = {column: _cell(record.get(column)) for column in CSV_BASE_COLUMNS}
        other: dict[str, Any] = {}
        for field in record.get("custom_fields") or ():
            definition = field.get("custom_field_definition_id")
            column = self._custom_ids.get(definition)
            if column is None:
                other[str(definition)] = field.get("value")
            else:
                row[column] = _cell(field.get("value"))
        known = {*CSV_BASE_COLUMNS, "custom_fields"}
        extra = {key: value for key, value in record.items() if key not in known}
        row[_OTHER_CUSTOM] = orjson.dumps(other).decode() if other else ""
        row[_EXTRA] = orjson.dumps(extra).decode() if extra else ""
        return [row.get(column, "") for column in self.columns]


def open_writer(
    path: Path, format: ExportFormat, *, committed: int = 0, columns: Sequence[str] | None = None
) -> JsonlWriter | CsvWriter:
    """A writer appending to ``path`` after its first ``committed`` bytes."""
    if format == "jsonl":
        return JsonlWriter(path, committed)
    if format == "csv":
        return CsvWriter(path, committed, columns)
    raise InvalidOptionError("format", f"must be 'jsonl' or 'csv', not {format!r}")


def read_committed(
    path: Path, format: ExportFormat, committed: int, fields: Sequence[str]
) -> Iterator[dict[str, Any]]:
    """The id and ``fields`` of each record in the first ``committed`` bytes."""
    with open(path, "rb") as file:
        data = file.read(committed)
    if format == "jsonl":
        for line in data.splitlines():
            if line:
                record = orjson.loads(line)
                yield {key: record.get(key) for key in ("id", *fields)}
        return
    reader = csv.DictReader(io.StringIO(data.decode()))
    for row in reader:
        yield {
            key: int(row[key]) if row.get(key) not in (None, "") else None
            for key in ("id", *fields)
        }
