"""One run at a time per file: an exclusive ``flock``, for the export and the sync.

The lock is on ``<file>.lock`` beside the file it guards (the checkpoint is
replaced on each save, so it cannot carry a lock itself). The kernel drops
it when the process dies, SIGKILL included. The holder removes the lock file
before letting go; a run that locked a file just removed sees that its path
is gone and takes the lock again, so two runs never both hold it.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from copper_async.exceptions import CopperError, ExportBusyError, InvalidOptionError

__all__ = ["ExportBusyError", "exclusive_lock", "lock_path"]

#: Makes the error of a lock that cannot be taken for another reason than a holder.
Unusable = Callable[[str], CopperError]


def lock_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.lock")


def _bad_output(message: str) -> CopperError:
    return InvalidOptionError("out", message)


def _take(lock: Path, what: str, holder: str, busy: type[CopperError], unusable: Unusable) -> int:
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise unusable(f"cannot create the lock file {str(lock)!r}: {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise busy(
                    f"another {holder} is running on {what} (lock {str(lock)!r} held): "
                    "wait for it to end, or stop it first"
                ) from None
            raise unusable(f"cannot lock {str(lock)!r}: {error.strerror}") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed this file as we locked it: take the new one


@contextmanager
def exclusive_lock(
    path: Path,
    what: str,
    *,
    holder: str = "export",
    busy: type[CopperError] = ExportBusyError,
    unusable: Unusable = _bad_output,
) -> Iterator[None]:
    """Hold ``<path>.lock`` for the block, or raise ``busy`` at once.

    ``holder`` names the kind of run in the message ("another export is
    running..."); ``unusable`` makes the error of a lock file that cannot be
    created or locked (by default, a bad ``out`` option).
    """
    lock = lock_path(path)
    fd = _take(lock, what, holder, busy, unusable)
    try:
        yield
    finally:
        # A folder made read-only meanwhile: the stale file is harmless.
        with suppress(OSError):
            lock.unlink(missing_ok=True)
        os.close(fd)
