"""Shared test configuration.

Fixtures that belong to one area live in that area's test module; only what
several modules use is here.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# A shell that starts the suite in the background without job control makes
# it ignore SIGINT, and an ignored signal stays ignored in every process it
# starts: the CLI's Ctrl-C tests would then see a run that cannot be
# interrupted. The tests' own processes take Ctrl-C as a terminal sends it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# CI machines are small and shared: keep property tests deterministic and
# free of deadline flakiness.
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(autouse=True)
def _own_loop_for_sync_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """Give sync tests a loop that is closed after them.

    looptime's hook calls ``get_event_loop()`` in every test, which in a sync
    test creates a loop nobody closes; the next async test then trips
    ``-W error`` on its ResourceWarning.
    """
    if inspect.iscoroutinefunction(request.function):
        yield
        return
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


@pytest.fixture
def cli_logging() -> Iterator[None]:
    """The command configures the package logger: put it back for the next tests."""
    logger = logging.getLogger("copper_async")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
