"""Windows: inclusive bounds on the split fields, and where to cut them.

Windows are inclusive ranges of whole seconds (``None`` for an open end) that
meet exactly: a cut at ``d`` gives ``[lo, d - 1]`` and ``[d, hi]``, so the
leaves partition the starting range with no gap and no overlap. The functions
here only compute pieces; the planner turns them into windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from copper_async.exceptions import CopperError

__all__ = [
    "Bound",
    "Cut",
    "Piece",
    "ReadOn",
    "Window",
    "inside",
    "overlap",
    "plan_cut",
    "plan_read_on",
]

Bound = tuple[int | None, int | None]

# Guards against a sort order so broken that cuts stop shrinking windows. Only
# splits that should not have been needed count (see plan_cut), so a search of
# any size stays far below it.
MAX_SPLIT_DEPTH = 200


@attrs.frozen
class Window:
    """A slice of the search: inclusive bounds on each split field.

    ``bounds[i]`` bounds ``split_fields[i]``; ``level`` is the field this
    window is sorted and cut on (earlier fields are pinned to one second).
    """

    key: int
    bounds: tuple[Bound, ...]
    level: int
    depth: int = 0

    def describe(self, split_fields: Sequence[str]) -> dict[str, Any]:
        """The bounds as a readable mapping, for errors and logs."""
        return {field: [lo, hi] for field, (lo, hi) in zip(split_fields, self.bounds, strict=True)}

    @property
    def pin(self) -> tuple[Bound, ...]:
        """The bounds of the fields pinned to one second (empty at level 0)."""
        return self.bounds[: self.level]


@attrs.frozen
class Piece:
    """A window to create in place of another."""

    bounds: tuple[Bound, ...]
    level: int
    depth: int
    # Counts prove it overflows: its first look is the cut page.
    look_at_cut_page: bool = False
    # Its page 1, already read by the window it replaces (see ``Looking.held``).
    held: list[Mapping[str, Any]] | None = attrs.field(default=None, eq=False)
    # Where the window it continues stopped short (see ``WindowState.stopped_at``).
    stopped_at: int | None = None


@attrs.frozen
class Cut:
    """How a window that may not fit is split (``pieces`` empty: it is one
    second wide, a hot spot)."""

    pieces: tuple[Piece, ...]
    reason: str
    hot_spots: int = 0


@attrs.frozen
class ReadOn:
    """A window that stopped at a page boundary, continued from the last value
    read: ``done`` (when not None) was read in full, ``rest`` replaces it."""

    done: Piece | None
    rest: tuple[Piece, ...]
    hot_spots: int = 0


def split_value(record: Mapping[str, Any], field: str) -> int | None:
    value = record.get(field)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def with_bound(bounds: tuple[Bound, ...], level: int, piece: Bound) -> tuple[Bound, ...]:
    """``bounds`` with the bound on ``level`` replaced."""
    return (*bounds[:level], piece, *bounds[level + 1 :])


def inside(record: Mapping[str, Any], bounds: Sequence[Bound], fields: Sequence[str]) -> bool:
    """Whether ``record`` lies within ``bounds`` on the first ``len(bounds)`` fields."""
    for field, (lo, hi) in zip(fields, bounds, strict=False):
        value = split_value(record, field)
        if value is None or (lo is not None and value < lo) or (hi is not None and value > hi):
            return False
    return True


def plan_cut(
    window: Window,
    records: Sequence[Mapping[str, Any]],
    total: int | None,
    *,
    fields: Sequence[str],
    cap: int,
    first_at_most: int,
) -> Cut:
    """Where to cut ``window``, whose full cut page is ``records``.

    ``first_at_most`` is how many records lie before the cut page's last one.
    """
    level = window.level
    field = fields[level]
    lo, hi = window.bounds[level]
    cut_value = split_value(records[-1], field) if records else None
    if window.depth >= MAX_SPLIT_DEPTH:
        raise CopperError(
            "the search's sort order is inconsistent: splitting does not converge",
            context={"window": window.describe(fields)},
        )
    if lo is not None and lo == hi:
        return Cut((), "hot spot: splitting on the next field")
    deeper = window.depth + 1
    if cut_value is not None and (lo is None or cut_value > lo) and (hi is None or cut_value <= hi):
        # The first piece holds fewer than k pages of records: a correct sort
        # makes it fit, so only its splitting again counts towards the guard.
        # The rest overflows for sure when the total says so.
        overflowing_rest = total is not None and total - first_at_most > cap
        pieces = (
            Piece(with_bound(window.bounds, level, (lo, cut_value - 1)), level, deeper),
            Piece(
                with_bound(window.bounds, level, (cut_value, hi)),
                level,
                window.depth,
                look_at_cut_page=overflowing_rest,
            ),
        )
        return Cut(pieces, "cut at the cap position")
    if cut_value is not None and cut_value == lo:
        # Pages 1..k all lie in second ``lo``: it holds k pages or more, so it
        # goes straight to the next field (or to its own cut page).
        second = with_bound(window.bounds, level, (lo, lo))
        has_next = level + 1 < len(fields)
        hot = Piece(second, level + 1 if has_next else level, deeper, look_at_cut_page=True)
        rest = Piece(with_bound(window.bounds, level, (lo + 1, hi)), level, window.depth)
        return Cut((hot, rest), "one second holds a cap's worth of records", int(has_next))
    halves = tuple(
        Piece(with_bound(window.bounds, level, half), level, deeper)
        for half in _bisect(records, field, lo, hi)
    )
    return Cut(halves, "sort order disagrees with the bounds: bisecting")


def _bisect(
    records: Sequence[Mapping[str, Any]], field: str, lo: int | None, hi: int | None
) -> list[Bound]:
    if lo is not None and hi is not None:
        middle = (lo + hi) // 2
        return [(lo, middle), (middle + 1, hi)]
    values = sorted(v for v in (split_value(r, field) for r in records) if v is not None)
    if not values:
        raise CopperError(
            f"records carry no {field!r} value, so the window cannot be split",
            context={"field": field},
        )
    middle = values[len(values) // 2]
    if lo is not None:
        middle = max(middle, lo)
    if hi is not None:
        middle = min(middle, hi - 1)
    return [(lo, middle), (middle + 1, hi)]


def overlap(a: Sequence[Bound], b: Sequence[Bound]) -> bool:
    """Whether two windows' bounds share a point: on every field, their ranges meet."""
    return all(
        (a_lo is None or b_hi is None or a_lo <= b_hi)
        and (b_lo is None or a_hi is None or b_lo <= a_hi)
        for (a_lo, a_hi), (b_lo, b_hi) in zip(a, b, strict=True)
    )


def plan_read_on(window: Window, top: int | None, field_count: int) -> ReadOn | None:
    """Continue ``window`` from ``top``, the last value read, as ``[top, hi]``
    (``[lo, top - 1]`` was read in full); None when it cannot be narrowed."""
    level = window.level
    lo, hi = window.bounds[level]
    if top is None or (hi is not None and top > hi):
        return None
    if lo is None or top > lo:
        done = Piece(with_bound(window.bounds, level, (lo, top - 1)), level, 0)
        rest = Piece(with_bound(window.bounds, level, (top, hi)), level, window.depth)
        return ReadOn(done, (rest,))
    # Every record read lies in second ``lo``: narrow that second on the next field.
    has_next = level + 1 < field_count
    second = with_bound(window.bounds, level, (lo, lo))
    if lo == hi:
        if not has_next:
            return None
        return ReadOn(None, (Piece(second, level + 1, window.depth + 1),), 1)
    pieces = (
        Piece(second, level + 1 if has_next else level, window.depth + 1),
        Piece(with_bound(window.bounds, level, (lo + 1, hi)), level, window.depth),
    )
    return ReadOn(None, pieces, int(has_next))
