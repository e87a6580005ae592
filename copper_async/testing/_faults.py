"""Seeded decisions of the fake server's real-world play: faults, 429 bursts,
latency and drift.

Pure code, no I/O and no clock: :class:`FaultPlan` draws, request by request,
what the server should do, and the same seed and rates give the same sequence.
Faults, latency and drift draw from three separate generators, so turning
latency on does not change which requests fail.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Final, Literal

import attrs

__all__ = ["FAULT_KINDS", "DriftPlan", "Fault", "FaultPlan"]

#: Every fault the server can inject, in the order the draw tries them.
FAULT_KINDS: Final = ("500", "502", "503", "reset", "stall", "truncated", "non_json")

#: What one request gets: a kind of :data:`FAULT_KINDS`, ``"429"`` (a burst) or None.
Fault = Literal["429", "500", "502", "503", "reset", "stall", "truncated", "non_json"]


@attrs.frozen
class DriftPlan:
    """How many records to insert, delete and modify before one answer."""

    inserts: int = 0
    deletes: int = 0
    modifies: int = 0

    def __bool__(self) -> bool:
        return bool(self.inserts or self.deletes or self.modifies)


_NO_DRIFT: Final = DriftPlan()


def _count(rng: random.Random, expected: float) -> int:
    """``expected`` events on average: the whole part always, the fraction by chance."""
    whole = math.floor(expected)
    return whole + (1 if rng.random() < expected - whole else 0)


class FaultPlan:
    """Draws, request by request, which fault (if any) to play, how long to
    wait and what to drift.

    ``fault_rates`` maps kinds of :data:`FAULT_KINDS` to their chance per
    request (they must add up to at most 1); a burst of ``burst_429_length``
    consecutive 429s starts with chance ``burst_429_rate``, and no other fault
    is drawn while one lasts. Latency is uniform in ``latency +- jitter``
    (never below 0). Drift rates are expected edits per unit (a request, or a
    second: see :meth:`next_drift`). Rates are assumed valid (the server's
    options validate them).
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        fault_rates: Mapping[str, float] | None = None,
        burst_429_rate: float = 0.0,
        burst_429_length: int = 3,
        latency: float = 0.0,
        latency_jitter: float = 0.0,
        drift_insert_rate: float = 0.0,
        drift_delete_rate: float = 0.0,
        drift_modify_rate: float = 0.0,
    ) -> None:
        self._faults = random.Random(f"faults/{seed}")
        self._latency = random.Random(f"latency/{seed}")
        self._drift = random.Random(f"drift/{seed}")
        rates = dict(fault_rates or {})
        # Zero rates are dropped, so the draw loop only walks live kinds.
        self._fault_table: tuple[tuple[Fault, float], ...] = tuple(
            (kind, rates[kind]) for kind in FAULT_KINDS if rates.get(kind, 0.0) > 0
        )
        self._burst_rate = burst_429_rate
        self._burst_length = burst_429_length
        self._latency_base = latency
        self._jitter = latency_jitter
        self._drift_rates = (drift_insert_rate, drift_delete_rate, drift_modify_rate)
        self._burst_left = 0

    @property
    def drift_rng(self) -> random.Random:
        """The generator the dataset's drift edits draw from (which record, what change)."""
        return self._drift

    def next_fault(self) -> Fault | None:
        """The fault for the next request, or None to answer normally."""
        if self._burst_left:
            self._burst_left -= 1
            return "429"
        if self._burst_rate and self._faults.random() < self._burst_rate:
            self._burst_left = self._burst_length - 1
            return "429"
        if not self._fault_table:
            return None
        draw = self._faults.random()
        for kind, rate in self._fault_table:
            if draw < rate:
                return kind
            draw -= rate
        return None

    def next_latency(self) -> float:
        """Seconds to wait before answering: uniform in latency +- jitter, at least 0."""
        if not self._jitter:
            return self._latency_base
        spread = self._latency.uniform(-self._jitter, self._jitter)
        return max(self._latency_base + spread, 0.0)

    def next_drift(self, units: float = 1.0) -> DriftPlan:
        """The edits to make before the next answer, ``units`` requests (or
        seconds) after the last draw."""
        inserts, deletes, modifies = self._drift_rates
        if not (inserts or deletes or modifies) or units <= 0:
            return _NO_DRIFT
        rng = self._drift
        return DriftPlan(
            inserts=_count(rng, inserts * units),
            deletes=_count(rng, deletes * units),
            modifies=_count(rng, modifies * units),
        )
