"""Search options: each declared once, with its default, bounds and help.

:class:`SearchOptions` is the one declaration. Its fields' metadata
(:class:`OptionSpec`) drives the validation here, the typed keywords of
``client.opportunities.search(**options)`` (:class:`SearchKwargs`, checked
against the fields by a test), the ``copper-async`` flags, and the README's
option table (:func:`options_table`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict

import attrs

from copper_async.exceptions import InvalidOptionError
from copper_async.filters import MAX_PAGE_SIZE, MAX_TIMESTAMP, DateField

__all__ = [
    "SEARCH_CAP",
    "OnCap",
    "OptionSpec",
    "SearchKwargs",
    "SearchOptions",
    "check_max_items",
    "option_spec",
    "options_table",
    "search_options",
]

#: Copper returns only this many records of any one query.
SEARCH_CAP = 100_000
_MAX_CAP = 10**9
_MAX_CONCURRENCY = 64
_MAX_PASSES = 10
_SPEC = "copper_async.option"

OnCap = Literal["error", "warn"]
SecondaryField = DateField | Literal["auto"] | None


@attrs.frozen(kw_only=True)
class OptionSpec:
    """What one option allows and means: integer bounds or text choices,
    help text, and whether ``copper-async export`` has a flag for it."""

    help: str
    low: int | None = None
    high: int | None = None
    choices: tuple[str, ...] = ()
    flag: bool = True
    # Set when the option may be None (no bound applies then).
    optional: bool = False

    def allowed(self) -> str:
        """The allowed values, in words (for help and tables)."""
        allowed = ", ".join(self.choices) if self.choices else f"{self.low:_} to {self.high:_}"
        return allowed + (", or None" if self.optional else "")


def option_spec(field: attrs.Attribute[Any]) -> OptionSpec:
    """The declaration of one :class:`SearchOptions` field."""
    spec = field.metadata[_SPEC]
    assert isinstance(spec, OptionSpec)
    return spec


def _declared(**spec: Any) -> dict[str, OptionSpec]:
    return {_SPEC: OptionSpec(**spec)}


def _option(default: Any, **spec: Any) -> Any:
    """The field of an option without a converter: its default, and the
    declaration that validates it."""
    return attrs.field(default=default, validator=_check, metadata=_declared(**spec))


def _check(instance: object, field: attrs.Attribute[Any], value: Any) -> None:
    """The one validator: the bounds or choices the field declares."""
    spec = option_spec(field)
    if value is None and spec.optional:
        return
    if spec.choices:
        text = value.record_key if isinstance(value, DateField) else value
        if text not in spec.choices:
            allowed = " or ".join(repr(choice) for choice in spec.choices)
            raise InvalidOptionError(field.name, f"must be {allowed}, not {value!r}")
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOptionError(field.name, f"must be an integer, not {value!r}")
    assert spec.low is not None
    assert spec.high is not None
    if not spec.low <= value <= spec.high:
        raise InvalidOptionError(
            field.name, f"must be between {spec.low} and {spec.high}, not {value}"
        )


def _date_field(value: DateField | str, name: str) -> DateField:
    if isinstance(value, DateField):
        return value
    for member in DateField:
        if value in (member.value, member.record_key, member.name.lower()):
            return member
    raise InvalidOptionError(name, f"unknown date field {value!r}")


def _split_field(value: DateField | str) -> DateField:
    field = _date_field(value, "split_field")
    if not field.splittable:
        raise InvalidOptionError(
            "split_field",
            f"{field.record_key!r} cannot split a search: it must be sortable "
            "and never empty (use date_created or date_modified)",
        )
    return field


def _secondary_field(value: DateField | str | None) -> SecondaryField:
    if value is None or value == "auto":
        return None if value is None else "auto"
    field = _date_field(value, "secondary_field")
    if not field.splittable:
        raise InvalidOptionError(
            "secondary_field", "must be the other of date_created and date_modified"
        )
    return field


_SPLIT_FIELD_NAMES = tuple(field.record_key for field in DateField if field.splittable)


@attrs.frozen(kw_only=True)
class SearchOptions:
    """How one search pages and splits. Every option has a safe default.

    ``split_field`` must be a field the API can both filter and sort on and
    that no record leaves empty: ``date_created`` (default; it never changes,
    so records cannot move between windows while a search runs) or
    ``date_modified``. ``secondary_field`` splits a single second that holds
    more than the cap (by default the other of the two; ``None`` to never).
    ``end_at`` bounds ``date_created`` from above when the filter does not,
    so that records created while the search runs do not shift its pages;
    it defaults to the moment the search starts.
    """

    page_size: int = _option(
        MAX_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE, help="Records asked for per request."
    )
    cap: int = _option(
        SEARCH_CAP,
        low=1,
        high=_MAX_CAP,
        help="The API's search cap: the most records one query returns "
        "(lower it only for a test server).",
    )
    # attrs.field itself where a converter widens what __init__ takes, so
    # that type checkers see the converter's input type.
    split_field: DateField = attrs.field(
        default=DateField.CREATED,
        converter=_split_field,
        validator=_check,
        metadata=_declared(
            choices=_SPLIT_FIELD_NAMES, help="Date field the search is split on past the cap."
        ),
    )
    secondary_field: SecondaryField = attrs.field(
        default="auto",
        converter=_secondary_field,
        validator=_check,
        metadata=_declared(
            choices=("auto", *_SPLIT_FIELD_NAMES),
            flag=False,
            optional=True,
            help="Field that splits one second holding more than the cap: "
            "auto (the other date field), or None to never split it.",
        ),
    )
    on_cap: OnCap = _option(  # noqa: RUF009 - an attrs field, built once
        "error",
        choices=("error", "warn"),
        help="When records share one second past the cap: stop, or read "
        "what is reachable and warn.",
    )
    concurrency: int = _option(
        4,
        low=1,
        high=_MAX_CONCURRENCY,
        help="Page requests in flight at once (under the client's one rate limit).",
    )
    max_passes: int = _option(
        3,
        low=1,
        high=_MAX_PASSES,
        flag=False,
        help="Readings of one window at most, when its records move while it is read.",
    )
    end_at: int | None = _option(
        None,
        low=0,
        high=MAX_TIMESTAMP,
        optional=True,
        flag=False,
        help="Upper bound (Unix seconds) on date_created when the filter "
        "has none; None: the moment the search starts.",
    )

    def __attrs_post_init__(self) -> None:
        # Checks across two options; each option's own bounds are checked above.
        if self.cap < self.page_size:
            raise InvalidOptionError("cap", f"must be at least page_size ({self.page_size})")
        if self.secondary_field is self.split_field:
            raise InvalidOptionError(
                "secondary_field", "must be the other of date_created and date_modified"
            )

    @property
    def split_fields(self) -> tuple[DateField, ...]:
        """The primary split field, then the one that splits hot seconds."""
        if self.secondary_field is None:
            return (self.split_field,)
        if self.secondary_field == "auto":
            other = (
                DateField.MODIFIED if self.split_field is DateField.CREATED else DateField.CREATED
            )
            return (self.split_field, other)
        return (self.split_field, self.secondary_field)


def check_max_items(value: object) -> int | None:
    """``max_items``: None (every record) or a positive integer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOptionError("max_items", f"must be a positive integer or None, not {value!r}")
    return value


def search_options(options: Mapping[str, Any], max_items: object = None) -> SearchOptions:
    """The options of one search that stops after ``max_items`` records.

    Such a search needs no page bigger than those records, so its page size
    is the smaller of ``page_size`` and ``max_items``. The planner cuts a
    window at the last page lying wholly inside the cap, so that page size
    must not exceed ``cap``: such a search is refused here, before any request.
    """
    limit = check_max_items(max_items)
    fields = attrs.fields(SearchOptions)
    requested = options.get("page_size", fields.page_size.default)
    if limit is None or not isinstance(requested, int) or requested <= limit:
        return SearchOptions(**options)
    # Each option's own bounds first: max_items must not hide a bad page_size.
    cap = options.get("cap", fields.cap.default)
    _check(None, fields.page_size, requested)
    _check(None, fields.cap, cap)
    if cap < limit:
        raise InvalidOptionError(
            "cap",
            f"must be at least the page size a search asks for, the smaller of "
            f"page_size ({requested}) and max_items ({limit})",
        )
    return SearchOptions(**{**options, "page_size": limit})


class SearchKwargs(TypedDict, total=False):
    """The keyword form of :class:`SearchOptions`, for ``search(**options)``.

    A test checks these keys and types against ``SearchOptions.__init__``.
    """

    page_size: int
    cap: int
    split_field: DateField | str
    secondary_field: DateField | str | None
    on_cap: OnCap
    concurrency: int
    max_passes: int
    end_at: int | None


def _shown(value: object) -> str:
    if isinstance(value, DateField):
        return value.record_key
    return f"{value:_}" if isinstance(value, int) else str(value)


def options_table() -> str:
    """The search options as a Markdown table (the README's)."""
    rows = [
        "| option | default | allowed | `export` flag | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for field in attrs.fields(SearchOptions):
        spec = option_spec(field)
        flag = f"`--{field.name.replace('_', '-')}`" if spec.flag else ""
        rows.append(
            f"| `{field.name}` | `{_shown(field.default)}` | {spec.allowed()} | {flag} "
            f"| {spec.help} |"
        )
    return "\n".join(rows) + "\n"
