"""The fake server's records, stored in columns and kept in date order.

A store keeps no dict per record. Each record has a *slot* (its row in the
columns; slots follow ascending ids) and is stored as

- its JSON text, encoded once, so a page is a ``b",".join`` of stored bytes;
- one entry in each column that a filter or a sort reads (plain lists, with
  values of the wrong type stored as null), plus one column per custom field.

``date_created`` and ``date_modified`` also have an *order*: every slot with
a value, sorted by (date, id), kept up to date through every mutation
(:mod:`copper_async.testing._dataset` searches them).
"""

from __future__ import annotations

import bisect
import collections
import datetime as dt
import heapq
import itertools
import operator
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import compress, repeat
from typing import Any, Final, overload

import orjson

from copper_async.exceptions import InvalidOptionError, RecordError
from copper_async.testing._columns import _custom_value, _folded, _midnight, _number, _text
from copper_async.testing._generate import Generated
from copper_async.testing._query import PRIORITY_IDS, STATUS_IDS, Query

__all__ = ["Store"]

_UTC = dt.UTC
_DAY = 86_400
_DEFAULT_START = int(dt.datetime(2015, 1, 1, tzinfo=_UTC).timestamp())
_DEFAULT_END = int(dt.datetime(2026, 1, 1, tzinfo=_UTC).timestamp())
#: The date fields with a maintained order.
_ORDERED: Final = ("date_created", "date_modified")

# The columns filters and sorts read, besides ids, followed state and custom fields.
_ID_FIELDS: Final = (
    "assignee_id",
    "company_id",
    "customer_source_id",
    "loss_reason_id",
    "pipeline_id",
    "pipeline_stage_id",
    "primary_contact_id",
)
_NUMBER_FIELDS: Final = (
    "monetary_value",
    "interaction_count",
    "date_last_contacted",
    "date_stage_changed",
    "date_created",
    "date_modified",
)
_COLUMNS: Final = (
    *_ID_FIELDS,
    *_NUMBER_FIELDS,
    "name",
    "name_key",
    "company_key",
    "monetary_unit",
    "status",
    "priority",
    "tags",
    "close_date",
)
#: sort_by -> the column it orders on (keys: casefolded names, status and priority ids).
_EMPTY: frozenset[str] = frozenset()


class _Ids(Sequence[int]):
    """A search result: the matched slots in order, read as ids on demand."""

    __slots__ = ("_id", "_slots")

    def __init__(self, slots: Sequence[int], id_column: array[int]) -> None:
        self._slots = slots
        self._id = id_column  # append-only, so a result stays valid after mutations

    def __len__(self) -> int:
        return len(self._slots)

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...
    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            ids = self._id
            return [ids[slot] for slot in self._slots[index]]
        return self._id[self._slots[index]]

    def __iter__(self) -> Iterator[int]:
        return map(self._id.__getitem__, self._slots)

    def __repr__(self) -> str:
        shown = ", ".join(map(str, self[:5]))
        more = ", ..." if len(self) > 5 else ""
        return f"<{len(self)} ids: [{shown}{more}]>"


class Store:
    """The records' columns, JSON and date orders (see the module docstring)."""

    def __init__(self, *, start: int = _DEFAULT_START, end: int = _DEFAULT_END) -> None:
        if start >= end:
            raise InvalidOptionError("start", f"must be before end ({start} >= {end})")
        self.start, self.end = start, end
        self.version = 0
        self._id: array[int] = array("q")  # slot -> id, ascending
        self._alive = bytearray()
        self._followed = bytearray()
        self._json: list[bytes | None] = []
        self._cols: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
        self._custom: dict[int, list[Any]] = {}
        self._orders: dict[str, array[int]] = {field: array("q") for field in _ORDERED}
        # Slots whose ordered field is null: an unbounded sort on it serves them last.
        self._nulls: dict[str, set[int]] = {field: set() for field in _ORDERED}
        self._count = 0
        self._next_id = 1
        self._cache: OrderedDict[tuple[Query, int, str], _Ids] = OrderedDict()
        # (column, descending) -> its live, non-null slots in order; per data version.
        self._sort_orders: dict[tuple[str, bool], list[int]] = {}

    def _append(self, record_id: int, encoded: bytes, followed: bool, record: Any) -> int:
        """Add one record in a new slot (columns only; orders are the caller's)."""
        slot = len(self._id)
        self._id.append(record_id)
        self._alive.append(1)
        self._followed.append(1 if followed else 0)
        self._json.append(encoded)
        for column in self._cols.values():
            column.append(None)
        for column in self._custom.values():
            column.append(None)
        self._fill(slot, record)
        self._count += 1
        self._next_id = max(self._next_id, record_id + 1)
        return slot

    def _extend(self, ids: Sequence[int], records: Generated) -> None:
        """Add generated records in new slots (columns only; orders are the caller's)."""
        n = len(records.encoded)
        for key, values in records.columns.items():
            column = self._custom_column(key) if isinstance(key, int) else self._cols[key]
            column.extend(values)
        size = len(self._id) + n
        for column in self._custom.values():
            if len(column) < size:  # a loaded record's field: null in generated ones
                column.extend([None] * (size - len(column)))
        self._id.extend(ids)
        self._alive.extend(b"\x01" * n)
        self._followed.extend(records.followed)
        self._json.extend(records.encoded)
        self._count += n
        if n:
            self._next_id = max(self._next_id, max(ids) + 1)

    def _fill(self, slot: int, record: Mapping[str, Any]) -> None:
        """Write one record's fields into every column at ``slot``."""
        cols = self._cols
        get = record.get
        for field in _ID_FIELDS:
            cols[field][slot] = _number(get(field))
        for field in _NUMBER_FIELDS:
            cols[field][slot] = _number(get(field))
        # Floats throughout: a sort over keys of one type takes CPython's fast path.
        if (value := cols["monetary_value"][slot]) is not None:
            cols["monetary_value"][slot] = float(value)
        name, company = get("name"), get("company_name")
        cols["name"][slot] = _text(name)
        cols["name_key"][slot] = _folded(name)
        cols["company_key"][slot] = _folded(company)
        cols["monetary_unit"][slot] = _text(get("monetary_unit"))
        status, priority = get("status"), get("priority")
        cols["status"][slot] = STATUS_IDS.get(status) if isinstance(status, str) else None
        cols["priority"][slot] = PRIORITY_IDS.get(priority) if isinstance(priority, str) else None
        tags = get("tags")
        cols["tags"][slot] = (
            frozenset(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else _EMPTY
        )
        cols["close_date"][slot] = _midnight(get("close_date"))
        for column in self._custom.values():
            column[slot] = None
        fields = get("custom_fields")
        for entry in fields if isinstance(fields, list) else ():
            definition = entry.get("custom_field_definition_id") if type(entry) is dict else None
            if type(definition) is int:
                self._custom_column(definition)[slot] = _custom_value(entry.get("value"))

    def _custom_column(self, definition: int) -> list[Any]:
        column = self._custom.get(definition)
        if column is None:
            column = self._custom[definition] = [None] * len(self._id)
        return column

    def _finish_loading(self) -> None:
        """Put slots in id order, refuse duplicate ids, build the date orders."""
        ids = self._id
        if any(a >= b for a, b in itertools.pairwise(ids)):
            permutation = sorted(range(len(ids)), key=ids.__getitem__)
            for a, b in itertools.pairwise(permutation):
                if ids[a] == ids[b]:
                    raise RecordError("id", f"duplicate record id {ids[a]}", record_id=ids[a])
            self._id = array("q", [ids[i] for i in permutation])
            self._alive = bytearray([self._alive[i] for i in permutation])
            self._followed = bytearray([self._followed[i] for i in permutation])
            self._json = [self._json[i] for i in permutation]
            for name, column in self._cols.items():
                self._cols[name] = [column[i] for i in permutation]
            for definition, values in self._custom.items():
                self._custom[definition] = [values[i] for i in permutation]
        for field in _ORDERED:
            column = self._cols[field]
            slots = range(len(self._id))
            nulls = {s for s in slots if column[s] is None} if None in column else set()
            present = [s for s in slots if column[s] is not None] if nulls else slots
            if not nulls and all(map(operator.le, column, itertools.islice(column, 1, None))):
                self._orders[field] = array("q", slots)  # generated: created in id order
                self._nulls[field] = nulls
                continue
            # Slots are in id order and sorts are stable: ties stay in id order.
            self._orders[field] = array("q", sorted(present, key=column.__getitem__))
            self._nulls[field] = nulls
        self._changed()

    # -- reading -------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    def ids(self) -> list[int]:
        """Every id, ascending."""
        return list(itertools.compress(self._id, self._alive))

    def _slot(self, record_id: int) -> int | None:
        ids = self._id
        if not ids:
            return None
        guess = record_id - ids[0]  # generated ids are contiguous: usually a hit
        if not 0 <= guess < len(ids) or ids[guess] != record_id:
            guess = bisect.bisect_left(ids, record_id)
            if guess == len(ids) or ids[guess] != record_id:
                return None
        return guess if self._alive[guess] else None

    def _existing_slot(self, record_id: int) -> int:
        slot = self._slot(record_id)
        if slot is None:
            raise KeyError(record_id)
        return slot

    def record(self, record_id: int) -> dict[str, Any]:
        """One record as served (without ``followed``); KeyError if there is none."""
        result: dict[str, Any] = orjson.loads(self._stored(self._existing_slot(record_id)))
        return result

    def _stored(self, slot: int) -> bytes:
        encoded = self._json[slot]
        assert encoded is not None, "a live slot always has its JSON"
        return encoded

    def encode_page(self, ids: Sequence[int]) -> bytes:
        """The JSON array of these records (ids without a record are skipped)."""
        slot, stored = self._slot, self._stored
        return b"[" + b",".join([stored(s) for i in ids if (s := slot(i)) is not None]) + b"]"

    def _live(self) -> Sequence[int]:
        """Every live slot, ascending."""
        if self._count == len(self._id):
            return range(self._count)  # nothing deleted: no list needed
        return list(compress(range(len(self._alive)), self._alive))

    # -- keeping the date orders ------------------------------------------------------

    def _reorder(self, field: str, touched: Sequence[int]) -> None:
        """Re-index ``touched`` slots (edited, deleted or new) in one merge pass."""
        column, nulls, alive = self._cols[field], self._nulls[field], self._alive
        marks = _marks(touched, len(self._id))
        order = self._orders[field]
        kept = array("q", compress(order, map(_FLIP.__getitem__, map(marks.__getitem__, order))))
        nulls.difference_update(touched)
        fresh = []
        for slot in touched:
            if alive[slot]:
                if column[slot] is None:
                    nulls.add(slot)
                else:
                    fresh.append(slot)
        key = self._order_key(field)
        fresh.sort(key=key)
        if not kept or not fresh or key(fresh[0]) >= key(kept[-1]):
            kept.extend(fresh)  # the usual case: everything touched is the newest
        else:
            kept = array("q", heapq.merge(kept, fresh, key=key))
        self._orders[field] = kept

    def _order_key(self, field: str) -> Callable[[int], tuple[Any, int]]:
        column = self._cols[field]
        return lambda slot: (column[slot], slot)

    def _place(self, field: str, slot: int) -> None:
        """Index ``slot`` under its current value of ``field``."""
        value = self._cols[field][slot]
        if value is None:
            self._nulls[field].add(slot)
            return
        order = self._orders[field]
        order.insert(bisect.bisect_left(order, (value, slot), key=self._order_key(field)), slot)

    def _displace(self, field: str, slot: int) -> None:
        """Unindex ``slot`` (before its value of ``field`` changes)."""
        value = self._cols[field][slot]
        if value is None:
            self._nulls[field].discard(slot)
            return
        order = self._orders[field]
        position = bisect.bisect_left(order, (value, slot), key=self._order_key(field))
        if position < len(order) and order[position] == slot:
            del order[position]

    def _changed(self) -> None:
        self.version += 1
        self._cache.clear()
        self._sort_orders.clear()


def _marks(slots: Iterable[int], size: int) -> bytearray:
    """A byte per slot below ``size``: 1 for each of ``slots``."""
    marks = bytearray(size)
    collections.deque(map(marks.__setitem__, slots, repeat(1)), maxlen=0)
    return marks


_FLIP = bytes([1, 0]) + bytes(254)  # bytes.translate table: 0 <-> 1
