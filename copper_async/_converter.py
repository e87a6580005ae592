"""The package's cattrs converter: Copper's JSON records as typed attrs classes.

Records are declared in :mod:`copper_async._records` as frozen attrs classes whose
field types say everything: ``X | AbsentType | None`` for an optional, nullable
field, ``datetime`` for a Unix-seconds timestamp, ``date`` for an ``M/D/YYYY`` date,
``tuple[X, ...]`` for a JSON array, :data:`RecordId` for a positive integer id, and
one field made with :func:`extra_field` for the keys this version does not know.

:data:`converter` is a ``cattrs.preconf.orjson`` converter configured once with
strict hooks for those types; each record class is handled by cattrs' own generated
functions (``make_dict_structure_fn`` / ``make_dict_unstructure_fn``), wrapped only to
keep unknown keys. It runs in cattrs' ``detailed_validation`` mode: on valid records
that costs nothing measurable (Python >= 3.11 ``try`` blocks are free until something
raises; ``benchmarks/bench_structuring.py`` shows the same converter without it), and
a refused record's ``ClassValidationError`` names every bad field, which
:func:`record_error` turns into a :class:`~copper_async.exceptions.RecordError`.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable, ItemsView, Iterator, KeysView, Mapping, ValuesView
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from operator import attrgetter
from types import NoneType, UnionType
from typing import Annotated, Any, Final, TypeAlias, TypeVar, Union, get_args, get_origin

import attrs
from cattrs import Converter
from cattrs.cols import homogenous_tuple_structure_factory
from cattrs.errors import ClassValidationError, IterableValidationError
from cattrs.fns import identity
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.orjson import OrjsonConverter, make_converter

from copper_async.exceptions import RecordError

__all__ = [
    "ABSENT",
    "EMPTY_EXTRA",
    "REFUSALS",
    "AbsentType",
    "CustomScalar",
    "CustomValue",
    "FrozenExtra",
    "RecordId",
    "converter",
    "extra_field",
    "record_error",
    "structure",
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


class FrozenExtra(Mapping[str, Any]):
    """The unknown keys of a record: a read-only mapping that pickles and deep-copies.

    ``types.MappingProxyType`` is read-only too, but can be neither pickled nor
    deep-copied, which made every record fail ``copy.deepcopy`` and ``pickle``.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._items: dict[str, Any] = dict(items) if items else {}

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def keys(self) -> KeysView[str]:
        return self._items.keys()

    def values(self) -> ValuesView[Any]:
        return self._items.values()

    def items(self) -> ItemsView[str, Any]:
        return self._items.items()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenExtra):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._items == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # its values are arbitrary JSON

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"

    def __reduce__(self) -> tuple[type[FrozenExtra], tuple[dict[str, Any]]]:
        return (type(self), (self._items,))


EMPTY_EXTRA: Final[Mapping[str, Any]] = FrozenExtra()
"""The ``extra`` of a record that carried no unknown key (shared, read-only)."""

REFUSALS: Final = (ClassValidationError, TypeError, RecursionError)
"""What structuring raises on a refused record: cattrs' grouped field errors, a
TypeError when the record is not a JSON object at all, or a RecursionError when its
unknown keys nest too deep to copy (orjson reads up to 1024 levels)."""


def extra_field() -> Any:
    """An attrs field for the unknown keys of a record, kept read-only and written back.

    Compared by ``==`` but left out of the hash (its values are arbitrary JSON).
    """
    return attrs.field(default=EMPTY_EXTRA, hash=False, metadata={_EXTRA_METADATA_KEY: True})


# --- Leaf hooks: exact JSON classes only (cattrs' defaults would turn "5" or True into 5)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND: Final = timedelta(seconds=1)
# Classes a union member passes through as they are. ABSENT never comes from JSON,
# but a record built in Python may carry it.
_PASSTHROUGH: Final = frozenset({NoneType, bool, int, float, str, AbsentType})
_KIND_NAMES: Final = {NoneType: "null", AbsentType: "ABSENT"}


def _kind(cls: Any) -> str:
    return _KIND_NAMES.get(cls) or str(getattr(cls, "__name__", cls))


def _strict(cls: type) -> Callable[[Any, Any], Any]:
    def structure_exact(value: Any, _: Any) -> Any:
        if value.__class__ is not cls:
            raise TypeError(f"expected {cls.__name__}, got {_kind(value.__class__)}")
        return value

    return structure_exact


def _structure_record_id(value: Any, _: Any) -> Any:
    if value.__class__ is not int:
        raise TypeError(f"expected a positive int id, got {_kind(value.__class__)}")
    if value <= 0:
        raise ValueError(f"expected a positive int id, got {value!r}")
    return value


def _structure_timestamp(value: Any, _: Any) -> datetime:
    if value.__class__ is not int:
        raise TypeError(f"expected a Unix timestamp (int seconds), got {_kind(value.__class__)}")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError(f"timestamp {value!r} is out of range") from exc


def _unstructure_timestamp(value: datetime) -> int:
    # Integer arithmetic on timedeltas: exact for every year, unlike float timestamps.
    return (value - _EPOCH) // _SECOND


def _format_close_date(value: date) -> str:
    return f"{value.month}/{value.day}/{value.year}"


@lru_cache(maxsize=4096)
def _parse_close_date(text: str) -> date:
    try:
        result = datetime.strptime(text, "%m/%d/%Y").date()
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an M/D/YYYY date: {exc}") from None
    # strptime also takes zero-padded and spaced spellings; only the unpadded one
    # round-trips exactly, so it is the only one accepted.
    if _format_close_date(result) != text:
        raise ValueError(f"{text!r} is not an M/D/YYYY date without zero padding")
    return result


def _structure_close_date(value: Any, _: Any) -> date:
    if value.__class__ is not str:
        raise TypeError(f"expected an M/D/YYYY string, got {_kind(value.__class__)}")
    return _parse_close_date(value)


# --- Hook factories for the record types -------------------------------------------


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, UnionType)


def _is_list_tuple(tp: Any) -> bool:
    args = get_args(tp)
    return get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis


def _is_record_id(tp: Any) -> bool:
    return bool(tp == RecordId)


def _extra_name(cls: type) -> str | None:
    for field in attrs.fields(cls):
        if field.metadata.get(_EXTRA_METADATA_KEY):
            return str(field.name)
    return None


def _is_record_class(tp: Any) -> bool:
    return isinstance(tp, type) and attrs.has(tp) and _extra_name(tp) is not None


def _split_union(tp: Any) -> tuple[frozenset[Any], Any]:
    """The members passed through as they are, and the one other member (or None)."""
    members = get_args(tp)
    others = [member for member in members if member not in _PASSTHROUGH]
    if len(others) > 1:
        raise TypeError(f"unsupported union {tp!r}: at most one non-scalar member")
    return frozenset(members) - set(others), (others[0] if others else None)


def _structure_union(tp: Any, conv: Converter) -> Callable[[Any, Any], Any]:
    passthrough, other = _split_union(tp)
    if other is not None:
        hook = conv.get_structure_hook(other)
        return lambda value, _: value if value.__class__ in passthrough else hook(value, other)
    kinds = " or ".join(sorted(_kind(member) for member in passthrough - {AbsentType}))

    def structure_scalars(value: Any, _: Any) -> Any:
        if value.__class__ in passthrough:
            return value
        raise TypeError(f"expected {kinds}, got {_kind(value.__class__)}")

    return structure_scalars


def _unstructure_union(tp: Any, conv: Converter) -> Callable[[Any], Any]:
    passthrough, other = _split_union(tp)
    hook = identity if other is None else conv.get_unstructure_hook(other)
    if hook is identity:
        return identity  # so cattrs' generated functions inline the field
    return lambda value: value if value.__class__ in passthrough else hook(value)


def _structure_list_as_tuple(tp: Any, conv: Converter) -> Callable[[Any, Any], Any]:
    # cattrs' tuple hook takes any iterable: a string would become a tuple of letters.
    items = homogenous_tuple_structure_factory(tp, conv)

    def structure_list(value: Any, _: Any) -> Any:
        if value.__class__ is not list:
            raise TypeError(f"expected a list, got {_kind(value.__class__)}")
        return items(value, tp)

    return structure_list


def _structure_record(cls: Any, conv: Converter) -> Callable[[Any, Any], Any]:
    extra_name = _extra_name(cls)
    assert extra_name is not None
    known = frozenset(field.name for field in attrs.fields(cls) if field.name != extra_name)
    # The extra field is filled from the unknown keys, never from a key named like it.
    omit_extra: dict[str, Any] = {extra_name: override(omit=True)}
    fields = make_dict_structure_fn(cls, conv, **omit_extra)

    def structure_record(value: Any, _: Any) -> Any:
        if value.__class__ is not dict:
            raise TypeError(f"expected a JSON object, got {_kind(value.__class__)}")
        record = fields(value, cls)
        if known.issuperset(value):
            return record
        # Copied: the record must not share state with the caller's input.
        extra = {key: copy.deepcopy(item) for key, item in value.items() if key not in known}
        return attrs.evolve(record, **{extra_name: FrozenExtra(extra)})

    return structure_record


def _unstructure_record(cls: Any, conv: Converter) -> Callable[[Any], Any]:
    extra_name = _extra_name(cls)
    assert extra_name is not None
    # Optional fields default to ABSENT, so "omit if default" leaves absent keys out.
    omit_extra: dict[str, Any] = {extra_name: override(omit=True)}
    fields = make_dict_unstructure_fn(cls, conv, _cattrs_omit_if_default=True, **omit_extra)
    get_extra = attrgetter(extra_name)

    def unstructure_record(record: Any) -> dict[str, Any]:
        result: dict[str, Any] = fields(record)
        for key, item in get_extra(record).items():
            result[key] = copy.deepcopy(item)
        return result

    return unstructure_record


def _build_converter() -> OrjsonConverter:
    conv = make_converter(detailed_validation=True, forbid_extra_keys=False)
    for cls in (int, float, str, bool):
        conv.register_structure_hook(cls, _strict(cls))
    conv.register_structure_hook_func(_is_record_id, _structure_record_id)
    conv.register_structure_hook(datetime, _structure_timestamp)
    conv.register_unstructure_hook(datetime, _unstructure_timestamp)
    conv.register_structure_hook(date, _structure_close_date)
    conv.register_unstructure_hook(date, _format_close_date)
    # Registered after the preconf union passthrough, so they win over it (it lets a
    # bool through where an int goes).
    conv.register_structure_hook_factory(_is_union, _structure_union)
    conv.register_unstructure_hook_factory(_is_union, _unstructure_union)
    conv.register_structure_hook_factory(_is_list_tuple, _structure_list_as_tuple)
    conv.register_structure_hook_factory(_is_record_class, _structure_record)
    conv.register_unstructure_hook_factory(_is_record_class, _unstructure_record)
    return conv


converter: Final[OrjsonConverter] = _build_converter()
"""The package's converter: strict, records as Copper's JSON, detailed validation."""


# --- Errors ----------------------------------------------------------------------


def _leaf_errors(exc: BaseException, path: str) -> list[tuple[str, BaseException]]:
    """Each innermost error of a cattrs validation error, with its field path."""
    if isinstance(exc, ClassValidationError):
        with_notes, others = exc.group_exceptions()
        steps = [(sub, f"{path}.{note.name}" if path else note.name) for sub, note in with_notes]
    elif isinstance(exc, IterableValidationError):
        items, others = exc.group_exceptions()
        steps = [(sub, f"{path}[{note.index}]") for sub, note in items]
    else:
        return [(path, exc)]
    steps += [(sub, path) for sub in others]
    return [leaf for sub, where in steps for leaf in _leaf_errors(sub, where)]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return "required field is missing"
    return str(exc) or type(exc).__name__


def _readable_id(data: object) -> int | None:
    value = data.get("id") if isinstance(data, dict) else None
    return value if value.__class__ is int and value > 0 else None


def record_error(
    data: object, exc: BaseException, *, context: Mapping[str, Any] | None = None
) -> RecordError:
    """The RecordError for ``data``, which structuring refused with ``exc``.

    Its ``path`` names the first bad field (e.g.
    ``"custom_fields[2].custom_field_definition_id"``; ``""`` when ``data`` is not
    an object), its ``record_id`` is ``data["id"]`` when that is a valid id. When
    several fields are bad, ``context["paths"]`` lists them all in field order.
    """
    leaves = _leaf_errors(exc, "")
    path, leaf = leaves[0]
    details = dict(context or {})
    if len(leaves) > 1:
        details["paths"] = [where for where, _ in leaves]
    return RecordError(path, _reason(leaf), record_id=_readable_id(data), context=details)


def structure(data: object, cls: type[T]) -> T:
    """Structure ``data`` as ``cls``; raises RecordError naming the bad field path."""
    try:
        return converter.structure(data, cls)
    except REFUSALS as exc:
        raise record_error(data, exc) from exc
