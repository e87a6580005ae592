"""FaultPlan: the fake server's seeded faults, 429 bursts, latency and drift draws."""

from __future__ import annotations

import itertools
import statistics
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copper_async.testing._faults import FAULT_KINDS, DriftPlan, FaultPlan

SEEDS = st.integers(min_value=-(2**40), max_value=2**40)
RATES = st.fixed_dictionaries(
    {},
    optional={
        kind: st.floats(min_value=0.0, max_value=1 / len(FAULT_KINDS)) for kind in FAULT_KINDS
    },
)


def faults(plan: FaultPlan, n: int) -> list[str | None]:
    return [plan.next_fault() for _ in range(n)]


def runs(sequence: list[str | None], value: str) -> list[int]:
    """Lengths of the maximal runs of ``value``."""
    return [len(list(group)) for key, group in itertools.groupby(sequence) if key == value]


# -- reproducibility -------------------------------------------------------------------


@given(seed=SEEDS, rates=RATES, burst=st.floats(0, 0.5), length=st.integers(1, 5))
def test_the_same_seed_gives_the_same_sequences(
    seed: int, rates: dict[str, float], burst: float, length: int
) -> None:
    options: dict[str, Any] = {
        "seed": seed,
        "fault_rates": rates,
        "burst_429_rate": burst,
        "burst_429_length": length,
        "latency": 0.15,
        "latency_jitter": 0.05,
        "drift_insert_rate": 0.7,
        "drift_delete_rate": 0.2,
        "drift_modify_rate": 1.5,
    }
    first, second = FaultPlan(**options), FaultPlan(**options)
    for _ in range(50):
        assert first.next_fault() == second.next_fault()
        assert first.next_latency() == second.next_latency()
        assert first.next_drift() == second.next_drift()
    assert first.drift_rng.random() == second.drift_rng.random()


def test_different_seeds_give_different_sequences() -> None:
    rates = {"500": 0.3, "reset": 0.3}
    sequences = {tuple(faults(FaultPlan(seed=seed, fault_rates=rates), 100)) for seed in range(5)}
    assert len(sequences) == 5


@given(seed=SEEDS)
def test_latency_and_drift_do_not_shift_the_fault_sequence(seed: int) -> None:
    rates = {"500": 0.2, "503": 0.1, "stall": 0.1}
    plain = FaultPlan(seed=seed, fault_rates=rates, burst_429_rate=0.1)
    busy = FaultPlan(
        seed=seed,
        fault_rates=rates,
        burst_429_rate=0.1,
        latency=0.2,
        latency_jitter=0.1,
        drift_insert_rate=2.0,
    )
    for _ in range(60):
        busy.next_latency()
        busy.next_drift()
        assert plain.next_fault() == busy.next_fault()


# -- faults ------------------------------------------------------------------------------


def test_no_rates_means_no_faults() -> None:
    assert set(faults(FaultPlan(seed=3), 1000)) == {None}
    assert set(faults(FaultPlan(seed=3, fault_rates=dict.fromkeys(FAULT_KINDS, 0.0)), 500)) == {
        None
    }


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_a_rate_of_one_always_plays_that_fault(kind: str) -> None:
    assert set(faults(FaultPlan(seed=1, fault_rates={kind: 1.0}), 200)) == {kind}


def test_faults_come_at_their_rates() -> None:
    rates = {"500": 0.1, "502": 0.05, "503": 0.05, "reset": 0.02, "truncated": 0.08}
    drawn = faults(FaultPlan(seed=42, fault_rates=rates), 40_000)
    for kind, rate in rates.items():
        assert drawn.count(kind) / len(drawn) == pytest.approx(rate, abs=0.01)
    assert drawn.count(None) / len(drawn) == pytest.approx(0.7, abs=0.01)
    assert {"stall", "non_json"}.isdisjoint(drawn)


# -- 429 bursts ------------------------------------------------------------------------


@given(seed=SEEDS, length=st.integers(1, 6), rate=st.floats(0.01, 0.5))
def test_429s_come_in_whole_bursts(seed: int, length: int, rate: float) -> None:
    plan = FaultPlan(seed=seed, burst_429_rate=rate, burst_429_length=length)
    # A run can hold several bursts back to back, never a part of one (the
    # last burst may still be going when the sample ends).
    drawn = faults(plan, 300)
    while drawn and drawn[-1] == "429":
        drawn.pop()
    assert all(run % length == 0 for run in runs(drawn, "429"))
    assert set(drawn) <= {"429", None}


def test_no_other_fault_is_drawn_during_a_burst() -> None:
    plan = FaultPlan(seed=9, fault_rates={"500": 1.0}, burst_429_rate=0.2, burst_429_length=4)
    drawn = faults(plan, 2000)
    assert set(drawn) == {"429", "500"}
    full = runs(drawn[: max(i for i, f in enumerate(drawn) if f == "500") + 1], "429")
    assert full
    assert all(run % 4 == 0 for run in full)
    # Bursts start at about their rate (each start skips the fault draw).
    starts = sum(run // 4 for run in runs(drawn, "429"))
    assert starts / (drawn.count("500") + starts) == pytest.approx(0.2, abs=0.03)


def test_a_burst_rate_of_one_is_all_429s() -> None:
    assert set(faults(FaultPlan(seed=0, burst_429_rate=1.0, burst_429_length=2), 50)) == {"429"}


# -- latency -----------------------------------------------------------------------------


def test_latency_without_jitter_is_constant() -> None:
    plan = FaultPlan(latency=0.15)
    assert {plan.next_latency() for _ in range(20)} == {0.15}
    assert FaultPlan().next_latency() == 0.0


@given(seed=SEEDS, base=st.floats(0, 2), jitter=st.floats(0.001, 1))
def test_latency_stays_within_its_jitter_and_never_below_zero(
    seed: int, base: float, jitter: float
) -> None:
    plan = FaultPlan(seed=seed, latency=base, latency_jitter=jitter)
    for _ in range(30):
        delay = plan.next_latency()
        assert delay >= 0.0
        assert base - jitter - 1e-9 <= delay <= base + jitter + 1e-9


def test_latency_is_uniform_around_its_mean() -> None:
    plan = FaultPlan(seed=5, latency=0.15, latency_jitter=0.05)
    delays = [plan.next_latency() for _ in range(20_000)]
    assert statistics.fmean(delays) == pytest.approx(0.15, abs=0.002)
    assert min(delays) < 0.102
    assert max(delays) > 0.198
    # Uniform: a quarter of the draws in each quarter of the range.
    assert sum(d < 0.125 for d in delays) / len(delays) == pytest.approx(0.25, abs=0.02)


# -- drift -------------------------------------------------------------------------------


def test_no_drift_rates_means_no_drift() -> None:
    plan = FaultPlan(seed=1)
    assert plan.next_drift() == DriftPlan()
    assert not plan.next_drift(units=100.0)


def test_drift_counts_average_their_rates() -> None:
    plan = FaultPlan(seed=2, drift_insert_rate=2.5, drift_delete_rate=0.1, drift_modify_rate=1.0)
    draws = [plan.next_drift() for _ in range(20_000)]
    assert {d.inserts for d in draws} == {2, 3}
    assert {d.modifies for d in draws} == {1}
    assert {d.deletes for d in draws} == {0, 1}
    assert statistics.fmean(d.inserts for d in draws) == pytest.approx(2.5, abs=0.03)
    assert statistics.fmean(d.deletes for d in draws) == pytest.approx(0.1, abs=0.01)


def test_drift_scales_with_the_units_elapsed() -> None:
    plan = FaultPlan(seed=4, drift_insert_rate=2.0, drift_modify_rate=0.5)
    assert plan.next_drift(units=10.0) == DriftPlan(inserts=20, deletes=0, modifies=5)
    assert plan.next_drift(units=0.0) == DriftPlan()
    assert bool(DriftPlan(deletes=1))
