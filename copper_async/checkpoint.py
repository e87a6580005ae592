"""Export checkpoints: what a resumed export needs, written atomically.

A checkpoint holds the planner's state, how many bytes and records of the
output are committed, and a fingerprint of the job (filter, options, output
path and format) so that a resume of a different job is refused. It never
holds credentials: the client is not part of it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import orjson

from copper_async.exceptions import CheckpointError

__all__ = ["Checkpoint", "job_fingerprint", "load_checkpoint", "save_checkpoint"]

_VERSION = 1


@attrs.frozen(kw_only=True)
class Checkpoint:
    """One committed point of an export."""

    fingerprint: str
    job: Mapping[str, Any]
    committed_bytes: int
    records: int
    planner: Mapping[str, Any]
    stats: Mapping[str, Any] = attrs.Factory(dict)
    csv_columns: Sequence[str] | None = None
    complete: bool = False

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"version": _VERSION, **attrs.asdict(self, recurse=False)},
            option=orjson.OPT_SORT_KEYS,
        )


def job_fingerprint(job: Mapping[str, Any]) -> str:
    """A stable digest of what defines an export (filter, options, output)."""
    return hashlib.sha256(orjson.dumps(job, option=orjson.OPT_SORT_KEYS)).hexdigest()


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` so that ``path`` always holds a whole one.

    Temp file in the same folder, fsync, rename over the old one, fsync the
    folder: a crash at any moment leaves either the old or the new version.
    """
    folder = path.parent
    data = checkpoint.to_json()
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        raise CheckpointError(
            f"cannot write checkpoint {str(path)!r}: {error.strerror or error}"
        ) from error


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint, refusing anything damaged or of another version."""
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError as error:
        raise CheckpointError(f"no checkpoint at {str(path)!r} to resume from") from error
    except (OSError, orjson.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable: {error}") from error
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} has an unknown format")
    data.pop("version")
    try:
        return Checkpoint(**data)
    except TypeError as error:
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged: {error}") from error
