"""The tap's config for a fake server, shared by the tap's tests."""

from __future__ import annotations

from typing import Any

from copper_async.testing import FakeCopperServer

TOKEN, EMAIL = "fake-token", "fake@example.com"  # what FakeCopperServer accepts by default


def fake_tap_config(server: FakeCopperServer, **settings: Any) -> dict[str, Any]:
    """A tap config reading ``server`` unthrottled; ``settings`` add to it."""
    return {
        "access_token": TOKEN,
        "user_email": EMAIL,
        "base_url": server.url,
        "rate_limit": "none",
        **settings,
    }
