"""Custom fields by name: Copper's definitions, column names and option names.

Records carry custom fields as ``{custom_field_definition_id, value}``, with
dropdown and multi-select values as option ids. ``GET
/custom_field_definitions`` (:meth:`copper_async.client.CopperClient.custom_field_definitions`)
says what each id means; :class:`CustomFieldNames` turns that into what a
table needs, purely (no I/O), for the CSV export and the sync alike:

- a column name per definition (:func:`column_names`): ``cf_`` and the name
  folded to ``[a-z0-9_]``, so it never collides with a record's own columns.
  Two definitions whose names fold alike: the lowest id keeps the plain name,
  the others get ``__<id>`` (a slug never holds ``__``, so these are unique
  too). Copper's ids grow, so a definition added later never renames an
  older column; only a rename does.
- the value with option ids replaced by option names
  (:meth:`CustomFieldNames.value`); an id no option has (a deleted option)
  stays an id, so nothing is lost.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from copper_async._converter import REFUSALS, converter, record_error

__all__ = [
    "COLUMN_PREFIX",
    "DEFINITIONS_PATH",
    "CustomFieldDefinition",
    "CustomFieldNames",
    "CustomFieldOption",
    "column_names",
    "structure_definitions",
]

DEFINITIONS_PATH: Final = "custom_field_definitions"
#: Every named custom-field column starts with it (no record field does).
COLUMN_PREFIX: Final = "cf_"
# Column names stay within PostgreSQL's 63-byte identifiers, suffix included.
_MAX_SLUG = 40
_OPTION_TYPES: Final = frozenset({"Dropdown", "MultiSelect"})


@attrs.frozen(kw_only=True)
class CustomFieldOption:
    """One choice of a Dropdown or MultiSelect field."""

    id: int
    name: str
    rank: int | None = None


@attrs.frozen(kw_only=True)
class CustomFieldDefinition:
    """One custom field: what records' ``custom_field_definition_id`` refers to.

    ``data_type`` is Copper's (String, Text, Dropdown, MultiSelect, Date,
    Checkbox, Float, Currency, Percentage, URL, Connect); ``available_on`` the
    record kinds that carry it (``"opportunity"``...); ``options`` the
    choices of a Dropdown or MultiSelect field. Other keys Copper sends are
    ignored.
    """

    id: int
    name: str
    data_type: str
    canonical_name: str | None = None
    available_on: tuple[str, ...] = ()
    options: tuple[CustomFieldOption, ...] = ()


def structure_definitions(items: list[Any]) -> list[CustomFieldDefinition]:
    """Typed definitions from the JSON array Copper answered.

    Raises RecordError naming the bad field and the definition's position.
    """
    definitions: list[CustomFieldDefinition] = []
    try:
        for item in items:
            definitions.append(converter.structure(item, CustomFieldDefinition))
    except REFUSALS as exc:
        index = len(definitions)
        raise record_error(items[index], exc, context={"index": index}) from exc
    return definitions


def _slug(name: str) -> str:
    """``name`` folded to lowercase ASCII words joined by single underscores."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_name.lower())
    return "_".join(words)[:_MAX_SLUG].rstrip("_")


def column_names(definitions: Iterable[CustomFieldDefinition]) -> dict[int, str]:
    """A unique column name for each definition, by id (see the module's doc)."""
    by_slug: dict[str, list[int]] = {}
    for definition in sorted(definitions, key=lambda d: d.id):
        by_slug.setdefault(_slug(definition.name), []).append(definition.id)
    names: dict[int, str] = {}
    for slug, ids in by_slug.items():
        for position, definition_id in enumerate(ids):
            if slug and position == 0:
                names[definition_id] = f"{COLUMN_PREFIX}{slug}"
            else:
                names[definition_id] = f"{COLUMN_PREFIX}{slug}__{definition_id}"
    return dict(sorted(names.items()))


@attrs.frozen
class CustomFieldNames:
    """The definitions of one record kind, ready to name columns and values.

    Build it with :meth:`for_records` from every definition Copper answered;
    ``columns`` maps each definition id to its column name, in id order.
    """

    definitions: Mapping[int, CustomFieldDefinition]
    columns: Mapping[int, str]
    _options: Mapping[int, Mapping[int, str]] = attrs.field(repr=False)

    @classmethod
    def for_records(
        cls, definitions: Iterable[CustomFieldDefinition], kind: str = "opportunity"
    ) -> CustomFieldNames:
        """The definitions available on ``kind`` records (Copper's ``available_on``)."""
        chosen = {d.id: d for d in definitions if kind in d.available_on}
        options = {
            d.id: {option.id: option.name for option in d.options}
            for d in chosen.values()
            if d.data_type in _OPTION_TYPES
        }
        return cls(dict(sorted(chosen.items())), column_names(chosen.values()), options)

    def column_ids(self, columns: Iterable[str]) -> dict[int, str]:
        """The definition id of each of ``columns`` that names one (a header read back)."""
        wanted = set(columns)
        return {i: column for i, column in self.columns.items() if column in wanted}

    def value(self, definition_id: int, value: Any) -> Any:
        """``value`` with option ids as option names (lists item by item)."""
        options = self._options.get(definition_id)
        if not options or isinstance(value, bool):
            return value
        if isinstance(value, list | tuple):
            return [self._option(options, item) for item in value]
        return self._option(options, value)

    @staticmethod
    def _option(options: Mapping[int, str], item: Any) -> Any:
        if isinstance(item, int) and not isinstance(item, bool):
            return options.get(item, item)
        return item
