"""Shared test configuration.

Fixtures that belong to one area live in that area's test module; only what
several modules use is here.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# CI machines are small and shared: keep property tests deterministic and
# free of deadline flakiness.
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")
