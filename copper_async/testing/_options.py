"""The fake server's options: what it accepts and how it misbehaves, validated."""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal

import attrs

from copper_async.exceptions import InvalidOptionError
from copper_async.testing._faults import FAULT_KINDS, FaultPlan

__all__ = [
    "CustomDates",
    "DriftUnit",
    "FakeServerOptions",
    "PastCap",
    "Ties",
    "TotalMode",
    "total_header",
]

PastCap = Literal["empty", "error"]
TotalMode = Literal["exact", "overcount", "capped", "absent"]
Ties = Literal["id", "per_query", "per_request"]
CustomDates = Literal["unix", "text"]
DriftUnit = Literal["request", "second"]

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


# -- option validation -------------------------------------------------------------


def _fail(attribute: attrs.Attribute[Any], reason: str) -> InvalidOptionError:
    return InvalidOptionError(attribute.name, reason)


def _real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(low: float, high: float) -> _Validator:
    """A finite number in [low, high]."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not _real(value) or not low <= value <= high:
            raise _fail(attribute, f"must be a number from {low} to {high}, not {value!r}")

    return check


def _integer(low: int, high: int) -> _Validator:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _fail(attribute, f"must be an integer from {low} to {high}, not {value!r}")

    return check


def _one_of(kind: Any) -> _Validator:
    """A validator admitting the values of the ``Literal`` type ``kind``."""
    allowed: tuple[str, ...] = typing.get_args(kind)

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in allowed:
            raise _fail(attribute, f"must be one of {', '.join(allowed)}, not {value!r}")

    return check


def _header_text(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value or value != value.strip() or not value.isprintable():
        raise _fail(attribute, "must be a non-empty printable string without outer spaces")


def _boolean(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise _fail(attribute, f"must be True or False, not {value!r}")


def _rate_limit(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or len(value) != 2:
        raise _fail(attribute, f"must be (max_requests, period_seconds) or None, not {value!r}")
    count, period = value
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise _fail(attribute, f"max_requests must be an integer >= 1, not {count!r}")
    if not _real(period) or period <= 0:
        raise _fail(attribute, f"the period must be a number of seconds > 0, not {period!r}")


def _fault_rates(value: Any) -> Mapping[str, float]:
    """A read-only copy, checked: known kinds, rates in [0, 1] adding up to at most 1."""
    if not isinstance(value, Mapping):
        raise InvalidOptionError("fault_rates", f"must be a mapping of kind to rate: {value!r}")
    for kind, rate in value.items():
        if kind not in FAULT_KINDS:
            raise InvalidOptionError(
                "fault_rates", f"unknown fault {kind!r} (known: {', '.join(FAULT_KINDS)})"
            )
        if not _real(rate) or not 0 <= rate <= 1:
            raise InvalidOptionError(
                "fault_rates", f"the rate of {kind!r} must be from 0 to 1, not {rate!r}"
            )
    if sum(value.values()) > 1 + 1e-9:
        raise InvalidOptionError("fault_rates", "the rates add up to more than 1")
    return MappingProxyType(dict(value))


# Generous bounds: wide enough for any test, narrow enough to catch unit slips.
_MAX_SECONDS = 3600.0
_MAX_DRIFT = 1000.0


@attrs.frozen(kw_only=True)
class FakeServerOptions:
    """How the fake server behaves. Every real-world play is off by default.

    - ``access_token`` / ``user_email``: the credentials it accepts.
    - ``cap``: no record past the first ``cap`` of a sorted result is ever
      served; a page that starts at or past it is empty (``past_cap="empty"``)
      or a 422 (``"error"``); a page straddling it is cut at it.
    - ``total_mode``: ``X-PW-TOTAL`` is the exact match count, an
      ``"overcount"`` (plus 1-10%, fixed for a count and seed),
      ``"capped"`` at ``cap``, or ``"absent"``.
    - ``ties``: records with equal sort values in id order, or
      ``"per_query"``: in an order of each query's own (the same for the same
      query, another for a narrower one), as an API may break ties, or
      ``"per_request"``: in an order drawn anew for every request, even of
      the same query (a database without a stable tie-break), so that a tie
      straddling a page edge can show a record on both pages and hide
      another; drawn from ``seed`` and the request's number, so repeatable.
    - ``custom_dates``: how records carry their Date custom fields: Unix
      seconds (``"unix"``, as Copper's example shows) or ``"text"``,
      ``M/D/YYYY`` (as its docs say); filters take seconds either way.
    - ``rate_limit``: ``(max_requests, period_seconds)`` per access token on a
      rolling window (e.g. ``(180, 60.0)``), counted at arrival; over it a 429
      (with ``Retry-After``, whole seconds until a slot frees, when
      ``retry_after``), and the refused request takes no slot.
    - ``fault_rates``: chance per request of each kind of
      :data:`~copper_async.testing._faults.FAULT_KINDS` (500, 502, 503, reset,
      stall, truncated, non_json), adding up to at most 1; a stall sleeps
      ``stall_seconds`` then answers (too late for the client).
    - ``burst_429_rate``: chance per request that a burst of
      ``burst_429_length`` consecutive 429s starts.
    - ``latency`` +- ``latency_jitter`` (uniform) seconds before each answer.
    - ``drift_*_rate``: records inserted, deleted and modified, on average
      per served search (``drift_per="request"``) or per second of serving
      (``"second"``), before the answer.
    - ``seed``: the same seed gives the same faults, latencies, drift and
      overcounts. It seeds only this play, never the records (the command's
      ``--play-seed``, which defaults to its records' ``--seed``).
    """

    access_token: str = attrs.field(default="fake-token", validator=_header_text)
    user_email: str = attrs.field(default="fake@example.com", validator=_header_text)
    cap: int = attrs.field(default=100_000, validator=_integer(1, 2**31))
    past_cap: PastCap = attrs.field(default="empty", validator=_one_of(PastCap))
    total_mode: TotalMode = attrs.field(default="exact", validator=_one_of(TotalMode))
    ties: Ties = attrs.field(default="id", validator=_one_of(Ties))
    custom_dates: CustomDates = attrs.field(default="unix", validator=_one_of(CustomDates))
    rate_limit: tuple[int, float] | None = attrs.field(default=None, validator=_rate_limit)
    retry_after: bool = attrs.field(default=False, validator=_boolean)
    fault_rates: Mapping[str, float] = attrs.field(factory=dict, converter=_fault_rates, hash=False)
    burst_429_rate: float = attrs.field(default=0.0, validator=_number(0, 1))
    burst_429_length: int = attrs.field(default=3, validator=_integer(1, 10_000))
    stall_seconds: float = attrs.field(default=60.0, validator=_number(0, _MAX_SECONDS))
    latency: float = attrs.field(default=0.0, validator=_number(0, _MAX_SECONDS))
    latency_jitter: float = attrs.field(default=0.0, validator=_number(0, _MAX_SECONDS))
    drift_insert_rate: float = attrs.field(default=0.0, validator=_number(0, _MAX_DRIFT))
    drift_delete_rate: float = attrs.field(default=0.0, validator=_number(0, _MAX_DRIFT))
    drift_modify_rate: float = attrs.field(default=0.0, validator=_number(0, _MAX_DRIFT))
    drift_per: DriftUnit = attrs.field(default="request", validator=_one_of(DriftUnit))
    seed: int = attrs.field(default=0, validator=_integer(-(2**63), 2**63))

    def plan(self) -> FaultPlan:
        """A fresh :class:`FaultPlan` for these options (its sequences start over)."""
        return FaultPlan(
            seed=self.seed,
            fault_rates=self.fault_rates,
            burst_429_rate=self.burst_429_rate,
            burst_429_length=self.burst_429_length,
            latency=self.latency,
            latency_jitter=self.latency_jitter,
            drift_insert_rate=self.drift_insert_rate,
            drift_delete_rate=self.drift_delete_rate,
            drift_modify_rate=self.drift_modify_rate,
        )


def total_header(matches: int, options: FakeServerOptions) -> str | None:
    """The ``X-PW-TOTAL`` value for ``matches`` records under ``options.total_mode``."""
    mode = options.total_mode
    if mode == "exact":
        return str(matches)
    if mode == "capped":
        return str(min(matches, options.cap))
    if mode == "overcount":
        # 1% to 10% more, fixed for a (count, seed): repeated page-1 reads agree.
        percent = 1 + (matches * 2_654_435_761 + options.seed) % 10
        return str(matches + math.ceil(matches * percent / 100))
    return None
