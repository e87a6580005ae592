"""Every error copper_async raises, rooted at one class.

Catch :class:`CopperError` to catch everything; catch a subclass to handle one
failure domain. Errors carry their context as attributes (status, window,
counts) so callers never parse messages; the context is given when an error
is made, where it is raised, and not edited afterwards. aiohttp and asyncio
errors never leak out: the transport (:mod:`copper_async._transport`)
translates them at one boundary with ``raise ... from`` a copy scrubbed of
the access token.

::

    CopperError
    ├── InvalidInputError (ValueError)   bad input, raised before any request
    │   ├── InvalidFilterError             a search filter or its body
    │   └── InvalidOptionError             a client, engine or CLI option
    ├── RecordError (ValueError)          a record that does not fit the schema
    ├── ResponseError                     the API answered something unusable
    │   └── ResponseFormatError            2xx, but not a JSON array of objects
    │       └── ResponseTooLargeError      2xx, but above max_response_bytes
    ├── TransportError                    no answer: connection, DNS, TLS, reset
    │   └── RequestTimeoutError            no answer in time
    ├── APIError                          the API answered an error status
    │   ├── AuthenticationError            401, 403
    │   ├── InvalidRequestError            400, 404, 422 and other 4xx
    │   ├── RateLimitedError               429, still after every retry
    │   └── ServerError                    5xx, still after every retry
    ├── CapExceededError                  records the search cap makes unreachable
    ├── CheckpointError                   a checkpoint that cannot be used
    ├── OutputError                       an export's output cannot be written
    │   └── OutputClosedError              its stream's reader closed it (| head)
    ├── ExportBusyError                   another export holds its checkpoint or output
    ├── ClientClosedError                 the client was closed (or the session given to it)
    └── StoreError                        a sync's database cannot be used: bad URL,
        │                                 unreachable, refused login, read-only, disk
        │                                 full, lost mid-run
        ├── StoreBusyError                 another sync of this database and job runs
        └── SchemaMismatchError            a database of another tool or schema version

    SearchCapWarning (UserWarning)        on_cap="warn": records left unread

A failed sync leaves what it committed whole: the next run continues from
it. Store messages name the database without its password. The access token
is never part of any message or attribute here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIError",
    "AuthenticationError",
    "CapExceededError",
    "CheckpointError",
    "ClientClosedError",
    "CopperError",
    "ExportBusyError",
    "InvalidFilterError",
    "InvalidInputError",
    "InvalidOptionError",
    "InvalidRequestError",
    "OutputClosedError",
    "OutputError",
    "RateLimitedError",
    "RecordError",
    "RequestTimeoutError",
    "ResponseError",
    "ResponseFormatError",
    "ResponseTooLargeError",
    "SchemaMismatchError",
    "SearchCapWarning",
    "ServerError",
    "StoreBusyError",
    "StoreError",
    "TransportError",
]


class CopperError(Exception):
    """Root of every error raised by copper_async.

    ``context`` holds where it happened (window, page number, attempts...),
    for logs and for callers that want to resume. It is given at
    construction, by the code that raises the error.
    """

    def __init__(self, message: str, *, context: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = dict(context or {})

    def __str__(self) -> str:
        if not self.context:
            return self.message
        details = ", ".join(f"{key}={value!r}" for key, value in self.context.items())
        return f"{self.message} ({details})"


class InvalidInputError(CopperError, ValueError):
    """Input that cannot be valid; raised before any request is sent."""


class InvalidFilterError(InvalidInputError):
    """A search filter, or a search body, that Copper would not accept.

    ``field`` names the offending field (e.g. ``"assignee_ids[2]"``).
    """

    def __init__(
        self, field: str, reason: str, *, context: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"invalid filter field {field!r}: {reason}", context=context)
        self.field = field
        self.reason = reason


class InvalidOptionError(InvalidInputError):
    """A client, engine or CLI option out of its allowed range."""

    def __init__(
        self, option: str, reason: str, *, context: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"invalid option {option!r}: {reason}", context=context)
        self.option = option
        self.reason = reason


class RecordError(CopperError, ValueError):
    """A record that does not match the opportunity schema.

    ``path`` is the field path inside the record, e.g. ``"custom_fields[3].value"``;
    ``record_id`` is the record's id when it could be read.
    """

    def __init__(
        self,
        path: str,
        reason: str,
        *,
        record_id: object = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        where = f" in record {record_id!r}" if record_id is not None else ""
        super().__init__(f"malformed record field {path!r}{where}: {reason}", context=context)
        self.path = path
        self.reason = reason
        self.record_id = record_id


class ResponseError(CopperError):
    """The API answered, but not with something usable."""


class ResponseFormatError(ResponseError):
    """A success status whose body is not a JSON array of records.

    ``excerpt`` is the start of what came back, to show what went wrong.
    """

    def __init__(
        self, reason: str, *, excerpt: str = "", context: Mapping[str, Any] | None = None
    ) -> None:
        message = f"unexpected response body: {reason}"
        if excerpt:
            message += f"; body starts {excerpt!r}"
        super().__init__(message, context=context)
        self.reason = reason
        self.excerpt = excerpt


class ResponseTooLargeError(ResponseFormatError):
    """A success status whose body is above ``max_response_bytes``; read no further."""


class TransportError(CopperError):
    """No usable answer: connection refused or reset, DNS, TLS, timeouts."""


class RequestTimeoutError(TransportError):
    """A request took longer than its timeout."""


class APIError(CopperError):
    """The API answered with an error status.

    ``status`` is the HTTP status, ``body`` the start of the error body
    (decoded as text), ``attempts`` how many times the request was sent.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: str = "",
        attempts: int = 1,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        text = f"{message}: HTTP {status}"
        if body:
            text += f" {body[:300]!r}"
        super().__init__(text, context=context)
        self.status = status
        self.body = body
        self.attempts = attempts


class AuthenticationError(APIError):
    """401 or 403: the token, the email or the application header was refused."""


class InvalidRequestError(APIError):
    """400, 404, 422 or another 4xx that retrying cannot fix."""


class RateLimitedError(APIError):
    """429 on every attempt, until the retry budget ran out."""


class ServerError(APIError):
    """5xx on every attempt, until the retry budget ran out."""


class CapExceededError(CopperError):
    """A window that the search cap keeps from being read in full.

    Raised when even a single second of every split field holds more records
    than the cap. ``window`` describes the bounds, ``count`` how many records
    it matches (``None`` when the API sent no usable total: then only "at
    least ``cap``" is known), ``cap`` the cap and ``unreachable`` how many
    records cannot be read (``None`` when unknown). Copper documents its total
    as an upper bound: unless the search saw totals count a window exactly
    (``exact``), ``count`` and ``unreachable`` are upper bounds.
    """

    def __init__(
        self,
        *,
        window: Mapping[str, Any],
        count: int | None,
        cap: int,
        exact: bool = True,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        self.window = dict(window)
        self.count = count
        self.cap = cap
        self.exact = exact
        self.unreachable: int | None = None if count is None else max(count - cap, 0)
        if count is None:
            message = (
                f"window {self.window!r} matches at least {cap} records (the search cap) "
                "and the API sent no total, so some records may be unreachable"
            )
        elif exact:
            message = (
                f"{_records(max(count - cap, 0))} {'is' if count - cap == 1 else 'are'} "
                f"unreachable: window {self.window!r} "
                f"matches {count} records and the search cap is {cap}"
            )
        else:
            message = (
                f"up to {_records(max(count - cap, 0))} may be unreachable: window "
                f"{self.window!r} matches up to {count} records (the API's total, an upper "
                f"bound) and the search cap is {cap}"
            )
        super().__init__(message, context=context)


def _records(count: int) -> str:
    return "1 record" if count == 1 else f"{count} records"


class CheckpointError(CopperError):
    """A checkpoint that is unreadable, or belongs to a different job."""


class OutputError(CopperError):
    """An export's output file cannot be written (disk full, I/O error).

    ``path`` is the file. What was committed before stays whole: with a
    checkpoint, the export resumes from there once the disk has room.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot write {path!r}: {reason}")
        self.path = path


class OutputClosedError(OutputError):
    """The reader of an export's stream closed it (a pipe into ``head``).

    The export stopped there: what it wrote went to a reader that wanted no
    more, so nothing was wrong with the records or the disk.
    """


class ExportBusyError(CopperError):
    """Another export of the same checkpoint or output is running."""


class ClientClosedError(CopperError):
    """The client was used after :meth:`~copper_async.CopperClient.aclose`, or
    the aiohttp session given to it was closed; a request waiting when the
    client closed (out a 429's pause, or before a retry) ends with it too,
    ``context["which"]`` telling which."""


class StoreError(CopperError):
    """The sync's database cannot be opened, read or written."""


class StoreBusyError(StoreError):
    """Another sync of the same database and job is running."""


class SchemaMismatchError(StoreError):
    """The database belongs to another tool or another schema version: never altered."""


class SearchCapWarning(UserWarning):
    """``on_cap="warn"``: a window was read only up to the search cap."""
