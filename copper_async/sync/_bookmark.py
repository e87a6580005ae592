"""The bookmark rules of an incremental read: pure, shared by every consumer.

Copper has no change feed; the only incremental handle is the search's
``minimum_modified_date`` filter (an edit stamps ``date_modified`` with
Copper's clock). A *bookmark* is a Unix second such that every record
modified before it has been stored. The rules:

- **The first read is full.** No bookmark: read everything the filter matches.
- **A later read starts at the bookmark minus the overlap.** The overlap
  (:data:`OVERLAP`, 300 s, at least the engine's clock-skew allowance) absorbs
  an edit whose timestamp was taken before it became searchable, and a few
  minutes of disagreement between this machine's clock and Copper's. Records
  read twice are harmless: a store upserts by id.
- **The bookmark moves only when a read completes**, to the time the read
  *started* minus the overlap, and never backwards. An edit made while the
  read ran is stamped after its start, so the next read sees it; a read that
  stopped early moves nothing. The start is this machine's clock, unless
  Copper's clock (its answers' ``Date``) shows that clock running ahead:
  then it is moved back by as much (:class:`ClockCheck`), as a bookmark
  ahead of Copper's clock would skip the edits made in between. A bookmark
  found ahead of Copper's clock (a fast clock set it) may move back.
- **An older record never replaces a newer one**: a row is replaced only by a
  record whose ``date_modified`` is the same or later (the same second can
  hold a later edit); a record lacking the field replaces (nothing to compare).

No database, network or CLI here: a Singer tap and the mirror's stores share
these functions.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Literal

import attrs
import orjson

from copper_async.filters import DateField, OpportunityFilter

__all__ = [
    "OVERLAP",
    "ClockCheck",
    "Mode",
    "bookmark_after",
    "choose_mode",
    "incremental_filter",
    "job_identity",
    "modified_since",
    "next_bookmark",
    "read_from",
    "replaces",
    "resumes",
]

#: Seconds taken off the bookmark both when it moves and when it is read from.
OVERLAP = 300

#: ``full``: everything the filter matches; ``incremental``: modified since the
#: bookmark; ``reconcile``: everything, then rows not seen are marked deleted.
Mode = Literal["full", "incremental", "reconcile"]


def read_from(bookmark: int | None, *, overlap: int = OVERLAP) -> int | None:
    """The ``minimum_modified_date`` a read starts at; None for a full read."""
    if bookmark is None:
        return None
    return max(bookmark - overlap, 0)


def next_bookmark(
    started: int, previous: int | None, *, overlap: int = OVERLAP, previous_ahead: bool = False
) -> int:
    """The bookmark after a *completed* read that started at ``started`` (Unix
    seconds); ``previous_ahead``: the previous one lies past Copper's clock, and
    is no bound."""
    moved = max(started - overlap, 0)
    return moved if previous is None or previous_ahead else max(previous, moved)


@attrs.define
class ClockCheck:
    """How far this machine's clock runs ahead of Copper's, at the least.

    Each answer's ``Date`` (Copper's clock, whole seconds, taken before the
    answer arrived) read against this machine's clock when the answer is
    handled gives a lower bound of (Copper's clock - this clock); the
    largest bound seen is kept. A start moved by it is never later than the
    start by Copper's clock, so a bookmark made from it skips nothing.
    """

    offset: float | None = None  # seconds to add to this clock's times; None: unknown

    def note(self, server_date: float | None, now: float) -> None:
        if server_date is not None:
            bound = server_date - now
            self.offset = bound if self.offset is None else max(self.offset, bound)

    def start(self, started: int) -> int:
        """``started`` (this clock), moved back if this clock runs ahead."""
        if self.offset is None or self.offset >= 0:
            return started
        return math.floor(started + self.offset)

    def ahead(self, bookmark: int | None, now: float) -> float:
        """Seconds ``bookmark`` lies past Copper's clock now (0: not ahead, or unknown)."""
        if bookmark is None or self.offset is None:
            return 0.0
        return max(bookmark - (now + self.offset), 0.0)


@attrs.frozen
class NextBookmark:
    """A completed read's new bookmark, and what the clocks showed (warnings)."""

    bookmark: int
    warnings: tuple[str, ...] = ()


def bookmark_after(
    started: int, previous: int | None, clock: ClockCheck, now: float
) -> NextBookmark:
    """The bookmark after a completed read that started at ``started`` by this
    machine's clock (``now`` is that clock's time), with the start and the
    previous bookmark judged by Copper's clock."""
    warnings = []
    ahead = clock.ahead(previous, now)
    if ahead > 0:
        warnings.append(
            f"the bookmark was {math.ceil(ahead)}s ahead of Copper's clock (a clock running "
            "fast set it): records modified before it may be missing; read everything once"
        )
    start = clock.start(started)
    if started - start > _SKEW_TOLD:
        warnings.append(
            f"this machine's clock runs {started - start}s ahead of Copper's: "
            "the bookmark follows Copper's"
        )
    bookmark = next_bookmark(start, previous, previous_ahead=ahead > 0)
    return NextBookmark(bookmark, tuple(warnings))


#: Seconds of this clock running ahead that are worth a warning (answers' Dates
#: are whole seconds, so a second or two is only their rounding).
_SKEW_TOLD = 60


def replaces(stored_modified: int | float | None, incoming_modified: int | float | None) -> bool:
    """Whether a record modified at ``incoming_modified`` may replace the stored row."""
    if stored_modified is None or incoming_modified is None:
        return True
    return incoming_modified >= stored_modified


def choose_mode(bookmark: int | None, *, full: bool = False, reconcile: bool = False) -> Mode:
    """What a run reads: a reconcile or an explicit full read as asked; with no
    bookmark yet, a full load; otherwise only the changes."""
    if reconcile:
        return "reconcile"
    if full or bookmark is None:
        return "full"
    return "incremental"


def resumes(unfinished: Mode, *, full: bool = False, reconcile: bool = False) -> bool:
    """Whether a run continues an unfinished one of mode ``unfinished``: yes,
    unless the run asks for another kind of read (the unfinished one is then
    dropped: what it stored stays, its bookmark never moved)."""
    if reconcile:
        return unfinished == "reconcile"
    if full:
        return unfinished == "full"
    return True


def incremental_filter(
    base: OpportunityFilter, bookmark: int | None, *, overlap: int = OVERLAP
) -> OpportunityFilter | None:
    """``base`` narrowed to the records modified since ``bookmark`` (minus the
    overlap); None when ``base``'s own ``maximum_modified_date`` leaves nothing."""
    return modified_since(base, read_from(bookmark, overlap=overlap))


def modified_since(base: OpportunityFilter, start: int | None) -> OpportunityFilter | None:
    """``base`` narrowed to ``minimum_modified_date >= start`` (None: unchanged);
    None when ``base``'s own ``maximum_modified_date`` leaves nothing."""
    if start is None:
        return base
    low, high = base.date_bounds(DateField.MODIFIED)
    low = start if low is None else max(low, start)
    if high is not None and high < low:
        return None
    return base.with_date_bounds(DateField.MODIFIED, low, high)


def job_identity(
    base: OpportunityFilter, *, base_url: str, user_email: str
) -> tuple[dict[str, Any], str]:
    """What a mirror job is (filter, API root, account) and its key.

    The account is kept as the SHA-256 of the user email, never the email; the
    token is no part of it.
    """
    body = base.to_body(page_number=None)
    # Paging and order change nothing a run stores (it orders each window itself).
    for unstored in ("page_size", "sort_by", "sort_direction"):
        body.pop(unstored, None)
    job = {
        "filter": body,
        "base_url": base_url.rstrip("/"),
        "account": hashlib.sha256(user_email.encode()).hexdigest(),
    }
    key = hashlib.sha256(orjson.dumps(job, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return job, key
