"""Export checkpoints: what a resumed export needs, written atomically.

A checkpoint holds the planner's state, how many bytes and records of the
output are committed, and a fingerprint of the job (filter, options, output
path and format, API root and account) so that a resume of a different job is
refused. It never holds credentials, nor the user email in clear (only its
SHA-256).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import orjson

from copper_async.exceptions import CheckpointError

__all__ = [
    "Checkpoint",
    "fsync_folder",
    "job_fingerprint",
    "load_checkpoint",
    "remove_stale_temp_files",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

_VERSION = 1
_TEMP_SUFFIX = ".tmp"


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
    #: The definition id of each named custom-field column (``--custom-field-names``):
    #: a resume keeps each column to its field, whatever was renamed since.
    csv_custom_columns: Mapping[str, str] | None = None
    complete: bool = False

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"version": _VERSION, **attrs.asdict(self, recurse=False)},
            option=orjson.OPT_SORT_KEYS,
        )


def job_fingerprint(job: Mapping[str, Any]) -> str:
    """A stable digest of what defines an export (filter, options, output)."""
    return hashlib.sha256(orjson.dumps(job, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_stale_temp_files(path: Path) -> list[Path]:
    """Delete the temp files a save of ``path`` left behind when killed mid-write.

    Only names :func:`save_checkpoint` makes for this very checkpoint match:
    the random part of a temp name never holds a dot, so ``.job.<random>.tmp``
    is never mistaken for a temp file of ``job.ckpt`` beside it.
    """
    pattern = re.compile(re.escape(_temp_prefix(path)) + r"[^.]+" + re.escape(_TEMP_SUFFIX))
    removed = []
    try:
        candidates = list(path.parent.iterdir())
    except OSError:
        return []
    for candidate in candidates:
        if pattern.fullmatch(candidate.name) and candidate.is_file():
            try:
                candidate.unlink()
            except OSError as error:
                logger.warning("cannot remove stale checkpoint temp file %s: %s", candidate, error)
                continue
            logger.info("removed stale checkpoint temp file %s", candidate)
            removed.append(candidate)
    return removed


def fsync_folder(folder: Path) -> None:
    """Make the names in ``folder`` (a file created or renamed) survive a power loss."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` so that ``path`` always holds a whole one.

    Temp file in the same folder, fsync, rename over the old one, fsync the
    folder: a crash at any moment leaves either the old or the new version.
    """
    folder = path.parent
    data = checkpoint.to_json()
    try:
        handle, temp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=_TEMP_SUFFIX, dir=folder)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        fsync_folder(folder)
    except OSError as error:
        raise CheckpointError(
            f"cannot write checkpoint {str(path)!r}: {error.strerror or error}"
        ) from error


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint, refusing anything damaged or of another version."""
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError as error:
        raise CheckpointError(
            f"no checkpoint at {str(path)!r} to resume from (an export stopped before "
            "its first committed page leaves none: run it again without --resume)"
        ) from error
    except (OSError, orjson.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable: {error}") from error
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} has an unknown format")
    data.pop("version")
    try:
        return Checkpoint(**data)
    except TypeError as error:
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged: {error}") from error
