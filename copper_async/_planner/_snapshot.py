"""The planner's state as plain JSON data, and back.

A snapshot is the planner's own state classes unstructured by one cattrs
converter, so a field added to a state class is saved and restored with no
list to keep in step. Pages in flight are not saved: a restored planner asks
for them again. The version is bumped whenever the layout changes; a snapshot
of another version is refused, as is damaged data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.orjson import make_converter
from cattrs.strategies import configure_tagged_union

from copper_async._planner._events import PlannerStats
from copper_async._planner._memory import SavedMemory
from copper_async._planner._reach import Reach
from copper_async._planner._state import (
    AtEdge,
    Cutting,
    Looking,
    Reading,
    Relooking,
    Stage,
    WindowState,
)
from copper_async._planner._totals import Totals
from copper_async._planner._windows import Bound
from copper_async.exceptions import CheckpointError

__all__ = ["VERSION", "Settings", "Snapshot", "dump", "load"]

# 3: the state classes themselves (2 listed fields by hand; 1 had no hot-second memory).
VERSION = 3


@attrs.frozen
class Settings:
    """What a planner was built with that decides its windows."""

    cap: int
    page_size: int
    split_fields: tuple[str, ...]
    root: tuple[Bound, ...]
    on_cap: Literal["error", "warn"]


@attrs.frozen
class Snapshot:
    version: int
    settings: Settings
    totals: Totals
    next_key: int
    windows: list[WindowState]  # in range order
    seen: SavedMemory | None  # None: left out, handed back as records on restore
    stats: PlannerStats
    # Absent from snapshots written before it: nothing served is known then.
    reach: Reach = attrs.Factory(Reach)


def _build_converter() -> cattrs.Converter:
    converter = make_converter()
    stages = (Looking, Cutting, AtEdge, Reading, Relooking)
    tags: dict[type, str] = {stage: stage.phase.value for stage in stages}
    configure_tagged_union(Stage, converter, tag_name="phase", tag_generator=tags.__getitem__)
    omit_issued = override(omit=True)
    converter.register_unstructure_hook(
        WindowState, make_dict_unstructure_fn(WindowState, converter, issued=omit_issued)
    )
    converter.register_structure_hook(
        WindowState, make_dict_structure_fn(WindowState, converter, issued=omit_issued)
    )
    return converter


_converter = _build_converter()


def dump(snapshot: Snapshot) -> dict[str, Any]:
    data: dict[str, Any] = _converter.unstructure(snapshot)
    return data


def load(data: Mapping[str, Any]) -> Snapshot:
    """The snapshot in ``data``; :class:`CheckpointError` when it is of another
    version or damaged."""
    version = data.get("version") if isinstance(data, Mapping) else None
    if isinstance(version, int) and not isinstance(version, bool) and version < VERSION:
        raise CheckpointError(
            f"the planner state was written by an older version of copper_async "
            f"(snapshot version {version}, this one reads {VERSION}): start the export over"
        )
    if version != VERSION:
        raise CheckpointError(f"unknown planner snapshot version {version!r}")
    try:
        return _converter.structure(data, Snapshot)
    except (cattrs.BaseValidationError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"planner snapshot is damaged: {error!r}") from error
