"""Which ids each window delivered, so that none is delivered twice.

Which ids were delivered is kept per window (at most a cap's worth each,
dropped when the window is done). The windows that split one hot second on
the next field share one memory: an edit moves a record's ``date_modified``
between them, and it must still come once.

Each id maps to the reading that delivered it, ``(window key, pass)``. An id
that comes again came twice from the server, or was asked for twice by the
planner:

* in the same reading: offsets moved under it (or ties were ordered anew), so
  the server sent it twice;
* from a window whose bounds do not meet this one's (a sibling in a hot
  second): an edit moved it there, and the server sent it twice;
* from this window or one whose bounds meet it (an earlier pass, a peek, the
  window it reads on from or was cut from), or before a restore: the planner
  asked for it again, an overlap of its own making.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from copper_async._planner._windows import Bound, Window, inside, overlap
from copper_async.exceptions import RecordError

__all__ = ["REMEMBERED", "Memory", "Reader", "SavedMemory", "Sifted", "sift"]

Reader = tuple[int, int]
Seen = dict[int, Reader]
# The reader of ids restored from a checkpoint: never the current reading, so
# an id read before a crash is dropped, not taken for an offset shift.
REMEMBERED: Reader = (-1, -1)


@attrs.frozen
class WindowIds:
    key: int
    ids: list[int]


@attrs.frozen
class GroupIds:
    pin: tuple[Bound, ...]
    ids: list[int]


@attrs.frozen
class SavedMemory:
    """Delivered ids of the windows at level 0, and of each hot second."""

    windows: list[WindowIds]
    groups: list[GroupIds]


class Memory:
    def __init__(self) -> None:
        self._by_key: dict[int, Seen] = {}
        # The shared memory of each hot second being split on a further field.
        self._groups: dict[tuple[Bound, ...], Seen] = {}
        # The bounds of every window given a memory, kept after it is dropped:
        # ids it delivered may come again in its heirs.
        self._bounds: dict[int, tuple[Bound, ...]] = {}

    def of(self, window: Window) -> Seen:
        return self._by_key[window.key]

    def asked_before(self, reader: Reader, window: Window) -> bool:
        """Whether ``reader`` asked for records ``window`` may hold: it is an
        earlier reading of it (or a peek, or any before a restore), or of a
        window whose bounds meet it (an unknown reader counts as one)."""
        bounds = self._bounds.get(reader[0])
        return reader == REMEMBERED or bounds is None or overlap(bounds, window.bounds)

    def add(self, windows: Sequence[Window], inherit: Seen | None) -> None:
        """Give new windows their memory; ids delivered before (``inherit``)
        stay dropped in them."""
        for window in windows:
            self._bounds[window.key] = window.bounds
            if window.level > 0:
                seen = self._groups.setdefault(window.pin, {})
                if inherit is not None and inherit is not seen:
                    for record_id, reader in inherit.items():
                        seen.setdefault(record_id, reader)
            elif len(windows) == 1 and inherit is not None:
                seen = inherit  # the one heir of a window being replaced
            else:
                seen = dict(inherit) if inherit else {}
            self._by_key[window.key] = seen

    def drop(self, window: Window, active: Iterable[Window]) -> None:
        """Forget a window; a hot second's memory goes with its last window."""
        del self._by_key[window.key]
        pin = window.pin
        if pin and not any(other.pin == pin for other in active):
            del self._groups[pin]

    def remember(
        self,
        records: Iterable[Mapping[str, Any]],
        windows: Sequence[Window],
        fields: Sequence[str],
        id_field: str,
    ) -> None:
        """Mark ids delivered before a restore, in whatever window or hot
        second now holds them, so that none is delivered again."""
        groups = list(self._groups.items())
        level_zero = [(w.bounds, self._by_key[w.key]) for w in windows if w.level == 0]
        for record in records:
            record_id = record[id_field]
            for bounds, seen in (*groups, *level_zero):
                if inside(record, bounds, fields):
                    seen.setdefault(record_id, REMEMBERED)
                    break

    def save(self, windows: Sequence[Window]) -> SavedMemory:
        return SavedMemory(
            windows=[WindowIds(w.key, sorted(self.of(w))) for w in windows if w.level == 0],
            groups=[GroupIds(pin, sorted(seen)) for pin, seen in self._groups.items()],
        )

    def load(self, saved: SavedMemory | None, windows: Sequence[Window]) -> None:
        """Rebuild the memory of restored ``windows`` (ids as REMEMBERED)."""
        self._by_key.clear()
        self._groups.clear()
        own = {entry.key: entry.ids for entry in saved.windows} if saved else {}
        shared = {entry.pin: entry.ids for entry in saved.groups} if saved else {}
        for window in windows:
            self._bounds[window.key] = window.bounds
            if window.level > 0:
                ids = shared.pop(window.pin, ())
                seen = self._groups.setdefault(window.pin, {})
            else:
                ids = own.pop(window.key, ())
                seen = self._by_key.setdefault(window.key, {})
            seen.update(dict.fromkeys(ids, REMEMBERED))
            self._by_key[window.key] = seen
        if own or shared:
            raise ValueError("delivered ids saved for windows that are not in the snapshot")


@attrs.frozen
class Sifted:
    fresh: list[Mapping[str, Any]]
    shifted: int  # ids this very reading delivered before: offsets moved
    moved: int  # ids a window apart from the reader's delivered: an edit moved them
    overlaps: int  # ids a reading that asked for them too delivered

    @property
    def duplicates(self) -> int:
        """Ids dropped that the server sent twice."""
        return self.shifted + self.moved


def sift(
    records: Sequence[Mapping[str, Any]],
    seen: Seen,
    reader: Reader,
    id_field: str,
    page: int,
    asked_before: Callable[[Reader], bool],
) -> Sifted:
    """Drop ids delivered before; mark the rest delivered by ``reader``.
    ``asked_before(earlier)``: whether the reading ``earlier`` asked for the
    records ``reader`` asks for too."""
    fresh: list[Mapping[str, Any]] = []
    shifted = moved = overlaps = 0
    for record in records:
        record_id = record.get(id_field)
        if record_id is None:
            raise RecordError(id_field, "missing", context={"page_number": page})
        # A non-int id would be dropped as a "duplicate" of an equal one (True == 1,
        # 1.0 == 1) or crash the set (a list): refuse it, as the typed schema does.
        if record_id.__class__ is not int or record_id <= 0:
            raise RecordError(
                id_field,
                f"expected a positive integer id, got {record_id!r:.80}",
                context={"page_number": page},
            )
        earlier = seen.get(record_id)
        if earlier is None:
            fresh.append(record)
        elif earlier == reader:
            shifted += 1
            continue
        elif asked_before(earlier):
            overlaps += 1
        else:
            moved += 1
        seen[record_id] = reader
    return Sifted(fresh, shifted, moved, overlaps)
