"""Singer messages as JSON lines: SCHEMA, RECORD and STATE (Singer spec 0.3).

orjson writes each line; datetimes come out as RFC 3339 with ``Z``. Records
are written a page at a time (one ``write`` per page) and the stream is
flushed after each page and each STATE, so a target sees whole pages and
never a STATE ahead of the records it covers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO

import orjson

__all__ = ["MessageWriter"]

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE


class MessageWriter:
    """Writes one stream's messages to a binary file (a tap's stdout)."""

    def __init__(self, out: BinaryIO, stream: str) -> None:
        self._out = out
        self._stream = stream
        self.records = 0

    def schema(
        self,
        schema: Mapping[str, Any],
        key_properties: Sequence[str],
        bookmark_properties: Sequence[str] = (),
    ) -> None:
        message: dict[str, Any] = {
            "type": "SCHEMA",
            "stream": self._stream,
            "schema": schema,
            "key_properties": list(key_properties),
        }
        if bookmark_properties:
            message["bookmark_properties"] = list(bookmark_properties)
        self._write(orjson.dumps(message, option=_OPTIONS))

    def records_page(self, records: Iterable[Mapping[str, Any]]) -> None:
        """One page of RECORD messages, stamped with the time they were read."""
        head: dict[str, Any] = {"type": "RECORD", "stream": self._stream, "record": None}
        head["time_extracted"] = dt.datetime.now(dt.UTC)
        lines = []
        for record in records:
            head["record"] = record
            lines.append(orjson.dumps(head, option=_OPTIONS))
        self.records += len(lines)
        self._write(b"".join(lines))

    def state(self, value: Mapping[str, Any]) -> None:
        self._write(orjson.dumps({"type": "STATE", "value": value}, option=_OPTIONS))

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._out.flush()
