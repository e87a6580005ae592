"""Seeded decisions of the fake server's real-world play: faults, latency, 429
bursts and drift. Pure code: the same seed and options give the same sequence."""

from __future__ import annotations

import random
from collections.abc import Mapping

import attrs

__all__ = ["FAULT_KINDS", "DriftPlan", "FaultPlan"]

#: Every fault the server can inject.
FAULT_KINDS = ("500", "502", "503", "reset", "stall", "truncated", "non_json")


@attrs.frozen
class DriftPlan:
    """How many records to insert, delete and modify before one answer."""

    inserts: int = 0
    deletes: int = 0
    modifies: int = 0


def _count(rng: random.Random, rate: float) -> int:
    """``rate`` events on average: the whole part always, the fraction by chance."""
    whole = int(rate)
    return whole + (1 if rng.random() < rate - whole else 0)


class FaultPlan:
    """Draws, request by request, which fault (if any) to play."""

    def __init__(
        self,
        *,
        seed: int,
        fault_rates: Mapping[str, float],
        burst_429_rate: float = 0.0,
        burst_429_length: int = 3,
        latency: float = 0.0,
        latency_jitter: float = 0.0,
        drift_insert_rate: float = 0.0,
        drift_delete_rate: float = 0.0,
        drift_modify_rate: float = 0.0,
    ) -> None:
        self._faults = random.Random(seed)
        self._latency = random.Random(seed + 1)
        self._drift = random.Random(seed + 2)
        self.fault_rates = dict(fault_rates)
        self.burst_429_rate = burst_429_rate
        self.burst_429_length = burst_429_length
        self.latency = latency
        self.latency_jitter = latency_jitter
        self.drift_rates = (drift_insert_rate, drift_delete_rate, drift_modify_rate)
        self._burst_left = 0

    @property
    def drift_rng(self) -> random.Random:
        """The generator the dataset's drift edits draw from."""
        return self._drift

    def next_fault(self) -> str | None:
        """The fault for the next request: ``"429"``, a kind of :data:`FAULT_KINDS`, or None."""
        if self._burst_left:
            self._burst_left -= 1
            return "429"
        draw = self._faults.random()
        if self.burst_429_rate and draw < self.burst_429_rate:
            self._burst_left = self.burst_429_length - 1
            return "429"
        draw = self._faults.random()
        for kind in FAULT_KINDS:
            rate = self.fault_rates.get(kind, 0.0)
            if draw < rate:
                return kind
            draw -= rate
        return None

    def next_latency(self) -> float:
        """Seconds to wait before answering: uniform in latency +- jitter."""
        if not self.latency and not self.latency_jitter:
            return 0.0
        spread = self._latency.uniform(-self.latency_jitter, self.latency_jitter)
        return max(self.latency + spread, 0.0)

    def next_drift(self) -> DriftPlan:
        """The edits to make before the next answer."""
        inserts, deletes, modifies = self.drift_rates
        if not (inserts or deletes or modifies):
            return DriftPlan()
        rng = self._drift
        return DriftPlan(_count(rng, inserts), _count(rng, deletes), _count(rng, modifies))
