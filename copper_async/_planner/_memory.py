"""Which ids each window delivered, so that none is delivered twice.

Which ids were delivered is kept per window (at most a cap's worth each,
dropped when the window is done). The windows that split one hot second on
the next field share one memory: an edit moves a record's ``date_modified``
between them, and it must still come once.

Each id maps to the reading that delivered it, ``(window key, pass)``: an id
that comes twice in one reading shows that offsets moved under it, while one
delivered by another reading is a plain duplicate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from copper_async._planner._windows import Bound, Window, inside
from copper_async.exceptions import RecordError

__all__ = ["REMEMBERED", "Memory", "SavedMemory", "Sifted", "sift"]

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

    def of(self, window: Window) -> Seen:
        return self._by_key[window.key]

    def add(self, windows: Sequence[Window], inherit: Seen | None) -> None:
        """Give new windows their memory; ids delivered before (``inherit``)
        stay dropped in them."""
        for window in windows:
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
    shifted: int  # ids this very reading delivered before


def sift(
    records: Sequence[Mapping[str, Any]], seen: Seen, reader: Reader, id_field: str, page: int
) -> Sifted:
    """Drop ids delivered before; mark the rest delivered by ``reader``."""
    fresh: list[Mapping[str, Any]] = []
    shifted = 0
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
        seen[record_id] = reader
    return Sifted(fresh, shifted)
