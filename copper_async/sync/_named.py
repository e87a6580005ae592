"""``opportunities_named``: the mirror's table with a column per custom field.

The table's schema is versioned and never altered, and Copper's custom
fields change under it; so the named columns live in a view, recreated at the
end of each run that asks for them (``--custom-field-names``) from the
definitions Copper answered then. Each definition gets one column, named by
:class:`~copper_async._custom_fields.CustomFieldNames` (``cf_region``...),
its value read from the row's ``custom_fields`` JSON; Dropdown ids become
option names, MultiSelect values a JSON array of names (an id no option has
stays an id, as in the CSV export). Views take no parameters, so names and
option names are written into the SQL as quoted identifiers and literals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from copper_async._custom_fields import CustomFieldNames
from copper_async.sync._schema import TABLE

__all__ = ["NAMED_VIEW", "postgres_view", "quote_identifier", "quote_literal", "sqlite_view"]

NAMED_VIEW: Final = f"{TABLE}_named"
_NUMBERS: Final = frozenset({"Float", "Currency", "Percentage"})


def quote_identifier(name: str) -> str:
    """An SQL identifier (the same rule in SQLite and PostgreSQL)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """An SQL string literal; PostgreSQL's text cannot hold NUL."""
    return "'" + text.replace("\x00", "").replace("'", "''") + "'"


def _options(names: CustomFieldNames, definition_id: int) -> Mapping[int, str]:
    definition = names.definitions[definition_id]
    if definition.data_type not in ("Dropdown", "MultiSelect"):
        return {}
    return {option.id: option.name for option in definition.options}


def _cases(options: Mapping[int, str], value: str, key: str, name: str) -> str:
    """``CASE <value> WHEN <key(id)> THEN <name(text)> ... ELSE <value> END``."""
    whens = " ".join(
        f"WHEN {key.format(option_id)} THEN {name.format(quote_literal(text))}"
        for option_id, text in options.items()
    )
    return f"CASE {value} {whens} ELSE {value} END"


# -- SQLite: one correlated lookup per column, in json_each --------------------------


def _sqlite_column(names: CustomFieldNames, definition_id: int) -> str:
    options = _options(names, definition_id)
    data_type = names.definitions[definition_id].data_type
    value = "json_extract(f.value, '$.value')"
    # Only integers are option ids: JSON true reads as 1 in SQLite.
    if options and data_type == "MultiSelect":
        item = _cases(options, "m.value", "{}", "{}")
        value = (
            f"CASE json_type(f.value, '$.value') WHEN 'array' THEN "
            f"(SELECT json_group_array(CASE m.type WHEN 'integer' THEN {item} ELSE m.value END) "
            f"FROM json_each(f.value, '$.value') m) ELSE {value} END"
        )
    elif options:
        value = (
            f"CASE json_type(f.value, '$.value') WHEN 'integer' THEN "
            f"{_cases(options, value, '{}', '{}')} ELSE {value} END"
        )
    return (
        f"(SELECT {value} FROM json_each(CASE json_type(o.custom_fields) WHEN 'array' "
        "THEN o.custom_fields ELSE '[]' END) f "
        f"WHERE json_extract(f.value, '$.custom_field_definition_id') = {definition_id} "
        # A field listed twice: the last entry counts, as in PostgreSQL's and the CSV's.
        f"ORDER BY f.key DESC LIMIT 1) AS {quote_identifier(names.columns[definition_id])}"
    )


def sqlite_view(names: CustomFieldNames) -> str:
    columns = "".join(f", {_sqlite_column(names, i)}" for i in names.columns)
    return f"CREATE VIEW {NAMED_VIEW} AS SELECT o.*{columns} FROM {TABLE} o"


# -- PostgreSQL: the row's fields gathered once, in a lateral, by definition id ------


def _postgres_column(names: CustomFieldNames, definition_id: int) -> str:
    options = _options(names, definition_id)
    data_type = names.definitions[definition_id].data_type
    value = f"c.fields -> {quote_literal(str(definition_id))}"
    if options and data_type == "MultiSelect":
        item = _cases(options, "e.item", "'{}'::jsonb", "to_jsonb({}::text)")
        column = (
            f"CASE jsonb_typeof({value}) WHEN 'array' THEN "
            f"(SELECT coalesce(jsonb_agg({item} ORDER BY e.n), '[]') "
            f"FROM jsonb_array_elements({value}) WITH ORDINALITY AS e(item, n)) "
            f"ELSE {value} END"
        )
    elif options:
        whens = " ".join(
            f"WHEN '{option_id}'::jsonb THEN {quote_literal(text)}"
            for option_id, text in options.items()
        )
        column = f"CASE {value} {whens} ELSE {value} #>> '{{}}' END"
    elif data_type == "Checkbox":
        column = f"CASE jsonb_typeof({value}) WHEN 'boolean' THEN ({value})::boolean END"
    elif data_type in _NUMBERS:
        column = f"CASE jsonb_typeof({value}) WHEN 'number' THEN ({value})::numeric END"
    elif data_type == "Date":
        column = _postgres_date(value)
    else:
        column = f"{value} #>> '{{}}'"
    return f"{column} AS {quote_identifier(names.columns[definition_id])}"


def _postgres_date(value: str) -> str:
    """A date as Unix seconds: as sent when a number, and Copper's documented
    ``M/D/YYYY`` as its midnight UTC; NULL for a day no calendar has (built
    from the month's first day, never an SQL error in a SELECT)."""
    parts = f"regexp_match({value} #>> '{{}}', '^(\\d{{1,2}})/(\\d{{1,2}})/(\\d{{4}})$')"
    first = "make_date(d.p[3]::int, d.p[1]::int, 1)"
    day = f"{first} + (d.p[2]::int - 1)"
    # Nested CASEs: only they fix the order of evaluation (make_date raises on a bad month).
    text_date = (
        f"(SELECT CASE WHEN d.p[1]::int BETWEEN 1 AND 12 AND d.p[2]::int BETWEEN 1 AND 31 "
        f"AND d.p[3]::int >= 1 THEN CASE WHEN extract(month FROM {day}) = d.p[1]::int "
        f"THEN extract(epoch FROM {day})::numeric END END FROM (SELECT {parts} AS p) d)"
    )
    return (
        f"CASE jsonb_typeof({value}) WHEN 'number' THEN ({value})::numeric "
        f"WHEN 'string' THEN {text_date} END"
    )


def postgres_view(names: CustomFieldNames) -> str:
    columns = "".join(f", {_postgres_column(names, i)}" for i in names.columns)
    return (
        f"CREATE VIEW {NAMED_VIEW} AS SELECT o.*{columns} FROM {TABLE} o "
        # In the array's order: of a field listed twice, jsonb keeps the last.
        "LEFT JOIN LATERAL (SELECT jsonb_object_agg(f ->> 'custom_field_definition_id', "
        "f -> 'value' ORDER BY n) AS fields FROM jsonb_array_elements(CASE "
        "jsonb_typeof(o.custom_fields) WHEN 'array' THEN o.custom_fields ELSE '[]' END) "
        "WITH ORDINALITY AS e(f, n) "
        "WHERE jsonb_typeof(f) = 'object' AND f ->> 'custom_field_definition_id' IS NOT NULL"
        ") c ON true"
    )
