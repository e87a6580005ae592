"""The value tables generated records draw from, built once from a fixed seed.

Values, sort keys and JSON fragments sit side by side, so one object serves
many records and a record's JSON is joined from pre-encoded pieces.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from typing import Any, NamedTuple

import attrs
import orjson

from copper_async.testing._columns import _folded
from copper_async.testing._query import PRIORITY_IDS, STATUS_IDS


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


_LONG_DETAILS = (
    "Opportunities are created for People and Companies that are interested in buying "
    "your products or services. Create Opportunities for People and Companies to move "
    "them through one of your Pipelines."
)
_SHORT_DETAILS = (
    "This is an update",
    "Follow up after the demo.",
    "Budget approved for Q3; waiting on procurement.",
    "Referred by an existing customer.",
    "Needs a security review before signing.",
    "Renewal of last year's contract, with more seats.",
)
_ADJECTIVES = (
    "New", "Annual", "Bulk", "Pilot", "Enterprise", "Renewal", "Expansion", "Trial", "Custom",
    "Premium", "Refurbished", "Ergonomic", "Wireless", "Standing", "Managed",
)  # fmt: skip
_PRODUCTS = (
    "Office Chairs", "Keyboards", "Copy Machines", "Laptops", "Licenses", "Support Plan",
    "Monitors", "Desks", "Printers", "Phones", "Servers", "Training Days", "Consulting Hours",
    "Whiteboards", "Headsets", "Software Seats",
)  # fmt: skip
_SYLLABLES = (
    "dun", "der", "mif", "lin", "sa", "bre", "van", "ce", "ini", "tech", "glo", "bex",
    "um", "brel", "la", "stark", "way", "ne", "acme", "hoo", "li", "vi", "ra", "nor", "tek",
)  # fmt: skip
_COMPANY_SUFFIXES = ("Inc", "LLC", "Ltd", "GmbH", "Corp", "& Co", "(sample)", "Group")
_TAG_SETS = (
    (), (), (), (), ("tag1",), ("q4",), ("inbound",), ("inbound", "tag1"), ("partner",),
    ("renewal", "tag2"), ("priority-account", "q4"), ("tag1", "tag2", "partner"),
)  # fmt: skip
_MULTI_SELECT = ((), (), (8,), (9,), (8, 10), (11,), (9, 11), (8, 9, 10))
_TEXTS = (None, None, None, "note", "VIP", "Call before noon", "Prefers email", "See contract")
_DETAILS = (None,) * 7 + ("",) * 2 + _SHORT_DETAILS + (_LONG_DETAILS,) * 4
_STATUS_WEIGHTS = (("Open", 55), ("Won", 25), ("Lost", 15), ("Abandoned", 5))
_PRIORITY_WEIGHTS = (("None", 45), ("Low", 20), ("Medium", 20), ("High", 12), (None, 3))
_UNIT_WEIGHTS = (("USD", 88), ("EUR", 6), ("GBP", 3), ("CAD", 1), (None, 2))
TO_USD = {"EUR": 1.08, "GBP": 1.27, "CAD": 0.73}
# pipeline id -> its stages as (stage id, win probability while open), and whether
# it is a revenue pipeline.
_PIPELINES = {
    1: (((10, 10), (11, 25), (12, 40), (13, 75)), False),
    2: (((14, 20), (15, 50), (16, 90)), True),
    3: (((17, 5), (18, 30), (19, 60)), False),
}


def _weighted(pairs: Sequence[tuple[Any, int]]) -> list[Any]:
    return [value for value, weight in pairs for _ in range(weight)]


@attrs.frozen
class Tables:
    """Value tables for generation: values, sort keys and JSON fragments side by side.

    A *profile* fixes every categorical field of a record (assignee, source,
    status, stage, priority, tags, unit, most custom fields...); records pick
    one of a few thousand, then draw their own name, company, contact, value
    and dates. The profile's JSON comes pre-joined in the pieces the template
    puts between the record's own fields.
    """

    names: list[str]
    name_keys: list[str]
    name_json: list[str]
    company_ids: list[int | None]  # the last entry is "no company"
    company_keys: list[str | None]
    company_json: list[str]  # '"company_id":..,"company_name":..'
    small: list[int]  # shared int objects, for indexes up to 10,000
    #: 2**k entries each, for _picks: indexes into names / companies / profiles,
    #: and primary contact ids (None in 30%).
    name_picks: list[int]
    company_picks: list[int]  # the last company entry, "no company", in 8%
    profile_picks: list[int]
    contact_picks: list[int | None]
    int_values: list[int]  # monetary values: 250 to 100,000 in steps of 250
    float_values: list[float]  # the same, as the column keeps them
    profile_json: list[tuple[str, str, str, str, str, str]]
    profile_rate: list[float | None]  # to USD, for converted_value
    #: column name (or custom field definition id) -> each profile's value.
    profile_values: dict[str | int, list[Any]]


_PROFILES = 4_096


class _Profile(NamedTuple):
    """The categorical fields one profile fixes."""

    assignee: int | None
    source: int | None
    details: str | None
    status: str
    loss: int | None
    pipeline: int
    stage: int
    probability: int
    revenue: bool
    priority: str | None
    tags: tuple[str, ...]
    interactions: int
    unit: str | None
    dropdown: int | None
    selected: tuple[int, ...]
    checked: bool
    text: str | None


def _draw_profile(
    rng: random.Random,
    statuses: Sequence[str],
    priorities: Sequence[str | None],
    units: Sequence[str | None],
    stages: Sequence[tuple[int, int, int, bool]],
) -> _Profile:
    """One profile; the draws' order is part of what a seed reproduces."""
    r = rng.random
    assignee = 1 + int(r() * 39) if r() < 0.8 else None
    source = 1 + int(r() * 7) if r() < 0.6 else None
    details = rng.choice(_DETAILS)
    status = rng.choice(statuses)
    loss = 1 + int(r() * 5) if status == "Lost" and r() < 0.85 else None
    pipeline, stage, probability, revenue = rng.choice(stages)
    if status != "Open":
        probability = 100 if status == "Won" else 0
    priority = rng.choice(priorities)
    tags = rng.choice(_TAG_SETS)
    interactions = int(r() ** 2 * 60)
    unit = rng.choice(units)
    dropdown = 1 + int(r() * 8) if r() < 0.8 else None
    selected = rng.choice(_MULTI_SELECT)
    checked = r() < 0.5
    text = rng.choice(_TEXTS)
    return _Profile(
        assignee, source, details, status, loss, pipeline, stage, probability, revenue,
        priority, tags, interactions, unit, dropdown, selected, checked, text,
    )  # fmt: skip


def _profile_json(p: _Profile) -> tuple[str, str, str, str, str, str]:
    """The profile's JSON, in the pieces the record template puts between its own fields."""
    return (
        _json(p.assignee),
        f'"customer_source_id":{_json(p.source)},"details":{_json(p.details)},'
        f'"loss_reason_id":{_json(p.loss)},"pipeline_id":{p.pipeline},'
        f'"pipeline_is_revenue":{_json(p.revenue)},"pipeline_stage_id":{p.stage},'
        '"pipeline_type":"opportunity",',
        f'"priority":{_json(p.priority)},"status":{_json(p.status)},"tags":{_json(p.tags)},'
        f'"interaction_count":{p.interactions},"monetary_unit":{_json(p.unit)},',
        str(p.probability),
        _json(p.dropdown),
        f'{{"custom_field_definition_id":12,"value":{_json(p.selected)}}},'
        f'{{"custom_field_definition_id":7,"value":{_json(p.checked)}}},'
        f'{{"custom_field_definition_id":3,"value":{_json(p.text)}}}]}}',
    )


#: The custom fields a profile fixes; the date field (6) is each record's own.
_PROFILE_CUSTOM = (5, 12, 7, 3)
#: The columns (names, or custom field definition ids) a profile fixes, in the
#: order of _profile_values.
_PROFILE_KEYS: tuple[str | int, ...] = (
    "assignee_id", "customer_source_id", "loss_reason_id", "pipeline_id",
    "pipeline_stage_id", "priority", "status", "tags", "interaction_count",
    "monetary_unit", *_PROFILE_CUSTOM,
)  # fmt: skip


def _profile_values(p: _Profile) -> tuple[Any, ...]:
    """The profile's values as the columns keep them, in _PROFILE_KEYS order."""
    return (
        p.assignee,
        p.source,
        p.loss,
        p.pipeline,
        p.stage,
        PRIORITY_IDS[p.priority] if p.priority else None,
        STATUS_IDS[p.status],
        frozenset(p.tags),
        p.interactions,
        p.unit,
        p.dropdown,
        p.selected,
        p.checked,
        p.text,
    )


def _draw_profiles(rng: random.Random) -> tuple[list[Any], list[Any], dict[str | int, list[Any]]]:
    """_PROFILES profiles: their JSON pieces, their rates to USD and their column values."""
    stages = [
        (pipeline, stage, probability, revenue)
        for pipeline, (pipeline_stages, revenue) in _PIPELINES.items()
        for stage, probability in pipeline_stages
    ]
    statuses, priorities, units = (
        _weighted(_STATUS_WEIGHTS),
        _weighted(_PRIORITY_WEIGHTS),
        _weighted(_UNIT_WEIGHTS),
    )
    profiles = [_draw_profile(rng, statuses, priorities, units, stages) for _ in range(_PROFILES)]
    fragments = [_profile_json(p) for p in profiles]
    rates = [TO_USD.get(p.unit) if p.unit else None for p in profiles]
    columns = zip(*map(_profile_values, profiles), strict=True)
    values = {key: list(column) for key, column in zip(_PROFILE_KEYS, columns, strict=True)}
    return fragments, rates, values


@functools.cache
def tables() -> Tables:
    """Built once from a fixed seed, so every dataset shares them."""
    rng = random.Random(20_170_116)
    names: set[str] = set()
    while len(names) < 4_096:
        quantity = rng.choice((1, 2, 3, 5, 8, 10, 12, 20, 25, 40, 50, 100, 200, 250, 500))
        product = rng.choice(_PRODUCTS)
        roll = rng.random()
        if roll < 0.6:
            name = f"{quantity} {rng.choice(_ADJECTIVES)} {product}"
        elif roll < 0.85:
            name = f"{quantity} {product}"
        elif roll < 0.95:
            name = f"{product} for {rng.choice(_SYLLABLES).title()}{rng.choice(_SYLLABLES)}"
        elif roll < 0.98:
            name = f"{quantity} {product} (sample)".lower()
        else:  # typed in a hurry, like the reference's "ejfpv..."
            name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(10))
        names.add(name)
    ordered = sorted(names)
    small = list(range(10_001))
    companies: list[tuple[int | None, str | None]] = []
    for company_id in range(100, 571):
        stem = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).title()
        companies.append((company_id, f"{stem} {rng.choice(_COMPANY_SUFFIXES)}"))
    companies.append((None, None))
    fragments, rates, values = _draw_profiles(rng)
    return Tables(
        names=ordered,
        name_keys=[n.casefold() for n in ordered],
        name_json=[_json(n) for n in ordered],
        company_ids=[c for c, _ in companies],
        company_keys=[_folded(n) for _, n in companies],
        company_json=[f'"company_id":{_json(c)},"company_name":{_json(n)}' for c, n in companies],
        small=small,
        name_picks=small[: len(ordered)],
        company_picks=[small[k] if k < 471 else len(companies) - 1 for k in range(512)],
        profile_picks=small[:_PROFILES],
        contact_picks=[small[1 + k] if k < 5_734 else None for k in range(8_192)],
        int_values=[(k + 1) * 250 for k in range(400)],
        float_values=[(k + 1) * 250.0 for k in range(400)],
        profile_json=fragments,
        profile_rate=rates,
        profile_values=values,
    )
