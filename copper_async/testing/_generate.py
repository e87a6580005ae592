"""Generated records: realistic opportunities, the same for a seed.

Each field is drawn for every record at once (a list comprehension a field), from
small value tables (:mod:`copper_async.testing._tables`); the JSON is then written
from a template with pre-encoded fragments. Building a dict per record only to
encode it would cost several times as much.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import sys
from array import array
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from copper_async.testing._columns import _number
from copper_async.testing._tables import TO_USD, Tables, tables

_DAY = 86_400
#: Records generated at once: the draws' temporaries stay small and their memory is reused.
CHUNK = 65_536


def draw_created(rng: random.Random, count: int, start: int, end: int) -> list[int]:
    """Creation seconds: density rising linearly over [start, end) (growth), and
    85% in weekday office hours, 9:00-18:00 US Eastern (14:00-23:00 UTC)."""
    r, last = rng.random, end - 1
    days = max((end - start) // _DAY, 1)
    first = (start // _DAY + 3) % 7  # 1970-01-01 was a Thursday
    # In office hours, a weekend day moves to the Friday before or the Monday after.
    friday = [(0, 0, 0, 0, 0, -1, -2)[(first + k) % 7] for k in range(7)]
    monday = [(0, 0, 0, 0, 0, 2, 1)[(first + k) % 7] for k in range(7)]
    positions = [days * math.sqrt(r()) for _ in range(count)]  # in days from start
    # A position's fraction of a day picks office hours (< 0.85) and the way to move.
    return [
        min(
            max(
                start
                + (d + (friday if f < 0.425 else monday)[d % 7]) * _DAY
                + 50_400
                + int(r() * 32_400)
                if (f := x - (d := int(x))) < 0.85
                else start + d * _DAY + int(r() * _DAY),
                start,
            ),
            last,
        )
        for x in positions
    ]


def draw_modified(rng: random.Random, created: Sequence[int], end: int) -> list[int]:
    """Later edits: a fifth within minutes, the rest skewed towards soon after creation."""
    r, last = rng.random, end - 1
    return [
        c + int(u * 3_000) if (u := r()) < 0.2 else c + int(max(last - c, 0) * r() ** 4)
        for c in created
    ]


_FOLLOWED = bytes(1 if b < 13 else 0 for b in range(256))


def _picks(rng: random.Random, count: int, table: Sequence[Any]) -> list[Any]:
    """``count`` uniform picks from ``table`` (2**k entries, k <= 16), at C speed."""
    assert len(table).bit_count() == 1, "a power of two"
    bits = array("H", rng.randbytes(2 * count))
    if sys.byteorder == "big":
        bits.byteswap()  # the same picks for a seed on every machine
    shift = 16 - (len(table).bit_length() - 1)
    return list(map(table.__getitem__, map(shift.__rrshift__, bits)))


class _Draws(NamedTuple):
    """Each record's own fields, one list each (indexes into the tables where they can be)."""

    profile: list[int]
    name: list[int]
    company: list[int]
    contact: list[int | None]
    close_day: list[int | None]
    step: list[int | None]  # index into int_values / float_values
    value: list[int | float | None]
    stage_changed: list[int | None]
    contacted: list[int | None]
    lead_created: list[int | None]
    custom_date: list[int | None]
    followed: bytes


class Generated(NamedTuple):
    """Generated records as a dataset stores them."""

    encoded: list[bytes]  # each record's JSON
    followed: bytes  # 1 for each followed record
    #: column name (or custom field definition id) -> the records' values, in order.
    columns: dict[str | int, Iterable[Any]]


def _draw(rng: random.Random, t: Tables, created: Sequence[int], modified: Sequence[int]) -> _Draws:
    """Draw each record's own fields, in the order a seed reproduces."""
    r = rng.random
    n = len(created)
    each = range(n)
    small, int_values = t.small, t.int_values
    # One draw decides both whether a field is set (u < p) and its value (from u / p);
    # ints come from a shared table, so the columns do not hold a million copies.
    # Table picks from random bytes: 16 bits a record, shifted to the table's size.
    profile = _picks(rng, n, t.profile_picks)
    name = _picks(rng, n, t.name_picks)
    company = _picks(rng, n, t.company_picks)
    contact = _picks(rng, n, t.contact_picks)
    close_day = [c // _DAY + 7 + int(u * 180.2) if (u := r()) < 0.96 else None for c in created]
    step = [small[int(u * 434.7)] if (u := r()) < 0.92 else None for _ in each]
    # A fifth of the values are not round (floats); the column keeps floats throughout.
    value: list[int | float | None] = [
        None
        if k is None
        else round((k + 1) * 250 * (0.9 + u), 2)
        if (u := r()) < 0.2
        else int_values[k]
        for k in step
    ]
    stage_changed = [
        c + int((m - c) * u / 0.85) if (u := r()) < 0.85 else None
        for c, m in zip(created, modified, strict=True)
    ]
    contacted = [
        c + int((m - c) * u / 0.6) if (u := r()) < 0.6 else None
        for c, m in zip(created, modified, strict=True)
    ]
    lead_created = [c - int(u * 375 * _DAY) if (u := r()) < 0.08 else None for c in created]
    custom_date = [(c // _DAY + int(u * 120)) * _DAY if (u := r()) < 0.5 else None for c in created]
    followed = rng.randbytes(n).translate(_FOLLOWED)  # 13/256: about 5%
    return _Draws(
        profile, name, company, contact, close_day, step, value, stage_changed, contacted,
        lead_created, custom_date, followed,
    )  # fmt: skip


def _close_dates(close_day: Iterable[int | None]) -> dict[int | None, str]:
    """Each distinct close day (days since 1970-01-01) as its JSON ``"M/D/YYYY"``."""
    close_json: dict[int | None, str] = {None: "null"}
    for day in set(close_day):
        if day is not None:
            date_ = dt.date.fromordinal(719_163 + day)  # day 0 = 1970-01-01
            close_json[day] = f'"{date_.month}/{date_.day}/{date_.year}"'
    return close_json


def _encode(
    t: Tables,
    draws: _Draws,
    ids: Sequence[int],
    created: Sequence[int],
    modified: Sequence[int],
) -> list[bytes]:
    """Each record's JSON, from the template."""
    close_json = _close_dates(draws.close_day)
    name_json, company_json = t.name_json, t.company_json
    profile_json, profile_rate = t.profile_json, t.profile_rate
    encoded = []
    for i, c, m, p, nm, cd, co, ct, v, sc, la, lc, cu in zip(
        ids, created, modified, draws.profile, draws.name, draws.close_day, draws.company,
        draws.contact, draws.value, draws.stage_changed, draws.contacted, draws.lead_created,
        draws.custom_date, strict=True,
    ):  # fmt: skip
        assignee, fields, more, probability, dropdown, rest = profile_json[p]
        rate = profile_rate[p]
        ct = "null" if ct is None else ct
        converted = (
            ""
            if rate is None or v is None
            else f'"converted_unit":"USD","converted_value":{round(v * rate, 2)!r},'
        )
        v = "null" if v is None else repr(v)
        sc = "null" if sc is None else sc
        la = "null" if la is None else la
        leads = (
            "[]" if lc is None else f'[{{"lead_id":{10_000_000 + i},"converted_timestamp":{c}}}]'
        )
        lc = "null" if lc is None else lc
        cu = "null" if cu is None else cu
        # An f-string: about twice as fast as %-formatting a template.
        encoded.append(
            f'{{"id":{i},"name":{name_json[nm]},"assignee_id":{assignee},'
            f'"close_date":{close_json[cd]},{company_json[co]},{fields}'
            f'"primary_contact_id":{ct},{more}"monetary_value":{v},{converted}'
            f'"win_probability":{probability},"date_stage_changed":{sc},'
            f'"date_last_contacted":{la},"leads_converted_from":{leads},'
            f'"date_lead_created":{lc},"date_created":{c},"date_modified":{m},'
            f'"custom_fields":[{{"custom_field_definition_id":5,"value":{dropdown}}},'
            f'{{"custom_field_definition_id":6,"value":{cu}}},{rest}'.encode()
        )
    return encoded


def _columns(
    t: Tables, draws: _Draws, created: Sequence[int], modified: Sequence[int]
) -> dict[str | int, Iterable[Any]]:
    """Each column's values for the records, lazily (read once, as they are stored)."""
    day_second: dict[int, int] = {}  # one int object a day, shared by its records
    float_values = t.float_values
    columns: dict[str | int, Iterable[Any]] = {
        key: map(table.__getitem__, draws.profile) for key, table in t.profile_values.items()
    }
    columns["name"] = map(t.names.__getitem__, draws.name)
    columns["name_key"] = map(t.name_keys.__getitem__, draws.name)
    columns["close_date"] = (
        None if d is None else day_second.setdefault(d, d * _DAY) for d in draws.close_day
    )
    columns["company_id"] = map(t.company_ids.__getitem__, draws.company)
    columns["company_key"] = map(t.company_keys.__getitem__, draws.company)
    columns["primary_contact_id"] = draws.contact
    columns["monetary_value"] = (
        v if k is None or type(v) is float else float_values[k]
        for k, v in zip(draws.step, draws.value, strict=True)
    )
    columns["date_stage_changed"] = draws.stage_changed
    columns["date_last_contacted"] = draws.contacted
    columns["date_created"] = created
    columns["date_modified"] = modified
    columns[6] = draws.custom_date
    return columns


def generate(
    rng: random.Random, ids: Sequence[int], created: Sequence[int], modified: Sequence[int]
) -> Generated:
    """Records with these ids and dates, drawn from ``rng``."""
    t = tables()
    draws = _draw(rng, t, created, modified)
    return Generated(
        _encode(t, draws, ids, created, modified),
        draws.followed,
        _columns(t, draws, created, modified),
    )


def edit(record: dict[str, Any], rng: random.Random, modified: int) -> None:
    """Apply one user edit at ``modified`` to ``record``: an interaction is counted,
    maybe the contact date and the value change."""
    record["date_modified"] = modified
    record["interaction_count"] = (_number(record.get("interaction_count")) or 0) + 1
    if rng.random() < 0.5:
        record["date_last_contacted"] = modified
    if rng.random() < 0.3:
        value = (1 + rng.randrange(400)) * 250
        record["monetary_value"] = value
        if "converted_value" in record:
            unit = record.get("monetary_unit")
            rate = TO_USD.get(unit, 1.0) if isinstance(unit, str) else 1.0
            record["converted_value"] = round(value * rate, 2)
