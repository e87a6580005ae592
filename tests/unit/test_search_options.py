from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import attrs
import click
import pytest

import copper_async._options as options_module
from copper_async._options import SearchKwargs, SearchOptions, option_spec, options_table
from copper_async.cli import demo, export
from copper_async.exceptions import InvalidOptionError
from copper_async.filters import DateField

README = Path(__file__).resolve().parents[2] / "README.md"
FIELDS = attrs.fields(SearchOptions)
INT_FIELDS = [field for field in FIELDS if not option_spec(field).choices]
CHOICE_FIELDS = [field for field in FIELDS if option_spec(field).choices]


def options_named(**values: Any) -> SearchOptions:
    """SearchOptions from option names known only at run time."""
    return SearchOptions(**values)


def test_split_fields_default_to_created_then_modified() -> None:
    assert SearchOptions().split_fields == (DateField.CREATED, DateField.MODIFIED)
    assert SearchOptions(split_field="date_modified").split_fields == (
        DateField.MODIFIED,
        DateField.CREATED,
    )
    assert SearchOptions(secondary_field=None).split_fields == (DateField.CREATED,)


def test_end_at_bounds_are_checked() -> None:
    with pytest.raises(InvalidOptionError) as raised:
        SearchOptions(end_at=-1)
    assert raised.value.option == "end_at"


def test_the_search_keywords_are_the_options_constructor_exactly() -> None:
    """``search(**options)`` is typed by SearchKwargs: same names, same types
    as SearchOptions accepts (a converter's input type where it has one)."""
    accepted = typing.get_type_hints(SearchOptions.__init__, globalns=vars(options_module))
    accepted.pop("return")
    assert typing.get_type_hints(SearchKwargs) == accepted
    assert SearchKwargs.__required_keys__ == frozenset()


@pytest.mark.parametrize("field", INT_FIELDS, ids=lambda field: field.name)
def test_each_integer_option_takes_exactly_its_declared_bounds(field: attrs.Attribute[Any]) -> None:
    spec = option_spec(field)
    assert spec.low is not None
    assert spec.high is not None
    # cap must also hold a page: give page_size its least for the cap's own bounds.
    other = {"page_size": 1} if field.name == "cap" else {}
    assert getattr(options_named(**{field.name: spec.low, **other}), field.name) == spec.low
    assert getattr(options_named(**{field.name: spec.high}), field.name) == spec.high
    for outside in (spec.low - 1, spec.high + 1, True, "1"):
        with pytest.raises(InvalidOptionError) as raised:
            options_named(**{field.name: outside})
        assert raised.value.option == field.name
    if spec.optional:
        assert getattr(options_named(**{field.name: None}), field.name) is None


@pytest.mark.parametrize("field", CHOICE_FIELDS, ids=lambda field: field.name)
def test_each_choice_option_takes_exactly_its_declared_choices(
    field: attrs.Attribute[Any],
) -> None:
    for choice in option_spec(field).choices:
        # The secondary field must differ from the split field.
        split = "date_modified" if choice == "date_created" else "date_created"
        options_named(**{"split_field": split, field.name: choice})
    with pytest.raises(InvalidOptionError) as raised:
        options_named(**{field.name: "nonsense"})
    assert raised.value.option == field.name


def test_every_option_declares_help_and_a_valid_default() -> None:
    for field in FIELDS:
        assert option_spec(field).help.endswith(".")
    assert SearchOptions() == options_named(**{field.name: field.default for field in FIELDS})


def _search_flags(command: click.Command) -> dict[str, click.Parameter]:
    names = {field.name for field in FIELDS}
    return {param.name: param for param in command.params if param.name in names}


@pytest.mark.parametrize("command", [export, demo], ids=["export", "demo"])
def test_the_cli_flags_are_the_options_declarations(command: click.Command) -> None:
    flags = _search_flags(command)
    assert set(flags) == {field.name for field in FIELDS if option_spec(field).flag}
    assert {"page_size", "cap", "split_field", "on_cap", "concurrency"} <= set(flags)
    for name, flag in flags.items():
        field = attrs.fields_dict(SearchOptions)[name]
        spec = option_spec(field)
        assert isinstance(flag, click.Option)
        assert flag.opts == [f"--{name.replace('_', '-')}"]
        assert flag.help == spec.help
        assert flag.show_default
        # The flag's default is the option's default.
        assert getattr(options_named(**{name: flag.default}), name) == field.default
        if spec.choices:
            assert isinstance(flag.type, click.Choice)
            assert tuple(flag.type.choices) == spec.choices
        else:
            assert isinstance(flag.type, click.IntRange)
            assert (flag.type.min, flag.type.max) == (spec.low, spec.high)


def test_the_options_table_has_a_row_per_option_with_its_bounds() -> None:
    rows = options_table().splitlines()[2:]
    assert [re.match(r"\| `(\w+)`", row).group(1) for row in rows] == [  # type: ignore[union-attr]
        field.name for field in FIELDS
    ]
    by_name = dict(zip([field.name for field in FIELDS], rows, strict=True))
    assert "| `200` | 1 to 200 | `--page-size` |" in by_name["page_size"]
    assert "| `100_000` | 1 to 1_000_000_000 | `--cap` |" in by_name["cap"]
    assert "| `3` | 1 to 10 |  |" in by_name["max_passes"]
    assert (
        "| `date_created` | date_created, date_modified | `--split-field` |"
        in (by_name["split_field"])
    )
    assert (
        "| `auto` | auto, date_created, date_modified, or None |  |" in (by_name["secondary_field"])
    )


def test_the_readme_lists_the_options_as_declared() -> None:
    assert options_table() in README.read_text()
