"""The fake server's records: built, searched like Copper, and changed as users do.

A :class:`Dataset` is a :class:`~copper_async.testing._store.Store` (columns,
JSON and date orders, one slot a record). The windows the streaming client
asks for (a date range sorted by that date, with or without more filters) are
a bisect and a slice of a date order: no full scan, no sort. Other queries
scan the columns (a filter is a ``compress`` over a ``map`` of its column, at
C speed where it can be) and sort what matched; when nearly every record
matches, a full order of the sort column is built instead and kept (a few,
until the data changes) for later queries to walk. Each query's result is
cached, per data version, in a small LRU; a result is a lazy
:class:`Sequence` of ids over the matched slots, so reading a page maps only
that page's slots to ids.

Orders and ties: ties keep id order in both directions, unless asked to
play another order (:mod:`copper_async.testing._ties`); a record whose sort
field is null comes last in both directions. ``inactive_days`` orders by
the time since the last contact (most recent contact first when ascending).
"""

from __future__ import annotations

import bisect
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import compress
from typing import Any, Final

import attrs
import orjson

from copper_async.exceptions import InvalidOptionError, RecordError
from copper_async.testing._columns import (
    _bound_filter,
    _custom_filter,
    _exact_copy,
    _record_id,
    _where,
    _where_not,
)
from copper_async.testing._generate import CHUNK, draw_created, draw_modified, edit, generate
from copper_async.testing._options import Ties
from copper_async.testing._query import PRIORITY_IDS, SORT_FIELDS, STATUS_IDS, Query
from copper_async.testing._store import (
    _DAY,
    _DEFAULT_END,
    _DEFAULT_START,
    _FLIP,
    _ORDERED,
    Store,
    _Ids,
    _marks,
)
from copper_async.testing._ties import TiesPerRequest, ties_per_query

__all__ = ["Changes", "Dataset", "HotSpot"]

_CACHE_SIZE = 8
#: Searches use the date orders of the fields listed here (tests empty it to
#: compare the index paths with full scans).
_INDEXED: tuple[str, ...] = _ORDERED
#: A bounded index is preferred to a smaller candidate set up to this factor,
#: because it spares the sort.
_PREFER_ORDERED = 4
#: While a full order of its sort column is kept (at most _SORT_ORDERS of them, until
#: the data changes), a result holding more than 1/_WALK_SHARE of the records is put
#: in order by walking it; smaller ones are sorted.
_WALK_SHARE = 2
_SORT_ORDERS = 3
#: Slots holding more than 1/_MARK_SHARE of all slots are put back in id order by
#: marking them (linear in the slot count); fewer are sorted.
_MARK_SHARE = 16
#: sort_by -> the column it orders on (keys: casefolded names, status and priority ids).
_SORT_COLUMNS: Final[Mapping[str, str]] = {
    **SORT_FIELDS,
    "name": "name_key",
    "company_name": "company_key",
}


def _whole(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An int >= 0 (not a bool, which is an int to Python but not to a user)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidOptionError(attribute.name, f"must be an integer >= 0, not {value!r}")


@attrs.frozen
class HotSpot:
    """``count`` generated records sharing the ``date_created`` second ``created``,
    like a bulk import. Their ``date_modified`` values are spread evenly over
    ``modified_spread`` seconds after it (all distinct when ``count`` is at most
    ``modified_spread + 1``; 0 puts them all in the created second too)."""

    created: int = attrs.field(validator=_whole)
    count: int = attrs.field(validator=_whole)
    modified_spread: int = attrs.field(default=_DAY, validator=_whole)


@attrs.frozen
class Changes:
    """The ids one :meth:`Dataset.apply_changes` batch edited, created and deleted."""

    edited: list[int]
    created: list[int]
    deleted: list[int]


class Dataset(Store):
    """Opportunity records the fake server searches, pages and mutates.

    Build one with :meth:`generate`, :meth:`from_records` or :meth:`load_jsonl`
    (or empty, then :meth:`insert_generated`). ``version`` grows with every
    mutation; search results are cached per version. ``start``/``end`` bound
    the creation dates of generated records.
    """

    # -- building ------------------------------------------------------------------------

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> Dataset:
        """Records as Copper returns them, in any order; ids must be unique integers.

        A top-level ``"followed": true`` is server-side state: the ``followed``
        filter reads it, answers never carry it. Fields of an unexpected type
        are served as loaded and count as null for filters and sorts.
        """
        dataset = cls()
        for record in records:
            if not isinstance(record, Mapping):
                raise RecordError("(record)", f"must be a JSON object, not {type(record).__name__}")
            data = dict(record)
            followed = bool(data.pop("followed", False))
            dataset._append(_record_id(data), _exact_copy(orjson.dumps(data)), followed, data)
        dataset._finish_loading()
        return dataset

    @classmethod
    def load_jsonl(cls, path: str | os.PathLike[str]) -> Dataset:
        """One record a line (blank lines skipped), e.g. an export of this library."""
        with open(path, "rb") as file:
            return cls.from_records(orjson.loads(line) for line in file if line.strip())

    @classmethod
    def generate(
        cls,
        count: int,
        *,
        seed: int = 0,
        hot_spots: Sequence[HotSpot] = (),
        start: int = _DEFAULT_START,
        end: int = _DEFAULT_END,
    ) -> Dataset:
        """``count`` realistic records, then each hot spot's, the same for a seed.

        Ids run from 1; ``date_created`` falls in [start, end), more of it in
        later years and in weekday office hours (US Eastern);
        ``date_modified`` is never earlier.
        """
        if count < 0:
            raise InvalidOptionError("count", f"must be >= 0, not {count}")
        if start >= end:
            raise InvalidOptionError("start", f"must be before end ({start} >= {end})")
        dataset = cls(start=start, end=end)
        rng = random.Random(seed)
        # Copper numbers records as they are created: ids follow date_created,
        # except for the hot spots' bulk imports, which come last.
        created = sorted(draw_created(rng, count, start, end))
        modified = draw_modified(rng, created, end)
        for spot in hot_spots:
            created += [spot.created] * spot.count
            # Evenly over the spread, in a shuffled id order (imports do not sort).
            offsets = [i * (spot.modified_spread + 1) // spot.count for i in range(spot.count)]
            rng.shuffle(offsets)
            modified += [spot.created + offset for offset in offsets]
        # In chunks: the draws' temporaries stay small and their memory is reused.
        for begin in range(0, len(created), CHUNK):
            end_ = begin + CHUNK
            ids = range(begin + 1, min(end_, len(created)) + 1)
            dataset._extend(ids, generate(rng, ids, created[begin:end_], modified[begin:end_]))
        dataset._finish_loading()
        return dataset

    def search(self, query: Query, *, ties: Ties = "id", draw: int = 0) -> Sequence[int]:
        """Every id ``query`` matches, in its sort order; cached until the data changes.

        ``ties``: records with equal sort values in id order, or (``"per_query"``)
        in an order of the query's own: stable for one query, another for the
        next, as an API whose tie-break is not the id may order them; or
        (``"per_request"``) in an order drawn from ``draw``, which the server
        makes of its seed and the request's number: another for every request,
        even of the same query. Only that last draw is not cached (it is cheap:
        a view over the cached id-order result that permutes only the ties it
        is asked for).
        """
        if ties == "per_request":
            return TiesPerRequest(self._cached(query, "id"), self._sort_values(query), draw)
        return self._cached(query, ties)

    def _cached(self, query: Query, ties: Ties) -> _Ids:
        key = (query, self.version, ties)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        result = self._search(query)
        if ties == "per_query":
            result = ties_per_query(result, self._sort_values(query), query)
        self._cache[key] = result
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return result

    def _sort_values(self, query: Query) -> Sequence[Any]:
        """The column ``query`` sorts on, by slot: what decides its ties."""
        return self._cols[_SORT_COLUMNS[query.sort_field]]

    def _search(self, query: Query) -> _Ids:
        """The uncached search: pick the smallest candidate set, filter, order."""
        sort_column = _SORT_COLUMNS[query.sort_field]
        # Few inactive days = a recent last contact: the opposite order of the date.
        descending = query.descending != (query.sort_field == "inactive_days")
        total = len(self._id)
        # Candidate sources: (size, kind, field, left, right).
        sources: list[tuple[int, str, str, int, int]] = []
        for field in _INDEXED:
            low, high = query.bound(field)
            if low is None and high is None:
                continue
            order, column = self._orders[field], self._cols[field]
            left = 0 if low is None else bisect.bisect_left(order, low, key=column.__getitem__)
            right = (
                len(order)
                if high is None
                else bisect.bisect_right(order, high, key=column.__getitem__)
            )
            sources.append((max(right - left, 0), "range", field, left, max(left, right)))
        wanted_ids = dict(query.ids).get("id")
        if wanted_ids is not None:
            sources.append((len(wanted_ids), "ids", "id", 0, 0))
        if not sources and sort_column in _INDEXED:
            order = self._orders[sort_column]
            sources.append((total, "all", sort_column, 0, len(order)))
        sources.append((total + 1, "scan", "", 0, 0))
        smallest = min(sources)
        in_order = [s for s in sources if s[2] == sort_column and s[1] in ("range", "all")]
        chosen = smallest
        if in_order and in_order[0][0] <= _PREFER_ORDERED * smallest[0]:
            chosen = in_order[0]
        _, kind, field, left, right = chosen

        nulls: list[int] = []
        candidates: Sequence[int]
        if kind in ("range", "all"):
            candidates = self._orders[field][left:right]
            if kind == "all":
                nulls = sorted(self._nulls[field])
        elif kind == "ids":
            alive = self._alive
            found = {self._slot(i) for i in wanted_ids or ()}
            candidates = sorted(s for s in found if s is not None and alive[s])
        else:
            candidates = self._live()
        skip = {field} if kind in ("range", "ids") else set()
        for test in self._filters(query, skip):
            candidates = test(candidates)
            nulls = test(nulls) if nulls else nulls
        if kind in ("range", "all") and field == sort_column:
            if descending:  # stable: equal dates keep id order
                candidates = sorted(candidates, key=self._cols[field].__getitem__, reverse=True)
            return _Ids([*candidates, *nulls] if nulls else candidates, self._id)
        if kind == "range":  # back to id order, for stable ties
            candidates = _ascending(candidates, len(self._id))
        return _Ids(self._sorted(candidates, sort_column, descending), self._id)

    def _sorted(self, slots: Sequence[int], field: str, descending: bool) -> Sequence[int]:
        """``slots`` (in id order) sorted on a column: ties in id order, nulls last.

        When nearly every record matched, a full order of the column is built
        (and kept until the data changes); while one is kept, any result with
        a large share of the records is ordered by walking it, not by a sort.
        """
        column = self._cols[field]
        nulls = _where(slots, column, None)
        order = self._sort_orders.get((field, descending))
        if order is None and len(slots) * 10 >= self._count * 9 > 0:
            order = self._sort_order(field, descending)
        if order is None or len(slots) * _WALK_SHARE < self._count:
            ordered = _where_not(slots, column, None) if nulls else list(slots)
            ordered.sort(key=column.__getitem__, reverse=descending)  # stable
            return ordered + nulls
        if len(slots) == self._count:  # every record matched
            return order + nulls
        wanted = _marks(slots, len(self._id))
        return list(compress(order, map(wanted.__getitem__, order))) + nulls

    def _sort_order(self, field: str, descending: bool) -> list[int]:
        """Every live slot with a value of ``field``, sorted (ties in id order).

        A list, not an array: filling an array from slots in a random order
        costs a cache miss a slot.
        """
        column = self._cols[field]
        present = _where_not(self._live(), column, None)
        present.sort(key=column.__getitem__, reverse=descending)
        self._sort_orders[(field, descending)] = present
        if len(self._sort_orders) > _SORT_ORDERS:
            del self._sort_orders[next(iter(self._sort_orders))]
        return present

    def _filters(self, query: Query, skip: set[str]) -> list[Callable[[Sequence[int]], list[int]]]:
        """One filter of the candidate slots per condition of ``query`` (AND).

        ``skip`` names the fields the candidate source already applied. The
        simple ones run at C speed: ``compress`` over ``map`` of the column.
        """
        cols = self._cols
        tests: list[Callable[[Sequence[int]], list[int]]] = []

        def keep(column: Sequence[Any], test: Callable[[Any], Any]) -> None:
            tests.append(
                lambda slots: list(compress(slots, map(test, map(column.__getitem__, slots))))
            )

        for field, ids in query.ids:
            if field not in skip:
                wanted = ids | {None} if -2 in ids else ids  # -2: none set
                keep(self._id if field == "id" else cols[field], wanted.__contains__)
        if query.name is not None:
            keep(cols["name"], frozenset({query.name}).__contains__)
        if query.statuses is not None:
            keep(cols["status"], frozenset(STATUS_IDS[s] for s in query.statuses).__contains__)
        if query.priorities is not None:
            wanted = frozenset(PRIORITY_IDS[p] for p in query.priorities)
            keep(cols["priority"], wanted.__contains__)
        if query.tags is not None:
            option, tags = query.tags
            if option == "ALL":
                keep(cols["tags"], tags.issubset)
            else:
                disjoint = tags.isdisjoint
                keep(cols["tags"], lambda held: not disjoint(held))
        if query.followed is not None:
            flags = self._followed if query.followed == 1 else self._followed.translate(_FLIP)
            tests.append(lambda slots: list(compress(slots, map(flags.__getitem__, slots))))
        for field, low, high in query.bounds:
            if field not in skip:
                tests.append(_bound_filter(cols[field], low, high))
        for condition in query.custom_fields:
            tests.append(_custom_filter(self._custom.get(condition.definition_id), condition))
        return tests

    # -- drift ---------------------------------------------------------------------------

    def insert_generated(self, rng: random.Random, *, created: int | None = None) -> int:
        """Add one generated record with the next id (created in [start, end)
        unless ``created`` is given); returns its id."""
        born = [created] if created is not None else draw_created(rng, 1, self.start, self.end)
        record_id = self._next_id
        slot = len(self._id)
        ids = [record_id]
        self._extend(ids, generate(rng, ids, born, draw_modified(rng, born, self.end)))
        for field in _ORDERED:
            self._place(field, slot)
        self._changed()
        return record_id

    def delete(self, record_id: int) -> None:
        """Remove one record; KeyError if there is none."""
        slot = self._existing_slot(record_id)
        for field in _ORDERED:
            self._displace(field, slot)
        self._alive[slot] = 0
        self._json[slot] = None
        self._count -= 1
        self._changed()

    def modify(self, record_id: int, rng: random.Random, *, now: int | None = None) -> None:
        """Edit a record as a user would: ``date_modified`` moves later (to ``now``
        when given, as Copper stamps an edit), an interaction is counted, maybe the
        value changes; ``date_created``, ``id`` and ``followed`` never change."""
        slot = self._existing_slot(record_id)
        record = self._edited(slot, rng, now)
        for field in _ORDERED:
            self._displace(field, slot)
        self._json[slot] = _exact_copy(orjson.dumps(record))
        self._fill(slot, record)
        for field in _ORDERED:
            self._place(field, slot)
        self._changed()

    def _edited(self, slot: int, rng: random.Random, now: int | None) -> dict[str, Any]:
        """The record at ``slot`` after one user edit (not stored)."""
        record: dict[str, Any] = orjson.loads(self._stored(slot))
        if now is None:
            dates = (self._cols["date_modified"][slot], self._cols["date_created"][slot])
            base = next((v for v in dates if v is not None), 0)
            modified = int(base) + rng.randint(1, 30 * _DAY)
        else:
            modified = now
        edit(record, rng, modified)
        return record

    def _edit_moment(self, slot: int, drawn: int, now: int) -> int:
        """When an edit drawn at ``drawn`` is stamped: edits of one record
        happen in order, so never before its last one (up to ``now``); a
        spread batch would otherwise move a record edited since back in time,
        which Copper never does and an incremental reader rightly ignores."""
        last = self._cols["date_modified"][slot]
        return drawn if last is None else max(drawn, min(int(last), now))

    def apply_changes(
        self,
        rng: random.Random,
        *,
        now: int,
        edits: int = 0,
        creates: int = 0,
        deletes: int = 0,
        over: int = 0,
    ) -> Changes:
        """Play a batch of user activity ending at the server time ``now``, as
        Copper records it.

        ``edits`` distinct live records are edited (``date_modified`` becomes
        the edit's time), ``deletes`` other ones removed, and ``creates`` new
        records added with the next ids, created and modified at their time.
        With ``over`` = 0 every change happens at ``now`` (a same-second
        burst); otherwise each at a random second of ``(now - over, now]``, as
        users' edits spread over a day. The date orders are rebuilt once for
        the batch (linear), not once a record.
        """
        _check_counts(edits=edits, creates=creates, deletes=deletes, over=over)

        def moment() -> int:
            return now - rng.randrange(over) if over else now

        if edits + deletes > self._count:
            raise InvalidOptionError(
                "edits", f"{edits} edits and {deletes} deletions: only {self._count} records"
            )
        live = self._live()
        picked = sorted(rng.sample(range(len(live)), edits + deletes))
        rng.shuffle(picked)
        edited = sorted(live[p] for p in picked[:edits])
        deleted = sorted(live[p] for p in picked[edits:])
        touched = [*edited, *deleted]
        for slot in edited:
            record = self._edited(slot, rng, self._edit_moment(slot, moment(), now))
            self._json[slot] = _exact_copy(orjson.dumps(record))
            self._fill(slot, record)
        for slot in deleted:
            self._alive[slot] = 0
            self._json[slot] = None
        self._count -= len(deleted)
        first_new = len(self._id)
        ids = range(self._next_id, self._next_id + creates)
        created = [moment() for _ in ids]
        self._extend(ids, generate(rng, ids, created, created))
        touched += range(first_new, len(self._id))
        for field in _ORDERED:
            self._reorder(field, touched)
        self._changed()
        return Changes(
            edited=[self._id[s] for s in edited],
            created=list(ids),
            deleted=[self._id[s] for s in deleted],
        )


def _check_counts(**counts: int) -> None:
    for name, count in counts.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidOptionError(name, f"must be an integer >= 0, not {count!r}")


def _ascending(slots: Sequence[int], size: int) -> Sequence[int]:
    """Distinct ``slots`` (all below ``size``) in ascending order.

    A date range comes in date order, which is not id order (``date_modified``
    never is): sorting a million slots back costs about a second, marking them
    and reading the marks back two passes at C speed.
    """
    if len(slots) * _MARK_SHARE < size:
        return sorted(slots)
    return list(compress(range(size), _marks(slots, size)))
