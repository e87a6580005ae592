"""One run at a time per file: an exclusive ``flock``, for the export and the sync.

The lock must not depend on the name a run gives the file. Two locks do it:

- ``<file>.lock`` beside the file its name leads to, symlinks resolved, so
  ``x``, ``./x``, a symlink to ``x`` and a symlinked folder share one lock
  file (the checkpoint is replaced on each save, and an output may not exist
  yet, so they cannot always carry a lock themselves);
- with ``lock_file_itself``, a ``flock`` on the file itself when it exists:
  the kernel keys it by inode, so every hard link of the file reaches it,
  and it leaves no file behind. Taken on a descriptor of its own, which the
  SQLite store must not do (closing any descriptor of a database drops the
  process's POSIX locks on it, SQLite's included): it refuses a database
  with several hard links instead. When the file's folder may not be
  written (a writable file reached through a symlink), this lock alone
  guards it: every run of it, by any name, takes it.

The kernel drops both when the process dies, SIGKILL included. The holder
removes the lock file before letting go; a run that locked a file just
removed sees that its path is gone and takes the lock again, so two runs
never both hold it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from copper_async.exceptions import CopperError, ExportBusyError, InvalidOptionError

__all__ = ["ExportBusyError", "exclusive_lock", "lock_path"]

#: Makes the error of a lock that cannot be taken for another reason than a holder.
Unusable = Callable[[str], CopperError]
# A lock file's folder this run may not write into.
_NO_WRITE_ACCESS = (errno.EACCES, errno.EPERM, errno.EROFS)


def lock_path(path: Path) -> Path:
    """The lock file of ``path``: beside the file it names once symlinks are resolved."""
    # realpath, not Path.resolve: a symlink loop is the output's error to report, not ours.
    real = Path(os.path.realpath(path))
    return real.with_name(f"{real.name}.lock")


def _bad_output(message: str) -> CopperError:
    return InvalidOptionError("out", message)


def _busy(what: str, holder: str, busy: type[CopperError], held: str) -> CopperError:
    return busy(
        f"another {holder} is running on {what} ({held}): wait for it to end, or stop it first"
    )


def _take_file_itself(
    path: Path, what: str, holder: str, busy: type[CopperError], unusable: Unusable
) -> int | None:
    """Lock the regular file ``path`` itself, which all its hard links share;
    None when there is no such file (yet) to lock."""
    try:
        # Non-blocking open: a FIFO must not hang us (it is not locked).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None  # missing or unreadable: the lock file alone guards it
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise _busy(what, holder, busy, "the file is locked under another name") from None
        raise unusable(f"cannot lock {str(path)!r}: {error.strerror}") from None
    return fd


def _take(
    lock: Path,
    what: str,
    holder: str,
    busy: type[CopperError],
    unusable: Unusable,
    *,
    optional: bool = False,
) -> int | None:
    """Hold the lock file ``lock``; None when it is ``optional`` and its
    folder may not be written (the file itself is the lock then)."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            if optional and error.errno in _NO_WRITE_ACCESS:
                return None
            raise unusable(f"cannot create the lock file {str(lock)!r}: {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise _busy(what, holder, busy, f"lock {str(lock)!r} held") from None
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
    lock_file_itself: bool = True,
) -> Iterator[None]:
    """Hold ``<path>.lock`` (symlinks resolved) for the block, and with
    ``lock_file_itself`` the file itself if it exists; or raise ``busy`` at once.

    ``holder`` names the kind of run in the message ("another export is
    running..."); ``unusable`` makes the error of a lock file that cannot be
    created or locked (by default, a bad ``out`` option).
    """
    lock = lock_path(path)
    # A file that exists may lie in a folder this run may not write (reached
    # through a symlink from one it may): the file itself is then the lock.
    fd = _take(lock, what, holder, busy, unusable, optional=lock_file_itself and path.is_file())
    itself: int | None = None
    try:
        if lock_file_itself:
            itself = _take_file_itself(path, what, holder, busy, unusable)
        if fd is None and itself is None:
            raise unusable(f"cannot create the lock file {str(lock)!r} nor lock {str(path)!r}")
        yield
    finally:
        if itself is not None:
            os.close(itself)
        if fd is not None:
            # A folder made read-only meanwhile: the stale file is harmless.
            with suppress(OSError):
                lock.unlink(missing_ok=True)
            os.close(fd)
