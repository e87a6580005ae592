"""The package's one cattrs converter, and the fast record paths built from the same types.

Records are declared in :mod:`copper_async._records` as frozen slotted attrs classes
whose field types say everything: ``X | AbsentType | None`` for an optional, nullable
field, ``datetime`` for a Unix-seconds timestamp, ``date`` for an ``M/D/YYYY`` date,
``tuple[X, ...]`` for a JSON array, :data:`RecordId` for a positive integer id, and one
field made with :func:`extra_field` for the keys this version does not know.

From those types this module builds two equivalent paths:

* :data:`converter`, a ``cattrs.preconf.orjson`` converter with strict hooks, run in
  ``detailed_validation`` mode. It is the authoritative path: its errors are turned
  into :class:`~copper_async.exceptions.RecordError` carrying the field path
  (:func:`structure_detailed`).
* :func:`make_record_structurer` / :func:`make_record_unstructurer`: generated,
  straight-line functions doing the same checks with exact-class tests. They run
  first; when one rejects a record, the converter structures it again to say why,
  so the fast path only has to detect errors, never explain them.

Both paths use the same conversions (``datetime.fromtimestamp(seconds, UTC)``, the
cached ``M/D/YYYY`` parser, timedelta arithmetic back to seconds); the tests check
that they agree on every generated record, valid or not.
"""

from __future__ import annotations

import enum
import linecache
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from operator import attrgetter
from types import MappingProxyType, MemberDescriptorType, NoneType, UnionType
from typing import Annotated, Any, Final, TypeAlias, TypeVar, Union, get_args, get_origin

import attrs
from attrs import NOTHING
from cattrs import override
from cattrs.errors import (
    ClassValidationError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn
from cattrs.preconf.orjson import OrjsonConverter, make_converter

from copper_async.exceptions import RecordError

__all__ = [
    "ABSENT",
    "EMPTY_EXTRA",
    "AbsentType",
    "CustomScalar",
    "CustomValue",
    "RecordId",
    "converter",
    "datetime_to_timestamp",
    "extra_field",
    "format_close_date",
    "make_record_structurer",
    "make_record_unstructurer",
    "parse_close_date",
    "structure_detailed",
    "timestamp_to_datetime",
]

T = TypeVar("T")


class AbsentType(enum.Enum):
    """The type of :data:`ABSENT`: a field the record did not carry.

    Distinct from ``None``, which means the API sent ``null``. Falsy, so
    ``if record.details:`` skips both.
    """

    ABSENT = "ABSENT"

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT: Final = AbsentType.ABSENT


class _Positive:
    """Annotated marker: an int that must be > 0 (record ids)."""

    def __repr__(self) -> str:
        return "positive"


RecordId: TypeAlias = Annotated[int, _Positive()]
"""A record id: a positive int (``bool`` is refused)."""

CustomScalar: TypeAlias = bool | int | float | str | None
"""One custom field value as JSON carries it; the exact class is kept (True stays bool)."""

CustomValue: TypeAlias = CustomScalar | tuple[CustomScalar, ...]
"""A custom field value: a scalar, or (multi-select fields) a tuple of scalars."""

_EXTRA_METADATA_KEY: Final = "copper_async.extra"

EMPTY_EXTRA: Final[Mapping[str, Any]] = MappingProxyType({})
"""The ``extra`` of a record that carried no unknown key (shared, read-only)."""


def extra_field() -> Any:
    """An attrs field for the unknown keys of a record, kept read-only and written back.

    Compared by ``==`` but left out of the hash (its values are arbitrary JSON).
    """
    return attrs.field(default=EMPTY_EXTRA, hash=False, metadata={_EXTRA_METADATA_KEY: True})


# --- Leaf conversions, shared by the fast and the detailed paths --------------------

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND: Final = timedelta(seconds=1)
_SCALARS: Final = frozenset({NoneType, bool, int, float, str})


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def timestamp_to_datetime(value: object) -> datetime:
    """Unix seconds (an ``int``, never a bool or float) as an aware UTC datetime."""
    if value.__class__ is not int:
        raise TypeError(f"expected a Unix timestamp (int seconds), got {_kind(value)}")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError(f"timestamp {value!r} is out of range") from exc


def datetime_to_timestamp(value: datetime) -> int:
    """The exact Unix seconds of an aware datetime (sub-second parts are dropped)."""
    # Integer arithmetic on timedeltas: exact for every year, unlike float timestamps.
    return (value - _EPOCH) // _SECOND


@lru_cache(maxsize=4096)
def _parse_close_date(text: str) -> date:
    parts = text.split("/")
    if (
        len(parts) != 3
        or len(parts[2]) != 4
        or not all(part.isascii() and part.isdigit() for part in parts)
    ):
        raise ValueError(f"{text!r} is not an M/D/YYYY date")
    month, day, year = (int(part) for part in parts)
    try:
        result = date(year, month, day)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid M/D/YYYY date: {exc}") from None
    # Only the unpadded spelling round-trips exactly, so it is the only one accepted.
    if format_close_date(result) != text:
        raise ValueError(f"{text!r} is not an M/D/YYYY date without zero padding")
    return result


def parse_close_date(value: object) -> date:
    """An unpadded ``M/D/YYYY`` string (e.g. ``"1/16/2017"``) as a date."""
    if value.__class__ is not str:
        raise TypeError(f"expected an M/D/YYYY string, got {_kind(value)}")
    return _parse_close_date(value)


def format_close_date(value: date) -> str:
    """A date as Copper writes it: ``M/D/YYYY`` without zero padding."""
    return f"{value.month}/{value.day}/{value.year}"


def _structure_record_id(value: object) -> int:
    if value.__class__ is not int:
        raise TypeError(f"expected a positive int id, got {_kind(value)}")
    if value <= 0:
        raise ValueError(f"expected a positive int id, got {value!r}")
    return value


def _copy_json(value: Any) -> Any:
    # Unknown values are kept by value: neither the caller's input nor the caller's
    # output may alias the state of a frozen record.
    if value.__class__ is dict:
        return {key: _copy_json(item) for key, item in value.items()}
    if value.__class__ is list:
        return [_copy_json(item) for item in value]
    return value


# --- Type inspection -------------------------------------------------------------


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, UnionType)


def _is_hom_tuple(tp: Any) -> bool:
    args = get_args(tp)
    return get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis


def _is_record_id(tp: Any) -> bool:
    return bool(tp == RecordId)


def _is_record_class(tp: Any) -> bool:
    return isinstance(tp, type) and attrs.has(tp) and _extra_name(tp) is not None


def _extra_name(cls: type) -> str | None:
    for field in attrs.fields(cls):
        if field.metadata.get(_EXTRA_METADATA_KEY):
            return str(field.name)
    return None


def _split_union(tp: Any) -> tuple[frozenset[type], Any]:
    """Exact scalar classes of a union, and its single non-scalar member (or None)."""
    members = [arg for arg in get_args(tp) if arg is not AbsentType]
    scalars = frozenset(arg for arg in members if arg in _SCALARS)
    others = [arg for arg in members if arg not in _SCALARS]
    if len(others) > 1:
        raise TypeError(f"unsupported union {tp!r}: at most one non-scalar member")
    return scalars, (others[0] if others else None)


def _describe(scalars: frozenset[type], other: Any) -> str:
    names = {NoneType: "null", bool: "bool", int: "int", float: "float", str: "str"}
    kinds = [names[cls] for cls in (NoneType, bool, int, float, str) if cls in scalars]
    if other is not None:
        kinds.append(f"{getattr(other, '__name__', other)!s}")
    return " or ".join(kinds)


# --- The cattrs converter (the detailed, authoritative path) -----------------------


def _strict_scalar(cls: type) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        if value.__class__ is not cls:
            raise TypeError(f"expected {cls.__name__}, got {_kind(value)}")
        return value

    return structure


def _structure_union_factory(tp: Any) -> Callable[[Any, Any], Any]:
    scalars, other = _split_union(tp)
    expected = _describe(scalars, other)
    if other is None:

        def structure_scalars(value: Any, _: Any) -> Any:
            if value.__class__ in scalars:
                return value
            raise TypeError(f"expected {expected}, got {_kind(value)}")

        return structure_scalars

    hook = converter.get_structure_hook(other)

    def structure_union(value: Any, _: Any) -> Any:
        if value.__class__ in scalars:
            return value
        return hook(value, other)

    return structure_union


def _unstructure_union_factory(tp: Any) -> Callable[[Any], Any]:
    scalars, other = _split_union(tp)
    if other is None:
        return lambda value: value
    hook = converter.get_unstructure_hook(other)
    return lambda value: value if value.__class__ in scalars else hook(value)


def _structure_tuple_factory(tp: Any) -> Callable[[Any, Any], Any]:
    item_type = get_args(tp)[0]
    hook = converter.get_structure_hook(item_type)

    def structure_tuple(value: Any, _: Any) -> tuple[Any, ...]:
        if value.__class__ is not list:
            raise TypeError(f"expected a list, got {_kind(value)}")
        items: list[Any] = []
        errors: list[Exception] = []
        for index, item in enumerate(value):
            try:
                items.append(hook(item, item_type))
            except Exception as exc:
                exc.add_note(IterableValidationNote(f"@ index {index}", index, item_type))
                errors.append(exc)
        if errors:
            raise IterableValidationError(f"While structuring {tp!r}", errors, tp)
        return tuple(items)

    return structure_tuple


def _unstructure_tuple_factory(tp: Any) -> Callable[[Any], Any]:
    hook = converter.get_unstructure_hook(get_args(tp)[0])
    return lambda value: [hook(item) for item in value]


def _structure_record_factory(cls: Any) -> Callable[[Any, Any], Any]:
    extra_name = _extra_name(cls)
    assert extra_name is not None
    known = frozenset(f.name for f in attrs.fields(cls) if f.name != extra_name)
    # The extra field is filled from the leftover keys, never from a key named "extra".
    overrides: dict[str, Any] = {extra_name: override(omit=True)}
    base = make_dict_structure_fn(cls, converter, **overrides)

    def structure_record(value: Any, _: Any) -> Any:
        if value.__class__ is not dict:
            raise TypeError(f"expected a JSON object, got {_kind(value)}")
        record = base(value, cls)
        if known.issuperset(value):
            return record
        extra = {key: _copy_json(item) for key, item in value.items() if key not in known}
        return attrs.evolve(record, **{extra_name: MappingProxyType(extra)})

    return structure_record


def _unstructure_record_factory(cls: Any) -> Callable[[Any], Any]:
    extra_name = _extra_name(cls)
    assert extra_name is not None
    # Every optional field defaults to ABSENT, so "omit if default" is "omit if absent".
    overrides: dict[str, Any] = {extra_name: override(omit=True)}
    base = make_dict_unstructure_fn(cls, converter, _cattrs_omit_if_default=True, **overrides)
    get_extra = attrgetter(extra_name)

    def unstructure_record(record: Any) -> dict[str, Any]:
        result: dict[str, Any] = base(record)
        for key, item in get_extra(record).items():
            result[key] = _copy_json(item)
        return result

    return unstructure_record


def _build_converter() -> OrjsonConverter:
    conv = make_converter(detailed_validation=True, forbid_extra_keys=False)
    # Strict scalars: cattrs' defaults would coerce ("5" -> 5, True -> 1).
    for cls in (int, float, str, bool):
        conv.register_structure_hook(cls, _strict_scalar(cls))
    conv.register_structure_hook_func(_is_record_id, lambda v, _: _structure_record_id(v))
    conv.register_structure_hook(datetime, lambda v, _: timestamp_to_datetime(v))
    conv.register_unstructure_hook(datetime, datetime_to_timestamp)
    conv.register_structure_hook(date, lambda v, _: parse_close_date(v))
    conv.register_unstructure_hook(date, format_close_date)
    # Registered last so they win over the preconf union passthrough, which lets a
    # bool through where an int goes.
    conv.register_structure_hook_factory(_is_union, _structure_union_factory)
    conv.register_unstructure_hook_factory(_is_union, _unstructure_union_factory)
    conv.register_structure_hook_factory(_is_hom_tuple, _structure_tuple_factory)
    conv.register_unstructure_hook_factory(_is_hom_tuple, _unstructure_tuple_factory)
    conv.register_structure_hook_factory(_is_record_class, _structure_record_factory)
    conv.register_unstructure_hook_factory(_is_record_class, _unstructure_record_factory)
    return conv


converter: Final[OrjsonConverter] = _build_converter()
"""The package's converter: strict, detailed validation, records as Copper's JSON."""


# --- Errors ----------------------------------------------------------------------


def _leaf_errors(exc: BaseException, path: str) -> list[tuple[str, BaseException]]:
    if isinstance(exc, ClassValidationError):
        with_notes, others = exc.group_exceptions()
        found: list[tuple[str, BaseException]] = []
        for sub, note in with_notes:
            found += _leaf_errors(sub, f"{path}.{note.name}" if path else note.name)
        for sub in others:
            found += _leaf_errors(sub, path)
        return found
    if isinstance(exc, IterableValidationError):
        items, others = exc.group_exceptions()
        found = []
        for sub, item_note in items:
            found += _leaf_errors(sub, f"{path}[{item_note.index}]")
        for sub in others:
            found += _leaf_errors(sub, path)
        return found
    return [(path, exc)]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return "required field is missing"
    return str(exc) or type(exc).__name__


def _readable_id(data: object, id_key: str | None) -> int | None:
    if id_key is None or data.__class__ is not dict:
        return None
    value = data.get(id_key)
    return value if value.__class__ is int and value > 0 else None


def structure_detailed(
    data: object,
    cls: type[T],
    *,
    id_key: str | None = "id",
    context: Mapping[str, Any] | None = None,
) -> T:
    """Structure ``data`` as ``cls`` with the validating converter.

    Raises :class:`RecordError` whose ``path`` names the first bad field (e.g.
    ``"custom_fields[2].custom_field_definition_id"``; ``""`` when ``data`` is not
    an object) and whose ``record_id`` is ``data[id_key]`` when that is a valid id.
    When several fields are bad, ``context["paths"]`` lists them all in field order.
    """
    try:
        return converter.structure(data, cls)
    except Exception as exc:
        leaves = _leaf_errors(exc, "") or [("", exc)]
        path, leaf = leaves[0]
        details = dict(context or {})
        if len(leaves) > 1:
            details["paths"] = [where for where, _ in leaves]
        raise RecordError(
            path, _reason(leaf), record_id=_readable_id(data, id_key), context=details
        ) from exc


# --- Fast paths ------------------------------------------------------------------
#
# Each record class gets a generated, straight-line function: per field one dict
# lookup and one exact-class test, the common conversions inlined, the value written
# straight into the instance's slot. (A frozen attrs ``__init__`` costs keyword
# matching plus one ``object.__setattr__`` call per field: alone more than the whole
# cattrs baseline.) The structurer only has to *detect* bad input; the converter
# explains it.


class _Rejected(Exception):
    """Raised by generated structurers on any input they do not accept as is."""


class _Codegen:
    """Source lines plus the namespace of the constants they refer to."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.namespace: dict[str, Any] = {
            "_Rejected": _Rejected,
            "_ABSENT": ABSENT,
            "_UTC": UTC,
            "_EPOCH": _EPOCH,
            "_SECOND": _SECOND,
            "_date": date,
            "_datetime": datetime,
            "_fromts": datetime.fromtimestamp,
            "_parse_date": _parse_close_date,
            "_copy_json": _copy_json,
            "_bad": _bad_value,
        }

    def const(self, value: Any, hint: str) -> str:
        name = f"_{hint}{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def compile(self, lines: list[str], name: str) -> Any:
        source = "\n".join(lines) + "\n"
        filename = f"<copper_async generated {name} for {self.cls.__qualname__}>"
        # Registered so tracebacks through generated code show its source.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), self.namespace)
        return self.namespace[name]


def _bad_value(name: str, value: object) -> Any:
    raise TypeError(f"field {name!r} holds an unexpected {type(value).__name__}")


def _structure_code(tp: Any, gen: _Codegen) -> tuple[frozenset[type], list[str]]:
    """Exact classes kept as they are, and the lines converting (or refusing) the rest.

    The lines read and rebind ``value``; they only run when its class is not kept.
    """
    if _is_union(tp):
        scalars, other = _split_union(tp)
        if AbsentType in get_args(tp):
            # Only reachable through the lookup default: JSON never holds ABSENT.
            scalars |= {AbsentType}
        if other is None:
            return scalars, ["raise _Rejected"]
        inner_pass, inner_lines = _structure_code(other, gen)
        return scalars | inner_pass, inner_lines
    if tp in _SCALARS:
        return frozenset({tp}), ["raise _Rejected"]
    if _is_record_id(tp):
        return frozenset(), ["if value.__class__ is not int or value <= 0:", "    raise _Rejected"]
    if tp is datetime:
        return frozenset(), [
            "if value.__class__ is not int:",
            "    raise _Rejected",
            "value = _fromts(value, _UTC)",
        ]
    if tp is date:
        return frozenset(), [
            "if value.__class__ is not str:",
            "    raise _Rejected",
            "value = _parse_date(value)",
        ]
    if _is_hom_tuple(tp):
        item = get_args(tp)[0]
        check = ["if value.__class__ is not list:", "    raise _Rejected"]
        if _is_record_class(item):
            nested = gen.const(_interning_structurer(item), "structure")
            return frozenset(), [*check, f"value = tuple([{nested}(x) for x in value])"]
        item_pass, item_lines = _structure_code(item, gen)
        if item_lines != ["raise _Rejected"]:
            raise TypeError(f"no fast structuring for {tp!r}: items must be scalars or records")
        kept = gen.const(item_pass, "items")
        return frozenset(), [
            *check,
            "for x in value:",
            f"    if x.__class__ not in {kept}:",
            "        raise _Rejected",
            "value = tuple(value)",
        ]
    if _is_record_class(tp):
        nested = gen.const(make_record_structurer(tp, fast_only=True), "structure")
        return frozenset(), [f"value = {nested}(value)"]
    raise TypeError(f"no fast structuring for {tp!r}")


def _unstructure_code(tp: Any, name: str, gen: _Codegen) -> tuple[frozenset[type], list[str]]:
    """Exact classes written as they are, and the lines converting the rest."""
    bad = [f"_bad({name!r}, value)"]
    if _is_union(tp):
        scalars, other = _split_union(tp)
        if other is None:
            return scalars, bad
        inner_pass, inner_lines = _unstructure_code(other, name, gen)
        return scalars | inner_pass, inner_lines
    if tp in _SCALARS:
        return frozenset({tp}), bad
    if _is_record_id(tp):
        return frozenset({int}), bad
    if tp is datetime:
        # Integer arithmetic on timedeltas: exact for every year.
        return frozenset(), [
            "if value.__class__ is not _datetime or value.tzinfo is None:",
            f"    _bad({name!r}, value)",
            "value = (value - _EPOCH) // _SECOND",
        ]
    if tp is date:
        return frozenset(), [
            "if value.__class__ is not _date:",
            f"    _bad({name!r}, value)",
            "value = f'{value.month}/{value.day}/{value.year}'",
        ]
    if _is_hom_tuple(tp):
        item = get_args(tp)[0]
        check = ["if value.__class__ is not tuple:", f"    _bad({name!r}, value)"]
        if _is_record_class(item):
            nested = gen.const(make_record_unstructurer(item), "unstructure")
            return frozenset(), [*check, f"value = [{nested}(x) for x in value]"]
        return frozenset(), [*check, "value = list(value)"]
    if _is_record_class(tp):
        nested = gen.const(make_record_unstructurer(tp), "unstructure")
        return frozenset(), [f"value = {nested}(value)"]
    raise TypeError(f"no fast unstructuring for {tp!r}")


def _record_fields(cls: type) -> tuple[str, list[attrs.Attribute[Any]]]:
    """The extra field's name and the other fields; refuses what the fast path skips."""
    if not (isinstance(cls, type) and attrs.has(cls)):
        raise TypeError(f"{cls!r} is not an attrs class")
    attrs.resolve_types(cls)
    extra_name = _extra_name(cls)
    if extra_name is None:
        raise TypeError(f"{cls!r} has no extra_field()")
    # The generated structurer writes slots directly, so __init__ hooks would be skipped.
    if hasattr(cls, "__attrs_post_init__") or hasattr(cls, "__attrs_pre_init__"):
        raise TypeError(f"{cls!r}: record classes may not have __attrs_*_init__ hooks")
    fields = list(attrs.fields(cls))
    for field in fields:
        if field.validator is not None or field.converter is not None:
            raise TypeError(f"{cls!r}.{field.name}: record fields may not have validators")
    return extra_name, [field for field in fields if field.name != extra_name]


def _indent(lines: list[str], prefix: str) -> list[str]:
    return [prefix + line for line in lines]


# Values whose class and == fully identify them (floats are left out: -0.0 == 0.0).
_INTERNABLE: Final = frozenset({NoneType, bool, int, str})
_INTERN_LIMIT: Final = 16384


def _interning_structurer(cls: type[T]) -> Callable[[Any], T]:
    """The fast structurer of a small record class that repeats a lot (custom fields).

    Records are immutable, so entries with the same keys and the same scalar values
    (same classes too: True is not 1) can share one instance. Anything else, or a
    class with a field that could never be interned, goes to the plain structurer.
    """
    structure = make_record_structurer(cls, fast_only=True)
    _, fields = _record_fields(cls)
    if not all(
        f.type in _INTERNABLE or (_is_union(f.type) and _split_union(f.type)[0] & _INTERNABLE)
        for f in fields
    ):
        return structure
    cache: dict[tuple[Any, ...], T] = {}
    gen = _Codegen(cls)
    gen.namespace.update(
        _I=_INTERNABLE,
        _structure=structure,
        _cache=cache,
        _cache_get=cache.get,
        _LIMIT=_INTERN_LIMIT,
    )
    names = [f"v{index}" for index in range(len(fields))]
    lines = [
        "def structure_interned(data):",
        f"    if data.__class__ is dict and len(data) == {len(fields)}:",
        *(
            f"        {v} = data.get({f.name!r}, _ABSENT)"
            for v, f in zip(names, fields, strict=True)
        ),
        "        if " + " and ".join(f"{v}.__class__ in _I" for v in names) + ":",
        "            key = (" + "".join(f"{v}.__class__, {v}, " for v in names) + ")",
        "            record = _cache_get(key)",
        "            if record is None:",
        "                record = _structure(data)",
        "                if len(_cache) >= _LIMIT:",
        "                    _cache.clear()",
        "                _cache[key] = record",
        "            return record",
        "    return _structure(data)",
    ]
    interned: Callable[[Any], T] = gen.compile(lines, "structure_interned")
    return interned


def make_record_structurer(cls: type[T], *, fast_only: bool = False) -> Callable[[Any], T]:
    """A function ``dict -> cls`` for a record class, fast path first.

    With ``fast_only`` it raises an unspecified exception on any input it does not
    accept; otherwise a rejected input is re-run through :func:`structure_detailed`,
    so the only error that escapes is :class:`RecordError`.
    """
    extra_name, fields = _record_fields(cls)
    known = frozenset(field.name for field in fields)
    gen = _Codegen(cls)
    gen.namespace.update(
        _cls=cls,
        _new=object.__new__,
        _osa=object.__setattr__,
        _EMPTY=EMPTY_EXTRA,
        _known_issuperset=known.issuperset,
        _extra=lambda data: MappingProxyType(
            {key: _copy_json(item) for key, item in data.items() if key not in known}
        ),
    )

    def store(name: str, value: str) -> str:
        slot = cls.__dict__.get(name)
        if isinstance(slot, MemberDescriptorType):
            return f"    {gen.const(slot.__set__, 'set')}(record, {value})"
        return f"    _osa(record, {name!r}, {value})"

    lines = [
        "def structure(data):",
        "    if data.__class__ is not dict:",
        "        raise _Rejected",
        "    get = data.get",
        "    record = _new(_cls)",
    ]
    for field in fields:
        kept, convert = _structure_code(field.type, gen)
        lines.append(f"    value = get({field.name!r}, _ABSENT)")
        lines.append(f"    if value.__class__ not in {gen.const(kept, 'kept')}:")
        lines += _indent(convert, "        ")
        lines.append(store(field.name, "value"))
    lines.append(store(extra_name, "_EMPTY if _known_issuperset(data) else _extra(data)"))
    lines.append("    return record")
    structure_fast: Callable[[Any], T] = gen.compile(lines, "structure")
    if fast_only:
        return structure_fast

    def structure(data: Any) -> T:
        try:
            return structure_fast(data)
        except Exception:
            # The fast path only detects; the converter explains (or, if the two ever
            # disagree, the converter's answer is the one that counts).
            return structure_detailed(data, cls)

    return structure


def make_record_unstructurer(cls: type[T]) -> Callable[[T], dict[str, Any]]:
    """A function ``cls -> dict`` giving back Copper's JSON shape.

    Absent fields are left out, known fields come in declaration order, then the
    unknown keys in the order they arrived.
    """
    extra_name, fields = _record_fields(cls)
    gen = _Codegen(cls)
    lines = ["def unstructure(record):", "    result = {}"]
    for field in fields:
        kept, convert = _unstructure_code(field.type, field.name, gen)
        body = [
            f"if value.__class__ not in {gen.const(kept, 'kept')}:",
            *_indent(convert, "    "),
            f"result[{field.name!r}] = value",
        ]
        lines.append(f"    value = record.{field.name}")
        if field.default is NOTHING:
            lines += _indent(body, "    ")
        else:
            lines.append("    if value is not _ABSENT:")
            lines += _indent(body, "        ")
    lines += [
        f"    extra = record.{extra_name}",
        "    if extra:",
        "        for key, value in extra.items():",
        "            result[key] = _copy_json(value)",
        "    return result",
    ]
    unstructure: Callable[[T], dict[str, Any]] = gen.compile(lines, "unstructure")
    return unstructure
