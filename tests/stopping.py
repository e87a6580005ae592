"""Stopping a run at a chosen page, from its progress callback, as a crash or Ctrl-C would."""

from __future__ import annotations

from typing import Any


class Stop(Exception):
    """Raised from a run's progress callback: the run stops there, as a crash would."""


def stop_after(pages: int, error: type[BaseException] = Stop) -> Any:
    """A progress callback that raises ``error`` after the run's ``pages``-th page."""
    seen = 0

    def progress(_stats: Any, _written: int) -> None:
        nonlocal seen
        seen += 1
        if seen == pages:
            raise error

    return progress
