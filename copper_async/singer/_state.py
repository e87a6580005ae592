"""The tap's state, in the shape Meltano's SDK writes::

    {"bookmarks": {"opportunities": {"replication_key": "date_modified",
                                     "replication_key_value": "2026-01-02T03:04:05Z"}}}

The value is the shared bookmark (:mod:`copper_async.sync._bookmark`) as an
ISO 8601 UTC date-time; reading accepts that, any ISO 8601 date-time, or
Unix seconds. Keys of other streams or tools are carried over unchanged.

The bookmark also names the job it was made for (:data:`JOB_KEY`: a digest
of the filter, API root and account): records a new filter matches may have
been modified before a bookmark made for the old one, so a bookmark of
another job is not used (a warning says so) and every record is read.

A STATE written during a run also carries the run itself beside the bookmark,
under :data:`RUN_KEY`: when it started, a digest of what it reads, and the
planner's windows (those finished are left out). A restart from that STATE
goes on with the same run; the one written at the end drops it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping
from typing import Any

from copper_async import InvalidOptionError
from copper_async.singer._catalog import REPLICATION_KEY, STREAM

__all__ = ["JOB_KEY", "RUN_KEY", "read_bookmark", "read_run", "with_bookmark", "with_run"]

logger = logging.getLogger(__name__)

#: The key of an unfinished run's progress in the stream's bookmark.
RUN_KEY = "copper_async_run"
#: The key of the job (filter, API root, account) a bookmark was made for.
JOB_KEY = "copper_async_job"


def _seconds(value: Any) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            return int(moment.timestamp())
    raise InvalidOptionError(
        "state", f"replication_key_value must be an ISO 8601 date-time, not {value!r}"
    )


def _stream_entry(state: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The stream's entry in ``state``, its shape checked; None when there is none."""
    if not state:
        return None
    if not isinstance(state, Mapping):
        raise InvalidOptionError("state", "must be a JSON object")
    bookmarks = state.get("bookmarks", {})
    if not isinstance(bookmarks, Mapping):
        raise InvalidOptionError("state", "'bookmarks' must be an object")
    entry = bookmarks.get(STREAM)
    if entry is not None and not isinstance(entry, Mapping):
        raise InvalidOptionError("state", f"bookmark of {STREAM!r} must be an object")
    return entry


def read_bookmark(state: Mapping[str, Any] | None, job: str | None = None) -> int | None:
    """The bookmark (Unix seconds) of the stream in ``state``; None when there
    is none, or when it names a job other than ``job``."""
    entry = _stream_entry(state)
    if entry is None:
        return None
    key = entry.get("replication_key", REPLICATION_KEY)
    if key != REPLICATION_KEY:
        raise InvalidOptionError(
            "state", f"bookmark of {STREAM!r} is on {key!r}, not {REPLICATION_KEY!r}"
        )
    value = entry.get("replication_key_value")
    if value is None:
        unknown = sorted(set(entry) - {"replication_key", RUN_KEY, JOB_KEY})
        if unknown:  # another tool's shape: say why every record is read again
            logger.warning(
                "the state's bookmark of %r has no replication_key_value (keys: %s): "
                "reading every record",
                STREAM,
                ", ".join(unknown),
            )
        return None
    bookmark = _seconds(value)
    made_for = entry.get(JOB_KEY)
    if job is not None and made_for is not None and made_for != job:
        logger.warning(
            "the state's bookmark of %r was made for another filter, API root or account: "
            "reading every record",
            STREAM,
        )
        return None
    return bookmark


def with_bookmark(
    state: Mapping[str, Any] | None, bookmark: int, job: str | None = None
) -> dict[str, Any]:
    """``state`` with the stream's bookmark set to ``bookmark`` (Unix seconds),
    made for ``job``, and no unfinished run."""
    moment = dt.datetime.fromtimestamp(bookmark, dt.UTC)
    entry = {
        "replication_key": REPLICATION_KEY,
        "replication_key_value": moment.isoformat().replace("+00:00", "Z"),
    }
    if job is not None:
        entry[JOB_KEY] = job
    return _with_entry(state, entry)


def read_run(state: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The unfinished run that ``state`` carries for the stream, if any
    (the state's shape is checked: a full-table run reads no bookmark)."""
    run = (_stream_entry(state) or {}).get(RUN_KEY)
    return run if isinstance(run, Mapping) else None


def with_run(state: Mapping[str, Any] | None, run: Mapping[str, Any] | None) -> dict[str, Any]:
    """``state`` with the stream's unfinished run set to ``run`` (None: dropped);
    its bookmark stays as it is."""
    entry = dict(((state or {}).get("bookmarks") or {}).get(STREAM) or {})
    entry.pop(RUN_KEY, None)
    if run is not None:
        entry[RUN_KEY] = dict(run)
    return _with_entry(state, entry)


def _with_entry(state: Mapping[str, Any] | None, entry: dict[str, Any]) -> dict[str, Any]:
    base = dict(state or {})
    bookmarks = dict(base.get("bookmarks") or {})
    bookmarks[STREAM] = entry
    base["bookmarks"] = bookmarks
    return base
