"""Validators and converters for the filter classes, and their shared refusals.

Checks take the field name for the error (``check(field, value)``) and raise
:class:`~copper_async.exceptions.InvalidFilterError`; :func:`_optional` and
:func:`_required` turn them into attrs validators, which get the name from attrs.
Converters normalise what they recognise and pass anything else through
untouched, so that the validator, which knows the field name, refuses it.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta
from typing import Any, Self, cast

import attrs

from copper_async._filter_fields import MAX_TIMESTAMP, MIN_TIMESTAMP, NONE_SET
from copper_async.exceptions import InvalidFilterError

_Check = Callable[[str, object], None]
_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]

# A body's integers must fit the signed 64 bits JSON encoders and Copper's ids use:
# a bigger one would fail to encode, named only as "body", or overflow a float check.
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_EPOCH_NAIVE = datetime(1970, 1, 1)
_ONE_SECOND = timedelta(seconds=1)


# --- checks ---------------------------------------------------------------------------------


def _show(value: object) -> str:
    if isinstance(value, int) and value.bit_length() > 64:
        # Also past the digits Python will turn into text (sys.get_int_max_str_digits).
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: object) -> bool:
    # bool is an int subclass; True where an id goes is always a mistake.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(field: str, value: object, *, minimum: int, maximum: int | None = None) -> None:
    if not _is_int(value):
        raise InvalidFilterError(field, f"expected an integer, got {_show(value)}")
    number = cast(int, value)
    if number < minimum or (maximum is not None and number > maximum):
        upper = "" if maximum is None else f" and at most {maximum}"
        raise InvalidFilterError(field, f"must be at least {minimum}{upper}, got {_show(number)}")
    _check_int64(field, number)


def _check_int64(field: str, number: int) -> None:
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise InvalidFilterError(field, f"must fit in 64 bits, got {_show(number)}")


def _check_id(field: str, value: object, *, none_set: bool) -> None:
    if _is_int(value) and (cast(int, value) > 0 or (none_set and value == NONE_SET)):
        _check_int64(field, cast(int, value))
        return
    expected = f"a positive integer or {NONE_SET} (none set)" if none_set else "a positive integer"
    raise InvalidFilterError(field, f"expected {expected}, got {_show(value)}")


def _check_positive_id(field: str, value: object) -> None:
    _check_id(field, value, none_set=False)


def _check_int_code(field: str, value: object, codes: Collection[int], expected: str) -> None:
    """Refuse anything but one of the integer ``codes`` (``expected`` says which they are)."""
    if not _is_int(value) or value not in codes:
        raise InvalidFilterError(field, f"expected {expected}, got {_show(value)}")


def _check_choice(field: str, value: object, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidFilterError(field, f"expected one of {', '.join(allowed)}; got {_show(value)}")


def _check_text(field: str, value: object) -> None:
    if not isinstance(value, str):
        raise InvalidFilterError(field, f"expected a string, got {_show(value)}")
    if not value.strip():
        raise InvalidFilterError(field, "must not be empty")
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate: JSON bodies are UTF-8
        raise InvalidFilterError(field, f"is not valid Unicode text: {_show(value)}") from None


def _check_bool(field: str, value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidFilterError(field, f"expected true or false, got {_show(value)}")


def _refuse_naive(field: str, value: object) -> None:
    # Only naive datetimes survive the converters: aware ones become numbers.
    if isinstance(value, datetime):
        raise InvalidFilterError(field, "naive datetime; give a timezone-aware datetime")


def _check_number(field: str, value: object) -> None:
    _refuse_naive(field, value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidFilterError(field, f"expected a number, got {_show(value)}")
    if isinstance(value, int):
        _check_int64(field, value)
    elif not math.isfinite(value):
        raise InvalidFilterError(field, f"must be finite, got {value!r}")


def _check_timestamp(field: str, value: object) -> None:
    _refuse_naive(field, value)
    if not _is_int(value):
        raise InvalidFilterError(
            field, f"expected Unix seconds (int), an aware datetime or a date; got {_show(value)}"
        )
    _check_int(field, value, minimum=MIN_TIMESTAMP, maximum=MAX_TIMESTAMP)


def _check_list(field: str, value: object, check_item: _Check) -> None:
    # The converter made every acceptable iterable a tuple: anything else was refused input.
    if not isinstance(value, tuple):
        raise InvalidFilterError(field, f"expected a list, got {_show(value)}")
    if not value:
        # Undocumented whether Copper reads [] as "match nothing" or "no filter".
        raise InvalidFilterError(field, "empty list; leave the field unset instead")
    for index, item in enumerate(value):
        check_item(f"{field}[{index}]", item)


def _check_bounds(instance: attrs.AttrsInstance, pairs: Iterable[tuple[str, str]]) -> None:
    """Refuse a ``minimum_*`` above its ``maximum_*``; ``pairs`` name the fields, in check order."""
    for minimum_field, maximum_field in pairs:
        minimum, maximum = getattr(instance, minimum_field), getattr(instance, maximum_field)
        if minimum is not None and maximum is not None and minimum > maximum:
            raise InvalidFilterError(
                minimum_field,
                f"{minimum_field} ({minimum!r}) is greater than {maximum_field} ({maximum!r})",
            )


# --- validators (attrs gives them the field name) --------------------------------------------


def _optional(check: _Check) -> _Validator:
    def validate(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            check(attribute.name, value)

    return validate


def _required(check: _Check) -> _Validator:
    def validate(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            raise InvalidFilterError(attribute.name, "missing")
        check(attribute.name, value)

    return validate


def _list_of(check_item: _Check) -> _Validator:
    return _optional(lambda field, value: _check_list(field, value, check_item))


def _ids(*, none_set: bool = False) -> _Validator:
    return _list_of(lambda field, item: _check_id(field, item, none_set=none_set))


def _choices(allowed: tuple[str, ...]) -> _Validator:
    return _list_of(lambda field, item: _check_choice(field, item, allowed))


def _choice(allowed: tuple[str, ...]) -> _Validator:
    return _optional(lambda field, value: _check_choice(field, value, allowed))


# --- converters -------------------------------------------------------------------------------
# Each is a named, annotated function, because that is what mypy's attrs plugin
# reads to type ``__init__``: the wrappers below differ only in their types.


def _plain(item: object) -> object:
    if isinstance(item, str):
        return str(item)  # StrEnum members become their plain value
    if _is_int(item):
        return int(cast(int, item))  # IntEnum members become plain ints
    return item


def _as_tuple(value: object) -> object:
    # A bare string is an iterable of characters and a mapping one of keys:
    # neither is what a user means by a list.
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        return value
    return tuple(_plain(item) for item in value)


def _int_tuple(value: Iterable[int] | None) -> tuple[int, ...] | None:
    return cast("tuple[int, ...] | None", _as_tuple(value))


def _str_tuple(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return cast("tuple[str, ...] | None", _as_tuple(value))


def _plain_str(value: str | None) -> str | None:
    return cast("str | None", _plain(value))


def _plain_int(value: int | None) -> int | None:
    return cast("int | None", _plain(value))


def _seconds(value: object, *, round_up: bool) -> object:
    if isinstance(value, datetime):
        offset = value.utcoffset()
        if offset is None:
            return value  # naive: refused by the validator
        # timedelta arithmetic, not datetime's: no OverflowError near year 1 or 9999
        delta = value.replace(tzinfo=None) - _EPOCH_NAIVE - offset
        seconds, rest = divmod(delta, _ONE_SECOND)
        # Records hold whole seconds: a lower bound rounds up and an upper bound
        # down, so that no record outside the given instants matches.
        return seconds + 1 if round_up and rest else seconds
    if isinstance(value, date):
        return (value - _EPOCH_NAIVE.date()).days * 86_400
    return _plain(value)


def _minimum_timestamp(value: int | datetime | date | None) -> int | None:
    return cast("int | None", _seconds(value, round_up=True))


def _maximum_timestamp(value: int | datetime | date | None) -> int | None:
    return cast("int | None", _seconds(value, round_up=False))


def _minimum_number(value: float | datetime | date | None) -> float | None:
    return cast("float | None", _seconds(value, round_up=True))


def _maximum_number(value: float | datetime | date | None) -> float | None:
    return cast("float | None", _seconds(value, round_up=False))


# --- keys, keywords and reprs -----------------------------------------------------------------


def _unknown_field(key: object, allowed: Iterable[str]) -> InvalidFilterError:
    """The error for a key Copper does not document, with the nearest known one.

    Copper ignores keys it does not know, so a misspelt filter (say
    ``minimum_date_modified``) would silently match everything.
    """
    reason = "unknown field: Copper ignores it, so the search would not be filtered by it"
    close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
    if close:
        reason += f" (did you mean {close[0]!r}?)"
    return InvalidFilterError(str(key), reason)


def _as_object(body: object) -> Mapping[str, Any]:
    """``body``, refused unless it is a JSON object (a mapping)."""
    if not isinstance(body, Mapping):
        raise InvalidFilterError("body", f"expected a JSON object, got {_show(body)}")
    return body


def _check_keys(body: object, allowed: tuple[str, ...]) -> None:
    for key in _as_object(body):
        if key not in allowed:
            raise _unknown_field(key, allowed)


class _KnownKeywords:
    """Refuses unknown keywords with InvalidFilterError naming them.

    attrs' ``__init__`` would raise a bare TypeError; ``__new__`` sees the
    same keywords first, and leaves the typed ``__init__`` to type checkers.
    """

    __slots__ = ()

    def __new__(cls, *args: Any, **fields: Any) -> Self:
        known = attrs.fields_dict(cast("type[attrs.AttrsInstance]", cls))
        for key in fields:
            if key not in known:
                raise _unknown_field(key, known)
        return super().__new__(cls)


def _set_fields(instance: attrs.AttrsInstance) -> Iterator[tuple[str, Any]]:
    """(name, value) of the fields that are set (not None), in declaration order."""
    for attribute in attrs.fields(type(instance)):
        value = getattr(instance, attribute.name)
        if value is not None:
            yield attribute.name, value


def _repr_set_fields(instance: attrs.AttrsInstance) -> str:
    """A repr naming only the fields that are set, so logs stay readable."""
    shown = ", ".join(f"{name}={value!r}" for name, value in _set_fields(instance))
    return f"{type(instance).__name__}({shown})"
