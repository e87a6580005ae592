"""Bulk export: a search written to a file, checkpointed, resumable.

:func:`run_export` streams one search into a JSON-lines or CSV file. With a
checkpoint path it records, after each committed page, the planner's state
and the committed length of the file (atomically). Resuming after any stop,
SIGKILL included, first cuts the file back to that length, then tells the
planner which records the file already holds, so the finished file has every
record exactly once.

One export runs at a time per checkpoint and per output: a second is
refused at once (:class:`~copper_async._lock.ExportBusyError`) and writes
nothing. A sort in the filter is refused: the search orders each window
itself, on the split field, to read past the search cap.

A checkpoint belongs to one job: the filter, the paging options, the output
path and format, the API root and the account (a SHA-256 of the user email,
never the email itself). A resume of anything else is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import attrs

from copper_async._checkpoint import (
    Checkpoint,
    job_fingerprint,
    load_checkpoint,
    remove_stale_temp_files,
    save_checkpoint,
)
from copper_async._clock import Clock, LoopClock
from copper_async._custom_fields import CustomFieldNames
from copper_async._engine import ResultPage, Search, check_no_sort, sort_in
from copper_async._lock import exclusive_lock, lock_path
from copper_async._options import SearchOptions
from copper_async._pages import PageSource
from copper_async._planner import Restored, WindowPlanner
from copper_async._resources import OPPORTUNITIES
from copper_async._stats import SearchStats, merge_stats
from copper_async._writers import (
    CsvWriter,
    ExportFormat,
    RecordWriter,
    open_writer,
    read_committed,
)
from copper_async.exceptions import CheckpointError, InvalidOptionError
from copper_async.filters import OpportunityFilter

__all__ = ["ExportResult", "job_description", "run_export", "sort_in"]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[SearchStats, int], None]
#: Asks for the custom field names (a request): called once every check has passed.
NamesSource = Callable[[], Awaitable[CustomFieldNames]]


@attrs.frozen
class ExportResult:
    """What an export wrote, and the search's stats (over every resumed run)."""

    path: Path | None  # None: a stream (stdout)
    records: int
    bytes: int
    stats: dict[str, Any]
    resumed: bool


def job_description(
    filter: OpportunityFilter,
    options: SearchOptions,
    out: Path,
    format: ExportFormat,
    *,
    base_url: str | None = None,
    user_email: str | None = None,
) -> dict[str, Any]:
    """What defines an export job; its fingerprint guards resumes.

    ``base_url`` and ``user_email`` say whose records these are: a resume
    against another server or account would mix two data sets. The email is
    kept only as its SHA-256 digest.
    """
    body = filter.to_body()
    body.pop("page_number", None)
    body.pop("page_size", None)
    account = hashlib.sha256(user_email.encode()).hexdigest() if user_email is not None else None
    return {
        "filter": body,
        "page_size": options.page_size,
        "cap": options.cap,
        "split_fields": [field.record_key for field in options.split_fields],
        "on_cap": options.on_cap,
        "end_at": options.end_at,
        "output": str(out.resolve()),
        "format": format,
        "base_url": base_url,
        "account": account,
    }


def _check_output(out: Path) -> None:
    if out.is_dir():
        raise InvalidOptionError("out", f"{str(out)!r} is a directory")
    if not out.parent.is_dir():
        raise InvalidOptionError("out", f"folder {str(out.parent)!r} does not exist")
    if out.exists():
        if not os.access(out, os.W_OK):
            raise InvalidOptionError("out", f"{str(out)!r} is not writable")
    elif not os.access(out.parent, os.W_OK | os.X_OK):
        raise InvalidOptionError("out", f"folder {str(out.parent)!r} is not writable")


@contextmanager
def _locked(out: Path | None, checkpoint: Path | None) -> Iterator[None]:
    """Hold the checkpoint's lock and the output's (a regular file or a new one)."""
    with ExitStack() as stack:
        if checkpoint is not None:
            stack.enter_context(exclusive_lock(checkpoint, f"checkpoint {str(checkpoint)!r}"))
        if out is not None and (not out.exists() or out.is_file()):
            stack.enter_context(exclusive_lock(out, f"output {str(out)!r}"))
        yield


def _same_file(one: Path, other: Path) -> bool:
    if one.resolve() == other.resolve():
        return True
    # Hard links, bind mounts: two names of one file.
    return one.exists() and other.exists() and os.path.samefile(one, other)


def _check_checkpoint(checkpoint: Path, out: Path) -> None:
    """A checkpoint that cannot be written is found now, not after the first page."""
    if checkpoint.is_dir():
        raise InvalidOptionError("checkpoint", f"{str(checkpoint)!r} is a directory")
    folder = checkpoint.parent
    if not folder.is_dir():
        raise InvalidOptionError("checkpoint", f"folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        # Each save writes a temp file beside the checkpoint, then renames it.
        raise InvalidOptionError("checkpoint", f"folder {str(folder)!r} is not writable")
    if _same_file(checkpoint, out):
        raise InvalidOptionError(
            "checkpoint",
            f"{str(checkpoint)!r} is the output file itself: each save would replace the output",
        )
    # Each lock file is removed when the run ends: it must be neither file.
    for file, other, locked in ((checkpoint, out, "output"), (out, checkpoint, "checkpoint")):
        if _same_file(file, lock_path(other)):
            raise InvalidOptionError(
                "checkpoint",
                f"{str(file)!r} is the lock file of the {locked} {str(other)!r}: "
                "name the checkpoint and the output apart",
            )


def _open_job(
    job: dict[str, Any],
    fingerprint: str,
    options: SearchOptions,
    out: Path,
    format: ExportFormat,
    checkpoint: Path | None,
    stats: SearchStats,
    *,
    resume: bool,
    custom_fields: CustomFieldNames | None = None,
) -> tuple[RecordWriter, Restored | None, Checkpoint | None] | ExportResult:
    """Open the output (cut back to its committed length on resume)."""
    if resume and checkpoint is not None and _nothing_to_resume(checkpoint, out):
        # A run stopped before its first page: a retry loop passing --resume just starts.
        logger.info("no checkpoint and no output yet: starting the export")
        resume = False
    if not resume:
        if checkpoint is not None and checkpoint.exists():
            raise CheckpointError(
                f"checkpoint {str(checkpoint)!r} exists: resume it, or delete it to start over"
            )
        return open_writer(out, format, custom_fields=custom_fields), None, None
    assert checkpoint is not None
    state = load_checkpoint(checkpoint)
    if state.fingerprint != fingerprint:
        differs = sorted(k for k in {*job, *state.job} if state.job.get(k) != job.get(k))
        raise CheckpointError(
            "refusing to resume: the checkpoint belongs to a different export "
            f"(differs in: {', '.join(differs) or 'fingerprint'})"
        )
    if state.complete:
        _check_complete_output(out, state.committed_bytes)
        logger.info("export already complete: %d records", state.records)
        return ExportResult(out, state.records, state.committed_bytes, dict(state.stats), True)
    if not out.exists():
        raise CheckpointError(f"the output {str(out)!r} of the checkpointed export is missing")
    writer = open_writer(
        out,
        format,
        committed=state.committed_bytes,
        columns=state.csv_columns,
        custom_columns=state.csv_custom_columns,
        custom_fields=custom_fields,
    )
    fields = [field.record_key for field in options.split_fields]
    try:
        restored = WindowPlanner.restore(
            state.planner,
            max_passes=options.max_passes,
            delivered=read_committed(out, format, state.committed_bytes, fields),
            stats=stats,
        )
    except BaseException:
        writer.close()
        raise
    return writer, restored, state


def _check_complete_output(out: Path, length: int) -> None:
    """A complete export's output must still be whole: "already complete"
    would otherwise report records the file no longer holds."""
    try:
        found = out.stat()
    except FileNotFoundError:
        change = "removed"
    else:
        size = found.st_size
        if size == length or not stat.S_ISREG(found.st_mode):  # a device keeps nothing
            return
        change = "cut short" if size < length else "changed"
    raise CheckpointError(
        f"the export is complete, but its output {str(out)!r} was {change} since: "
        "delete the checkpoint to export again"
    )


def _nothing_to_resume(checkpoint: Path, out: Path) -> bool:
    return not checkpoint.exists() and (not out.exists() or out.stat().st_size == 0)


async def run_export(
    fetcher: PageSource,
    filter: OpportunityFilter | None = None,
    *,
    out: Path | BinaryIO,
    format: ExportFormat = "jsonl",
    options: SearchOptions | None = None,
    checkpoint: Path | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    clock: Clock | None = None,
    custom_fields: CustomFieldNames | NamesSource | None = None,
) -> ExportResult:
    """Export every record ``filter`` matches to ``out``, exactly once.

    Every check (output writable, checkpoint usable and of this same job, no
    other export running on either) happens before the first request, and the
    output is only truncated when the first page is written. ``out`` may be
    a binary stream (stdout): then there is no checkpoint. ``progress`` is
    called after each written page with the live stats and the records
    written so far, earlier runs included; a resume calls it once before the
    first request, with what the file already holds and the total the first
    run saw. ``custom_fields`` names a CSV file's custom-field columns and
    options (see :class:`~copper_async.CustomFieldNames`); given as an async
    function, it is called once every check has passed, so that the request
    it makes comes after them too.
    """
    filter = filter if filter is not None else OpportunityFilter()
    options = options if options is not None else SearchOptions()
    clock = clock if clock is not None else LoopClock()
    if format not in ("jsonl", "csv"):
        raise InvalidOptionError("format", f"must be 'jsonl' or 'csv', not {format!r}")
    if resume and checkpoint is None:
        raise InvalidOptionError("resume", "needs a checkpoint file to resume from")
    if custom_fields is not None and format != "csv":
        raise InvalidOptionError("custom_fields", "names CSV columns: JSON lines keep Copper's ids")
    check_no_sort(filter, "an export")
    run = _Run(fetcher, filter, out, format, options, checkpoint, resume, progress, clock)
    if not isinstance(out, Path):
        if checkpoint is not None:
            raise InvalidOptionError(
                "checkpoint", "a stream (stdout) cannot be resumed: write to a file to checkpoint"
            )
        return await _export(run, custom_fields)
    _check_output(out)
    if checkpoint is not None:
        _check_checkpoint(checkpoint, out)
    with _locked(out, checkpoint):
        return await _export(run, custom_fields)


@attrs.frozen
class _Run:
    """One export's settings, checked by :func:`run_export`."""

    fetcher: PageSource
    filter: OpportunityFilter
    out: Path | BinaryIO
    format: ExportFormat
    options: SearchOptions
    checkpoint: Path | None
    resume: bool
    progress: ProgressCallback | None
    clock: Clock


async def _export(run: _Run, custom_fields: CustomFieldNames | NamesSource | None) -> ExportResult:
    job = _job_of(run, custom_fields is not None)
    fingerprint = job_fingerprint(job)
    if run.checkpoint is not None:
        remove_stale_temp_files(run.checkpoint)
    # One stats object: a restored planner counts into it from its snapshot on.
    stats = SearchStats(clock=run.clock)
    names, ask = (
        (custom_fields, None)
        if custom_fields is None or isinstance(custom_fields, CustomFieldNames)
        else (None, custom_fields)
    )
    opened = _open_output(run, job, fingerprint, stats, names)
    if isinstance(opened, ExportResult):
        return opened
    writer, restored, state = opened
    if ask is not None:
        try:
            # Only now: a bad path or checkpoint is refused before any request.
            names = await ask()
            assert isinstance(writer, CsvWriter)
            writer.name_custom_fields(names)
        except BaseException:
            writer.close()
            raise
    search: Search[dict[str, Any]] = Search(
        run.fetcher,
        run.filter,
        resource=OPPORTUNITIES,
        options=run.options,
        clock=run.clock,
        planner=restored.planner if restored else None,
        planner_events=restored.events if restored else (),
        stats=stats,
    )
    written = _Written(fingerprint, job, run.checkpoint, writer, search, state)
    pages = search.pages()
    try:
        await _write_pages(written, pages, run.progress)
    except (asyncio.CancelledError, KeyboardInterrupt):
        # Stopped between pages: keep what is whole; a resume continues from it.
        # The caller gets the cancellation: this is only the detail.
        _log_interruption(written.records, run.checkpoint)
        raise
    finally:
        await pages.aclose()
        writer.close()
    path = run.out if isinstance(run.out, Path) else None
    return ExportResult(path, written.records, written.committed, written.stats(), run.resume)


def _job_of(run: _Run, custom_field_names: bool) -> dict[str, Any]:
    """The job a checkpoint belongs to (see :func:`job_description`)."""
    job = job_description(
        run.filter,
        run.options,
        run.out if isinstance(run.out, Path) else Path("-"),
        run.format,
        base_url=run.fetcher.base_url,
        user_email=run.fetcher.user_email,
    )
    if custom_field_names:
        # Only when on, so that the jobs of earlier versions keep their fingerprint.
        job["custom_field_names"] = True
    return job


def _open_output(
    run: _Run,
    job: dict[str, Any],
    fingerprint: str,
    stats: SearchStats,
    custom_fields: CustomFieldNames | None,
) -> tuple[RecordWriter, Restored | None, Checkpoint | None] | ExportResult:
    """The writer, and on resume the restored planner and the checkpoint read;
    or the result of an export the checkpoint says is complete."""
    if not isinstance(run.out, Path):
        return open_writer(run.out, run.format, custom_fields=custom_fields), None, None
    return _open_job(
        job,
        fingerprint,
        run.options,
        run.out,
        run.format,
        run.checkpoint,
        stats,
        resume=run.resume,
        custom_fields=custom_fields,
    )


@attrs.define
class _Written:
    """What an export has written and committed so far, and how it commits.

    ``resumed_from`` is the checkpoint this run continues (None for a fresh
    run); its counts and stats carry on into this run's.
    """

    fingerprint: str
    job: dict[str, Any]
    checkpoint: Path | None
    writer: RecordWriter
    search: Search[dict[str, Any]]
    resumed_from: Checkpoint | None
    committed: int = attrs.field(init=False)
    records: int = attrs.field(init=False)
    previous_stats: dict[str, Any] = attrs.field(init=False)
    # A fresh run's state before any page: saved before the output first changes.
    start: Checkpoint | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        state = self.resumed_from
        self.committed = state.committed_bytes if state else 0
        self.records = state.records if state else 0
        self.previous_stats = dict(state.stats) if state else {}
        if state is None and self.checkpoint is not None:
            self.start = self.snapshot(complete=False)
        if state is not None:
            # The first run's total covers the whole search; this run's first page
            # is only one window's.
            total = self.previous_stats.get("total_hint")
            if isinstance(total, int) and not isinstance(total, bool):
                self.search.stats.total_hint = total

    def stats(self) -> dict[str, Any]:
        """The search's stats over every run of this export."""
        return merge_stats(self.previous_stats, self.search.stats.as_dict())

    def snapshot(self, *, complete: bool) -> Checkpoint:
        return Checkpoint(
            fingerprint=self.fingerprint,
            job=self.job,
            committed_bytes=self.committed,
            records=self.records,
            planner=self.search.planner.snapshot(include_seen=False),
            stats=self.stats(),
            csv_columns=getattr(self.writer, "columns", None),
            csv_custom_columns=getattr(self.writer, "named_columns", None),
            complete=complete,
        )

    def commit(self, state: Checkpoint) -> int:
        """Make the written pages durable, then record them (in a thread)."""
        length = self.writer.commit()
        if self.checkpoint is not None:
            save_checkpoint(self.checkpoint, attrs.evolve(state, committed_bytes=length))
        return length


async def _write_pages(
    written: _Written,
    pages: AsyncIterator[ResultPage[dict[str, Any]]],
    progress: ProgressCallback | None,
) -> None:
    """Write every page, committing at each point the checkpoint can describe."""
    search = written.search
    if written.resumed_from is not None and progress is not None:
        progress(search.stats, written.records)
    async for page in pages:
        if written.start is not None:
            # A split search's first page is no commit point: without this, a run
            # stopped before its first one would leave records and no checkpoint.
            start, written.start = written.start, None
            written.committed = await _in_thread(written.commit, start)
        written.writer.write_page(page.records)
        written.records += len(page.records)
        if written.checkpoint is not None and search.at_commit_point:
            # The disk work runs in a thread while the next pages arrive.
            state = written.snapshot(complete=False)
            written.committed = await _in_thread(written.commit, state)
        if progress is not None:
            progress(search.stats, written.records)
    written.writer.finish()
    written.committed = await _in_thread(written.commit, written.snapshot(complete=True))


def _log_interruption(records: int, checkpoint: Path | None) -> None:
    if checkpoint is not None:
        logger.info(
            "export interrupted after %d records; resume from %s to continue",
            records,
            checkpoint,
        )
    else:
        logger.info("export interrupted after %d records (no checkpoint)", records)


async def _in_thread(commit: Callable[[Checkpoint], int], state: Checkpoint) -> int:
    """Run a commit in a thread; a cancellation waits for it, so that the file
    and the checkpoint are never left half-written."""
    task = asyncio.ensure_future(asyncio.to_thread(commit, state))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise
