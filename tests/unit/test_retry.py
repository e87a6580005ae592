"""RetryPolicy: which failures retry, the full-jitter schedule, Retry-After, the deadline."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copper_async._retry import Failure, GiveUp, Retry, RetryPolicy
from copper_async.exceptions import InvalidOptionError

RETRYABLE = {
    Failure.RATE_LIMITED,
    Failure.SERVER_ERROR,
    Failure.TIMEOUT,
    Failure.CONNECTION,
    Failure.MALFORMED_BODY,
}


def test_which_failures_retry() -> None:
    assert {failure for failure in Failure if failure.retryable} == RETRYABLE


@pytest.mark.parametrize(
    "failure",
    [
        Failure.AUTHENTICATION,
        Failure.INVALID_REQUEST,
        Failure.UNEXPECTED_BODY,
        Failure.TOO_LARGE,
    ],
)
def test_permanent_failures_give_up_at_once(failure: Failure) -> None:
    decision = RetryPolicy().decide(failure, attempt=1, elapsed=0.0, jitter=0.5)
    assert isinstance(decision, GiveUp)
    assert "not retryable" in decision.reason


def test_backoff_ceiling_doubles_up_to_the_maximum() -> None:
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=3.0)
    assert [policy.backoff_ceiling(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert policy.backoff_ceiling(10_000) == 3.0


def test_backoff_is_full_jitter_placed_by_the_given_draw() -> None:
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=30.0)
    for n in range(1, 6):
        for draw in (0.0, 0.25, 0.999):
            assert policy.backoff(n, draw) == draw * min(30.0, 2.0 ** (n - 1))


def test_a_draw_out_of_range_still_keeps_the_backoff_in_bounds() -> None:
    policy = RetryPolicy(initial_backoff=2.0, max_backoff=2.0)
    assert policy.backoff(1, 7.5) == 2.0
    assert policy.backoff(1, -1.0) == 0.0
    assert policy.backoff(1, float("nan")) == 0.0


def test_decide_places_the_backoff_with_the_jitter_it_is_given() -> None:
    policy = RetryPolicy(initial_backoff=4.0, max_backoff=4.0)
    low = policy.decide(Failure.TIMEOUT, attempt=1, elapsed=0, jitter=0.125)
    high = policy.decide(Failure.TIMEOUT, attempt=1, elapsed=0, jitter=0.75)
    assert (low, high) == (Retry(0.5), Retry(3.0))


def test_backoff_spreads_over_the_whole_range() -> None:
    policy = RetryPolicy(initial_backoff=8.0, max_backoff=8.0)
    rng = random.Random(1)
    delays = [policy.backoff(1, rng.random()) for _ in range(2000)]
    assert min(delays) < 0.1
    assert max(delays) > 7.9
    assert 3.5 < sum(delays) / len(delays) < 4.5


def test_retry_after_replaces_the_backoff_and_a_longer_one_gives_up() -> None:
    policy = RetryPolicy(max_retry_after=10.0)
    failure = Failure.RATE_LIMITED
    assert policy.decide(failure, attempt=1, elapsed=0, retry_after=7.0, jitter=0.5) == Retry(7.0)
    assert policy.decide(failure, attempt=1, elapsed=0, retry_after=10.0, jitter=0.5) == Retry(10.0)
    assert policy.decide(failure, attempt=1, elapsed=0, retry_after=0.0, jitter=0.5) == Retry(0.0)
    # Never shortened: sending before the server allows spends a request it refuses.
    decision = policy.decide(
        Failure.SERVER_ERROR, attempt=1, elapsed=0, retry_after=500.0, jitter=0.5
    )
    assert decision == GiveUp(
        "the server asked to wait 500s (Retry-After), more than max_retry_after=10s",
        retry_after=500.0,
    )


def test_a_wait_past_the_deadline_gives_up() -> None:
    policy = RetryPolicy(deadline=60.0, max_retry_after=120.0)
    decision = policy.decide(
        Failure.RATE_LIMITED, attempt=1, elapsed=50.0, retry_after=11.0, jitter=0.5
    )
    assert isinstance(decision, GiveUp)
    assert "11s (Retry-After)" in decision.reason
    assert "60s deadline (10.000s left)" in decision.reason
    assert (decision.retry_after, decision.deadline_reached) == (11.0, True)
    # A wait ending exactly at the deadline leaves no time to send: not taken either.
    at_deadline = policy.decide(
        Failure.RATE_LIMITED, attempt=1, elapsed=50.0, retry_after=10.0, jitter=0.5
    )
    assert isinstance(at_deadline, GiveUp)
    assert (at_deadline.retry_after, at_deadline.deadline_reached) == (10.0, True)
    ok = policy.decide(Failure.RATE_LIMITED, attempt=1, elapsed=50.0, retry_after=9.5, jitter=0.5)
    assert ok == Retry(9.5)
    backoff = RetryPolicy(deadline=60.0, initial_backoff=5.0, max_backoff=5.0)
    decision = backoff.decide(Failure.TIMEOUT, attempt=1, elapsed=59.999, jitter=0.5)
    assert isinstance(decision, GiveUp)
    assert (decision.retry_after, decision.deadline_reached) == (None, True)
    assert "backoff" in decision.reason


def test_running_out_of_attempts_is_not_blamed_on_retry_after() -> None:
    decision = RetryPolicy(attempts=2).decide(
        Failure.RATE_LIMITED, attempt=2, elapsed=0, retry_after=500.0, jitter=0.5
    )
    assert decision == GiveUp("no attempts left after 2")


def test_max_wait_is_the_longest_single_wait() -> None:
    assert RetryPolicy(max_backoff=30.0, max_retry_after=120.0).max_wait == 120.0
    assert RetryPolicy(max_backoff=300.0, max_retry_after=5.0).max_wait == 300.0


def test_attempts_bound_the_sends() -> None:
    policy = RetryPolicy(attempts=3)
    assert isinstance(policy.decide(Failure.SERVER_ERROR, attempt=2, elapsed=0, jitter=0.5), Retry)
    decision = policy.decide(Failure.SERVER_ERROR, attempt=3, elapsed=0, jitter=0.5)
    assert isinstance(decision, GiveUp)
    assert "attempts" in decision.reason
    assert isinstance(
        RetryPolicy.never().decide(Failure.TIMEOUT, attempt=1, elapsed=0, jitter=0.5), GiveUp
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("attempts", 0),
        ("attempts", 101),
        ("attempts", 2.0),
        ("attempts", True),
        ("initial_backoff", -1.0),
        ("initial_backoff", float("nan")),
        ("max_backoff", float("inf")),
        ("max_backoff", 0.1),  # below initial_backoff
        ("deadline", 0),
        ("deadline", -5),
        ("deadline", 10**6),
        ("max_retry_after", -1),
        ("max_retry_after", "10"),
    ],
)
def test_options_are_validated(option: str, value: object) -> None:
    with pytest.raises(InvalidOptionError) as info:
        RetryPolicy(**{option: value})  # type: ignore[arg-type]
    assert info.value.option == option


def test_policy_is_frozen() -> None:
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.attempts = 3  # type: ignore[misc]


policies = st.builds(
    RetryPolicy,
    attempts=st.integers(min_value=1, max_value=12),
    initial_backoff=st.floats(min_value=0.0, max_value=10.0),
    max_backoff=st.floats(min_value=10.0, max_value=120.0),
    deadline=st.floats(min_value=0.001, max_value=600.0),
    max_retry_after=st.floats(min_value=0.0, max_value=300.0),
)
jitters = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
retry_afters = st.none() | st.floats(min_value=0.0, max_value=1e6)


@given(
    policies,
    st.sampled_from(list(Failure)),
    st.integers(min_value=1, max_value=20),
    st.floats(min_value=0.0, max_value=700.0),
    jitters,
    retry_afters,
)
def test_every_decision_keeps_its_bounds(
    policy: RetryPolicy,
    failure: Failure,
    attempt: int,
    elapsed: float,
    jitter: float,
    retry_after: float | None,
) -> None:
    decision = policy.decide(
        failure, attempt=attempt, elapsed=elapsed, jitter=jitter, retry_after=retry_after
    )
    if isinstance(decision, GiveUp):
        if decision.retry_after is not None:
            # Given up because of the Retry-After, never for a shorter wait than asked.
            assert decision.retry_after == retry_after
            assert retry_after > policy.max_retry_after or elapsed + retry_after >= policy.deadline
        return
    assert failure.retryable
    assert attempt < policy.attempts
    assert decision.delay >= 0
    assert elapsed + decision.delay < policy.deadline
    if retry_after is None:
        assert decision.delay <= policy.backoff_ceiling(attempt)
    else:
        assert decision.delay == retry_after <= policy.max_retry_after


@given(
    policies,
    st.lists(
        st.tuples(st.sampled_from(sorted(RETRYABLE, key=str)), retry_afters),
        min_size=13,
        max_size=13,
    ),
    st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=13, max_size=13),
    st.lists(jitters, min_size=13, max_size=13),
)
def test_a_run_of_failures_respects_attempts_and_deadline(
    policy: RetryPolicy,
    failures: list[tuple[Failure, float | None]],
    request_times: list[float],
    draws: list[float],
) -> None:
    """Simulate a request failing over and over: sends and waits stay in budget."""
    elapsed = 0.0
    sends = 0
    for (failure, retry_after), request_time, jitter in zip(
        failures, request_times, draws, strict=True
    ):
        sends += 1
        elapsed += request_time
        decision = policy.decide(
            failure, attempt=sends, elapsed=elapsed, jitter=jitter, retry_after=retry_after
        )
        if isinstance(decision, GiveUp):
            break
        elapsed += decision.delay
        # never sleep past the deadline
        assert elapsed <= policy.deadline
    else:
        pytest.fail("the policy never gave up")
    assert 1 <= sends <= policy.attempts
