"""When to retry a request, and how long to wait first: pure decisions, no I/O.

:class:`RetryPolicy` is configuration plus one function,
:meth:`RetryPolicy.decide`, which maps a failed attempt (what failed, which
attempt, how long since the first send, the server's ``Retry-After``, a
uniform random draw for the jitter) to :class:`Retry` (wait this long) or
:class:`GiveUp`. The HTTP layer draws the jitter from its clock and does the
waiting on it; keeping the decision pure lets property tests check every
schedule without time passing or chance.
"""

from __future__ import annotations

import enum
import math

import attrs

from copper_async.exceptions import InvalidOptionError

__all__ = ["Decision", "Failure", "GiveUp", "Retry", "RetryPolicy"]

# 2**64 times any sane initial backoff is past every max_backoff; capping the
# exponent keeps the arithmetic finite for absurd attempt numbers.
_MAX_EXPONENT = 64


class Failure(enum.Enum):
    """What went wrong with one attempt."""

    RATE_LIMITED = "rate_limited"  # 429
    SERVER_ERROR = "server_error"  # 5xx
    TIMEOUT = "timeout"  # no answer in time
    CONNECTION = "connection"  # refused, reset, DNS, TLS, cut-off body
    MALFORMED_BODY = "malformed_body"  # 2xx whose body is truncated or not JSON
    UNEXPECTED_BODY = "unexpected_body"  # 2xx with valid JSON of the wrong shape
    TOO_LARGE = "too_large"  # 2xx body above max_response_bytes
    AUTHENTICATION = "authentication"  # 401, 403
    INVALID_REQUEST = "invalid_request"  # 400, 404, 422, other 4xx

    @property
    def retryable(self) -> bool:
        """Whether sending the same request again can succeed."""
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {
        Failure.RATE_LIMITED,
        Failure.SERVER_ERROR,
        Failure.TIMEOUT,
        Failure.CONNECTION,
        Failure.MALFORMED_BODY,
    }
)


@attrs.frozen
class Retry:
    """Send again after ``delay`` seconds."""

    delay: float


@attrs.frozen
class GiveUp:
    """Stop; ``reason`` says why (for logs and error messages).

    ``retry_after`` is the server's ``Retry-After`` when it was sent, so that
    a caller can schedule a later run; ``deadline_reached`` is True when the
    deadline left no time for the wait.
    """

    reason: str
    retry_after: float | None = None
    deadline_reached: bool = False


Decision = Retry | GiveUp


def _check_seconds(name: str, value: object, *, low: float, high: float, open_low: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidOptionError(name, f"must be a number of seconds, not {value!r}")
    if not math.isfinite(value):
        raise InvalidOptionError(name, f"must be finite, not {value!r}")
    if (value <= low if open_low else value < low) or value > high:
        bound = "above" if open_low else "at least"
        raise InvalidOptionError(name, f"must be {bound} {low} and at most {high}, not {value}")


def _check_attempts(_instance: object, _attribute: object, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOptionError("attempts", f"must be an integer, not {value!r}")
    if not 1 <= value <= 100:
        raise InvalidOptionError("attempts", f"must be between 1 and 100, not {value}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How often and how patiently a request is retried.

    - ``attempts``: sends in all, the first included (1 = never retry).
    - ``initial_backoff`` / ``max_backoff``: retry *n* (1-based) waits
      ``uniform(0, min(max_backoff, initial_backoff * 2**(n-1)))`` seconds,
      "full jitter", so that clients that failed together do not come back
      together.
    - ``deadline``: seconds from the first send within which the request
      ends: a wait that would end at or past it is not taken, and the client bounds
      each attempt and each wait for the limiter by what is left of it.
    - ``max_retry_after``: the longest ``Retry-After`` waited out. A server's
      ``Retry-After`` replaces the backoff; one longer than this, or ending
      past the deadline, is never shortened: the request gives up at once.
    - The jitter's randomness is not part of the policy: the client draws it
      from its clock (:meth:`~copper_async._clock.Clock.random`), so a clock
      with a seeded source makes every schedule reproducible.

    Retried: 429, 5xx, timeouts, connection errors and a 2xx whose body is
    truncated or not JSON. Never retried: 401/403, other 4xx, a body of the
    wrong shape or too large.
    """

    attempts: int = attrs.field(default=6, validator=_check_attempts)
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    deadline: float = 180.0
    max_retry_after: float = 120.0

    def __attrs_post_init__(self) -> None:
        _check_seconds("initial_backoff", self.initial_backoff, low=0, high=3600, open_low=False)
        _check_seconds("max_backoff", self.max_backoff, low=0, high=3600, open_low=False)
        if self.max_backoff < self.initial_backoff:
            raise InvalidOptionError("max_backoff", "must be at least initial_backoff")
        _check_seconds("deadline", self.deadline, low=0, high=86_400, open_low=True)
        _check_seconds("max_retry_after", self.max_retry_after, low=0, high=86_400, open_low=False)

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that sends each request once."""
        return cls(attempts=1)

    def backoff_ceiling(self, retry_number: int) -> float:
        """The upper bound of the jittered wait before retry ``retry_number`` (1-based)."""
        exponent = min(max(retry_number - 1, 0), _MAX_EXPONENT)
        return min(self.max_backoff, self.initial_backoff * 2.0**exponent)

    @property
    def max_wait(self) -> float:
        """The longest wait before one retry: a backoff or an honoured ``Retry-After``."""
        return max(self.max_backoff, self.max_retry_after)

    def backoff(self, retry_number: int, jitter: float) -> float:
        """The full-jitter wait before retry ``retry_number``: ``jitter`` (a
        uniform draw in ``[0, 1)``) times the ceiling."""
        ceiling = self.backoff_ceiling(retry_number)
        # A draw out of [0, 1] (a faulty random source, NaN) must not break the bounds.
        draw = jitter if 0.0 <= jitter <= 1.0 else 1.0 if jitter > 1.0 else 0.0
        return min(draw * ceiling, ceiling)

    def decide(
        self,
        failure: Failure,
        *,
        attempt: int,
        elapsed: float,
        jitter: float,
        retry_after: float | None = None,
    ) -> Decision:
        """Retry after a failed ``attempt`` (1-based), or give up.

        ``elapsed`` is the time since the first send; ``jitter`` a uniform
        draw in ``[0, 1)`` that places the backoff in its range;
        ``retry_after`` the server's ``Retry-After`` in seconds, if it sent one.
        """
        if not failure.retryable:
            return GiveUp(f"{failure.value} is not retryable")
        asked: float | None = None
        if retry_after is not None and math.isfinite(retry_after):
            asked = max(retry_after, 0.0)
        if attempt >= self.attempts:
            return GiveUp(f"no attempts left after {attempt}")
        if asked is None:
            delay = self.backoff(attempt, jitter)
        elif asked > self.max_retry_after:
            # Sending sooner than the server asked spends a request it will refuse.
            return GiveUp(
                f"the server asked to wait {asked:g}s (Retry-After), "
                f"more than max_retry_after={self.max_retry_after:g}s",
                retry_after=asked,
            )
        else:
            delay = asked
        # A wait ending at the deadline leaves no time to send: the client would
        # sleep it out only to give up.
        if elapsed + delay >= self.deadline:
            left = max(self.deadline - elapsed, 0.0)
            wait = (
                f"the server asked to wait {delay:g}s (Retry-After), which would pass"
                if asked is not None
                else f"a backoff of {delay:.3f}s would pass"
            )
            return GiveUp(
                f"{wait} the {self.deadline:g}s deadline ({left:.3f}s left)",
                retry_after=asked,
                deadline_reached=True,
            )
        return Retry(delay)
