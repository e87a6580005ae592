"""The fake server's records: stored compactly, indexed, searched like Copper.

Each record is kept as its JSON text (pre-encoded, so a page is a join of
bytes) plus the fields filters and sorts read. ``date_created`` and
``date_modified`` have sorted indexes, so the windows the streaming client
asks for (a date range sorted by that date) are a bisect and a slice. Each
query's sorted ids are cached until the data changes.
"""

from __future__ import annotations

import bisect
import datetime as dt
import os
import random
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import orjson

from copper_async.testing.query import PRIORITY_IDS, STATUS_IDS, CustomFieldQuery, Query

__all__ = ["Dataset", "HotSpot"]

_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_DEFAULT_START = int(dt.datetime(2015, 1, 1, tzinfo=_UTC).timestamp())
_DEFAULT_END = int(dt.datetime(2026, 1, 1, tzinfo=_UTC).timestamp())
_CACHE_SIZE = 8
# Generation passes the close date's timestamp along, to spare parsing it back.
_CLOSE_TS = "\x00close_ts"
_INDEXED = ("date_created", "date_modified")


@attrs.frozen
class HotSpot:
    """``count`` generated records sharing one ``date_created`` second (a bulk
    import); their ``date_modified`` spreads over ``modified_spread`` seconds
    (0: all the same second too)."""

    created: int
    count: int
    modified_spread: int = 86_400


class _Row:
    """What filters and sorts read of one record, and its JSON text."""

    __slots__ = (
        "assignee_id",
        "close_date",
        "company_id",
        "company_name",
        "custom",
        "customer_source_id",
        "date_created",
        "date_last_contacted",
        "date_modified",
        "date_stage_changed",
        "encoded",
        "followed",
        "id",
        "interaction_count",
        "loss_reason_id",
        "monetary_unit",
        "monetary_value",
        "name",
        "name_key",
        "pipeline_id",
        "pipeline_stage_id",
        "primary_contact_id",
        "priority",
        "status",
        "tags",
    )

    def __init__(
        self, record: Mapping[str, Any], followed: bool, close_date: int | None = None
    ) -> None:
        get = record.get
        self.id: int = record["id"]
        self.name = get("name")
        self.name_key = self.name.casefold() if isinstance(self.name, str) else None
        self.assignee_id = get("assignee_id")
        self.company_id = get("company_id")
        self.company_name = get("company_name")
        self.customer_source_id = get("customer_source_id")
        self.loss_reason_id = get("loss_reason_id")
        self.pipeline_id = get("pipeline_id")
        self.pipeline_stage_id = get("pipeline_stage_id")
        self.primary_contact_id = get("primary_contact_id")
        self.priority: Any = get("priority")
        self.status: Any = get("status")
        self.tags = frozenset(get("tags") or ())
        self.monetary_value = get("monetary_value")
        self.monetary_unit = get("monetary_unit")
        self.interaction_count = get("interaction_count")
        self.close_date = (
            close_date if close_date is not None else _close_timestamp(get("close_date"))
        )
        self.date_last_contacted = get("date_last_contacted")
        self.date_stage_changed = get("date_stage_changed")
        self.date_created: Any = get("date_created")
        self.date_modified: Any = get("date_modified")
        self.custom = {
            f["custom_field_definition_id"]: f.get("value")
            for f in get("custom_fields") or ()
            if type(f) is dict
        }
        self.followed = followed
        # A copy: orjson's result keeps its whole working buffer (about 16 KiB).
        self.encoded = memoryview(orjson.dumps(record)).tobytes()


def _close_timestamp(value: Any) -> int | None:
    """``M/D/YYYY`` as the Unix second of its midnight UTC."""
    if not isinstance(value, str):
        return None
    try:
        month, day, year = (int(part) for part in value.split("/"))
        return int(dt.datetime(year, month, day, tzinfo=_UTC).timestamp())
    except ValueError:
        return None


def _sort_key(field: str) -> Callable[[_Row], Any]:
    if field == "name":
        return lambda row: row.name_key
    if field == "status":
        return lambda row: STATUS_IDS.get(row.status, 99)
    if field == "priority":
        return lambda row: PRIORITY_IDS.get(row.priority, 99)
    if field == "company_name":
        return lambda row: row.company_name.casefold() if row.company_name else None
    if field == "monetary_unit":
        return lambda row: row.monetary_unit
    return lambda row: getattr(row, field)


def _matches_custom(row: _Row, condition: CustomFieldQuery) -> bool:
    value = row.custom.get(condition.definition_id)
    if condition.allow_empty and (value is None or value == []):
        return True
    if condition.values is not None:
        held = set(value) if isinstance(value, list) else {value} if value is not None else set()
        wanted = set(condition.values)
        if condition.option == "ALL":
            if not wanted <= held:
                return False
        elif not wanted & held:
            return False
    if condition.minimum is not None or condition.maximum is not None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if condition.minimum is not None and value < condition.minimum:
            return False
        if condition.maximum is not None and value > condition.maximum:
            return False
    return (
        condition.values is not None
        or condition.minimum is not None
        or (condition.maximum is not None)
    )


def _predicate(query: Query) -> Callable[[_Row], bool]:
    """One function testing every filter of ``query`` (AND across fields)."""
    tests: list[Callable[[_Row], bool]] = []
    for field, wanted in query.ids:

        def has_id(row: _Row, field: str = field, wanted: frozenset[int] = wanted) -> bool:
            value = getattr(row, field)
            return value in wanted or (value is None and -2 in wanted)

        tests.append(has_id)
    if query.name is not None:
        name = query.name
        tests.append(lambda row: row.name == name)
    if query.statuses is not None:
        statuses = query.statuses
        tests.append(lambda row: row.status in statuses)
    if query.priorities is not None:
        priorities = query.priorities
        tests.append(lambda row: row.priority in priorities)
    if query.tags is not None:
        option, tags = query.tags
        if option == "ALL":
            tests.append(lambda row: tags <= row.tags)
        else:
            tests.append(lambda row: not tags.isdisjoint(row.tags))
    if query.followed is not None:
        followed = query.followed == 1
        tests.append(lambda row: row.followed is followed)
    for field, lo, hi in query.bounds:

        def in_bounds(row: _Row, field: str = field, lo: Any = lo, hi: Any = hi) -> bool:
            value = getattr(row, field)
            if value is None:
                return False
            return (lo is None or value >= lo) and (hi is None or value <= hi)

        tests.append(in_bounds)
    for condition in query.custom_fields:

        def custom(row: _Row, condition: CustomFieldQuery = condition) -> bool:
            return _matches_custom(row, condition)

        tests.append(custom)
    if not tests:
        return lambda row: True
    if len(tests) == 1:
        return tests[0]
    return lambda row: all(test(row) for test in tests)


class Dataset:
    """Opportunity records the fake server searches, pages and mutates."""

    def __init__(self, *, start: int = _DEFAULT_START, end: int = _DEFAULT_END) -> None:
        self._rows: dict[int, _Row] = {}
        # Per indexed field: sorted (value, id) pairs.
        self._index: dict[str, list[tuple[int, int]]] = {field: [] for field in _INDEXED}
        self._cache: OrderedDict[tuple[Query, int], list[int]] = OrderedDict()
        self.version = 0
        self.start, self.end = start, end
        self._next_id = 1

    # -- building ---------------------------------------------------------------

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> Dataset:
        """Records as Copper returns them; a top-level ``"followed": true`` is
        server-side state, used by the ``followed`` filter and never returned."""
        dataset = cls()
        dataset._load(records)
        return dataset

    @classmethod
    def load_jsonl(cls, path: str | os.PathLike[str]) -> Dataset:
        """One record a line, e.g. an export of this library."""
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
        """``count`` realistic records (plus the hot spots'), the same for a seed."""
        if count < 0 or start >= end:
            raise ValueError("count must be >= 0 and start before end")
        dataset = cls(start=start, end=end)
        rng = random.Random(seed)

        def records() -> Iterable[dict[str, Any]]:
            for i in range(count):
                yield _generate(rng, 1 + i, start, end)
            next_id = count + 1
            for spot in hot_spots:
                for offset in range(spot.count):
                    created = spot.created
                    modified = created + (offset % (spot.modified_spread + 1))
                    yield _generate(rng, next_id, start, end, created=created, modified=modified)
                    next_id += 1

        dataset._load(records())
        return dataset

    def _load(self, records: Iterable[Mapping[str, Any]]) -> None:
        for record in records:
            data = dict(record)
            followed = bool(data.pop("followed", False))
            row = _Row(data, followed, data.pop(_CLOSE_TS, None))
            if row.id in self._rows:
                raise ValueError(f"duplicate record id {row.id}")
            self._rows[row.id] = row
            self._next_id = max(self._next_id, row.id + 1)
        for field in _INDEXED:
            self._index[field] = sorted(
                (getattr(row, field), row.id)
                for row in self._rows.values()
                if isinstance(getattr(row, field), int)
            )
        self._changed()

    # -- reading ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rows)

    def ids(self) -> list[int]:
        """Every id, ascending."""
        return sorted(self._rows)

    def record(self, record_id: int) -> dict[str, Any]:
        """One record as served."""
        result: dict[str, Any] = orjson.loads(self._rows[record_id].encoded)
        return result

    def encode_page(self, ids: Sequence[int]) -> bytes:
        """The JSON array of these records, joined from their stored text."""
        rows = self._rows
        return b"[" + b",".join([rows[i].encoded for i in ids if i in rows]) + b"]"

    def search(self, query: Query) -> Sequence[int]:
        """Every id ``query`` matches, in its sort order (ties by id)."""
        key = (query, self.version)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        result = self._search(query)
        self._cache[key] = result
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return result

    def _search(self, query: Query) -> list[int]:
        rows = self._rows
        predicate = _predicate(query)
        sort_field = _sort_field(query.sort_field)
        indexed = [f for f in _INDEXED if query.bound(f) != (None, None)]
        if sort_field in _INDEXED and (not indexed or sort_field in indexed):
            indexed = [sort_field]
        if indexed:
            # A date range: bisect its index; the slice is in (value, id) order.
            field = indexed[0]
            lo, hi = query.bound(field)
            index = self._index[field]
            left = 0 if lo is None else bisect.bisect_left(index, (lo, -1))
            right = len(index) if hi is None else bisect.bisect_right(index, (hi, 2**63))
            candidates = [rows[i] for _, i in index[left:right]]
            matched = [row for row in candidates if predicate(row)]
            if field != sort_field:
                matched.sort(key=lambda row: row.id)
                return _sorted(matched, sort_field, query.descending)
            if query.descending:
                # Stable: within a second, ids stay ascending.
                matched.sort(key=lambda row: getattr(row, field), reverse=True)
            return [row.id for row in matched]
        ids = dict(query.ids).get("id")
        if ids is not None:
            candidates = [rows[i] for i in sorted(ids) if i in rows]
        else:
            candidates = [rows[i] for i in sorted(rows)]
        matched = [row for row in candidates if predicate(row)]
        return _sorted(matched, sort_field, query.descending)

    # -- drift ------------------------------------------------------------------

    def insert_generated(self, rng: random.Random, *, created: int | None = None) -> int:
        """Add one generated record; returns its id."""
        record = _generate(rng, self._next_id, self.start, self.end, created=created)
        followed = bool(record.pop("followed", False))
        row = _Row(record, followed, record.pop(_CLOSE_TS, None))
        self._rows[row.id] = row
        self._next_id += 1
        for field in _INDEXED:
            bisect.insort(self._index[field], (getattr(row, field), row.id))
        self._changed()
        return row.id

    def delete(self, record_id: int) -> None:
        """Remove one record."""
        row = self._rows.pop(record_id)
        for field in _INDEXED:
            self._unindex(field, getattr(row, field), record_id)
        self._changed()

    def modify(self, record_id: int, rng: random.Random) -> None:
        """Edit a record as a user would: a later ``date_modified``, a few fields;
        ``date_created`` never changes."""
        row = self._rows[record_id]
        record = orjson.loads(row.encoded)
        record["date_modified"] = record["date_modified"] + rng.randint(1, 30 * 86_400)
        record["interaction_count"] = (record.get("interaction_count") or 0) + 1
        values: list[int | float] = [1000, 2500, 5000.0, 12_000, 75_000]
        record["monetary_value"] = rng.choice(values)
        new = _Row(record, row.followed)
        self._unindex("date_modified", row.date_modified, record_id)
        bisect.insort(self._index["date_modified"], (int(new.date_modified), record_id))
        self._rows[record_id] = new
        self._changed()

    def _unindex(self, field: str, value: Any, record_id: int) -> None:
        index = self._index[field]
        position = bisect.bisect_left(index, (value, record_id))
        if position < len(index) and index[position] == (value, record_id):
            del index[position]

    def _changed(self) -> None:
        self.version += 1
        self._cache.clear()


def _sort_field(sort_by: str) -> str:
    from copper_async.testing.query import SORT_FIELDS

    return SORT_FIELDS[sort_by]


def _sorted(rows: list[_Row], sort_field: str, descending: bool) -> list[int]:
    """Sort rows (given in id order) stably by a field; nulls always last."""
    key = _sort_key(sort_field)
    present = [row for row in rows if key(row) is not None]
    missing = [row.id for row in rows if key(row) is None]
    present.sort(key=key, reverse=descending)
    return [row.id for row in present] + missing


# -- generation ------------------------------------------------------------------------

_ADJECTIVES = ("Annual", "Bulk", "Pilot", "Enterprise", "Renewal", "Expansion", "Trial", "Custom")
_PRODUCTS = ("Office Chairs", "Keyboards", "Laptops", "Licenses", "Support Plan", "Monitors")
_COMPANIES = (
    "Dunder Mifflin",
    "Sabre Inc",
    "Vance Refrigeration",
    "Initech",
    "Globex",
    "Umbrella Corp",
    "Stark Industries",
    "Wayne Enterprises",
)
_TAGS = ("tag1", "tag2", "priority-account", "q4", "renewal", "inbound", "partner")
_STATUS_WEIGHTS = (("Open", 55), ("Won", 25), ("Lost", 15), ("Abandoned", 5))
_STATUSES = [s for s, w in _STATUS_WEIGHTS for _ in range(w)]
_PRIORITIES = ("None", "None", "Low", "Medium", "High")
_DETAILS = "Opportunities are created for People and Companies that are interested in buying."


def _created_second(random_: Callable[[], float], start: int, end: int) -> int:
    """Growth over the years (density rises linearly), weekday office hours mostly."""
    days = max((end - start) // 86_400, 1)
    day = min(int(days * random_() ** 0.5), days - 1)
    weekday = (start // 86_400 + day + 3) % 7  # 1970-01-01 was a Thursday
    if weekday >= 5 and random_() < 0.7:
        day = max(day - (weekday - 4), 0)
    # Mostly 9:00-18:00 US Eastern (in UTC), sometimes any hour.
    office = random_() < 0.85
    second = 14 * 3600 + int(random_() * 9 * 3600) if office else int(random_() * 86_400)
    return min(start + day * 86_400 + second, end - 1)


_MULTI_SELECT = ((), (8,), (9,), (8, 10), (11,), (9, 11), (8, 9, 10))
_TAG_SETS = ((), (), ("tag1",), ("q4",), ("inbound", "tag1"), ("partner",), ("renewal", "tag2"))


def _generate(
    rng: random.Random,
    record_id: int,
    start: int,
    end: int,
    *,
    created: int | None = None,
    modified: int | None = None,
) -> dict[str, Any]:
    r = rng.random
    if created is None:
        created = _created_second(r, start, end)
    if modified is None:
        modified = min(created + int(rng.expovariate(1 / (20 * 86_400))), end + 365 * 86_400)
    status = _STATUSES[int(r() * len(_STATUSES))]
    close_ts = (created // 86_400 + 7 + int(r() * 173)) * 86_400
    close = _EPOCH + dt.timedelta(seconds=close_ts)
    company = int(r() * len(_COMPANIES))
    value: int | float = (1 + int(r() * 499)) * 250
    if r() < 0.3:
        value = float(value)
    contacted = created + int(r() * 90 * 86_400) if r() < 0.6 else None
    stage_changed = created + int(r() * 30 * 86_400) if r() < 0.8 else None
    record: dict[str, Any] = {
        "id": record_id,
        "name": f"{1 + int(r() * 499)} {_ADJECTIVES[int(r() * 8)]} {_PRODUCTS[int(r() * 6)]}",
        "assignee_id": 1 + int(r() * 39) if r() < 0.8 else None,
        "close_date": f"{close.month}/{close.day}/{close.year}",
        "company_id": 100 + company,
        "company_name": _COMPANIES[company],
        "customer_source_id": 1 + int(r() * 7) if r() < 0.6 else None,
        "details": _DETAILS,
        "loss_reason_id": 1 + int(r() * 5) if status == "Lost" else None,
        "pipeline_id": 1 + int(r() * 3),
        "pipeline_is_revenue": r() < 0.2,
        "pipeline_stage_id": 10 + int(r() * 10),
        "pipeline_type": "opportunity",
        "primary_contact_id": 1 + int(r() * 4999) if r() < 0.7 else None,
        "priority": _PRIORITIES[int(r() * 5)],
        "status": status,
        "tags": list(_TAG_SETS[int(r() * len(_TAG_SETS))]),
        "interaction_count": int(r() * 40),
        "monetary_unit": "USD" if r() < 0.9 else "EUR",
        "monetary_value": value,
        "win_probability": 5 * int(r() * 21),
        "date_stage_changed": stage_changed,
        "date_last_contacted": contacted,
        "leads_converted_from": (
            [{"lead_id": record_id * 7, "converted_timestamp": created}] if r() < 0.1 else []
        ),
        "date_lead_created": created - 86_400 if r() < 0.1 else None,
        "date_created": created,
        "date_modified": max(modified, created),
        "custom_fields": [
            {"custom_field_definition_id": 5, "value": 1 + int(r() * 8)},
            {
                "custom_field_definition_id": 6,
                "value": created + 86_400 * int(r() * 60) if r() < 0.5 else None,
            },
            {
                "custom_field_definition_id": 12,
                "value": list(_MULTI_SELECT[int(r() * len(_MULTI_SELECT))]),
            },
            {"custom_field_definition_id": 7, "value": r() < 0.5},
            {"custom_field_definition_id": 3, "value": "note" if r() < 0.3 else None},
        ],
        _CLOSE_TS: close_ts,
    }
    if r() < 0.05:
        record["followed"] = True
    return record
