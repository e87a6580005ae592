"""One run per file, whatever name reaches it.

The lock of a file must not depend on the name a run gives it: a symlink to
it, a symlinked folder, a relative name and a hard link all reach the same
lock. The second holder is a real second open (flock locks are per open file
description, so a second open in one process conflicts as a second process
would) or a real process, killed with SIGKILL to check the kernel lets go.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from copper_async._lock import exclusive_lock
from copper_async.exceptions import ExportBusyError, StoreBusyError, StoreError
from copper_async.sync._sqlite import SQLiteStore

JOB: dict[str, Any] = {"filter": {}}


def _symlink(tmp: Path) -> tuple[Path, Path]:
    real = tmp / "out.jsonl"
    real.write_bytes(b"")
    (tmp / "link.jsonl").symlink_to(real)
    return real, tmp / "link.jsonl"


def _dangling_symlink(tmp: Path) -> tuple[Path, Path]:
    # An output not written yet, named through a link to where it will be.
    (tmp / "link.jsonl").symlink_to(tmp / "new.jsonl")
    return tmp / "new.jsonl", tmp / "link.jsonl"


def _symlinked_folder(tmp: Path) -> tuple[Path, Path]:
    (tmp / "data").mkdir()
    (tmp / "alias").symlink_to(tmp / "data")
    return tmp / "data" / "out.jsonl", tmp / "alias" / "out.jsonl"


def _relative(tmp: Path) -> tuple[Path, Path]:
    (tmp / "data").mkdir()
    return Path("out.jsonl"), tmp / "data" / ".." / "." / "out.jsonl"


def _hard_link(tmp: Path) -> tuple[Path, Path]:
    real = tmp / "out.jsonl"
    real.write_bytes(b"{}\n")
    (tmp / "elsewhere").mkdir()
    os.link(real, tmp / "elsewhere" / "copy.jsonl")
    return real, tmp / "elsewhere" / "copy.jsonl"


NAMINGS: dict[str, Callable[[Path], tuple[Path, Path]]] = {
    "symlink": _symlink,
    "dangling symlink": _dangling_symlink,
    "symlinked folder": _symlinked_folder,
    "relative": _relative,
    "hard link": _hard_link,
}


def lock_files(tmp: Path) -> list[Path]:
    return sorted(tmp.rglob("*.lock"))


@pytest.mark.parametrize("naming", NAMINGS)
def test_two_names_of_one_file_share_its_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, naming: str
) -> None:
    monkeypatch.chdir(tmp_path)
    first, second = NAMINGS[naming](tmp_path)
    for held, other in ((first, second), (second, first)):
        with (
            exclusive_lock(held, "output"),
            pytest.raises(ExportBusyError, match="another export"),
            exclusive_lock(other, "output"),
        ):
            pass
        with exclusive_lock(other, "output"):  # free again once let go
            pass
    assert lock_files(tmp_path) == []


def test_two_different_files_do_not_share_a_lock(tmp_path: Path) -> None:
    # Two files of the same content: no lock in common.
    (tmp_path / "a.jsonl").write_bytes(b"{}\n")
    (tmp_path / "b.jsonl").write_bytes(b"{}\n")
    with exclusive_lock(tmp_path / "a.jsonl", "a"), exclusive_lock(tmp_path / "b.jsonl", "b"):
        pass
    assert lock_files(tmp_path) == []


HOLDER = """
import sys
import tempfile
from pathlib import Path
from copper_async._lock import exclusive_lock

with exclusive_lock(Path(sys.argv[1]), "output"):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextmanager
def _held_by_a_process(script: str, path: Path) -> Iterator[subprocess.Popen[str]]:
    """A child process running ``script`` on ``path``, once it says it holds
    the lock; killed (SIGKILL) at the end."""
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        yield holder
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate()


def test_a_process_holding_one_name_blocks_the_others_until_killed(tmp_path: Path) -> None:
    real, hard = _hard_link(tmp_path)
    (tmp_path / "link.jsonl").symlink_to(hard)
    with _held_by_a_process(HOLDER, real) as holder:
        for other in (hard, tmp_path / "link.jsonl"):
            with pytest.raises(ExportBusyError), exclusive_lock(other, "output"):
                pass
    assert holder.returncode == -signal.SIGKILL
    # The kernel dropped the killed holder's locks: every name is free, and
    # the lock file it left is taken over by the next run of its name.
    assert lock_files(tmp_path) == [tmp_path / "out.jsonl.lock"]
    for name in (tmp_path / "link.jsonl", real):
        with exclusive_lock(name, "output"):
            pass
    assert lock_files(tmp_path) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("naming", ["symlink", "symlinked folder"])
async def test_a_sync_refuses_a_database_another_sync_holds_under_another_name(
    tmp_path: Path, naming: str
) -> None:
    first, second = NAMINGS[naming](tmp_path)
    first.unlink(missing_ok=True)
    holder = SQLiteStore(first)
    try:
        await holder.open(JOB, "job")
        other = SQLiteStore(second)
        with pytest.raises(StoreBusyError, match="another sync"):
            await other.open(JOB, "job")
        await other.close()
    finally:
        await holder.close()
    assert lock_files(tmp_path) == []


@pytest.mark.asyncio
async def test_a_sync_refuses_a_database_with_several_hard_links(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    store = SQLiteStore(db)
    await store.open(JOB, "job")
    await store.close()
    os.link(db, tmp_path / "m2.sqlite")
    for name in (db, tmp_path / "m2.sqlite"):
        other = SQLiteStore(name)
        with pytest.raises(StoreError, match="hard link") as raised:
            await other.open(JOB, "job")
        await other.close()
        assert not isinstance(raised.value, StoreBusyError)
    assert lock_files(tmp_path) == []


UNPRIVILEGED_HOLDER = """
import os
import sys
from pathlib import Path
from copper_async._lock import exclusive_lock

if os.geteuid() == 0:  # root writes into any folder: hold the lock as nobody
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
with exclusive_lock(Path(sys.argv[1]), "output"):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_file_whose_folder_a_run_cannot_write_is_locked_by_itself() -> None:
    """An output a run may write, reached through a symlink from a folder it
    may write into one it may not: no lock file can be made beside the file,
    so the file itself (which every name reaches) is the lock."""
    # Not tmp_path: its parents are private to the user running the tests.
    with tempfile.TemporaryDirectory() as base:
        tmp = Path(base)
        tmp.chmod(0o755)
        (tmp / "ro").mkdir()
        real = tmp / "ro" / "out.jsonl"
        real.write_bytes(b"")
        real.chmod(0o666)
        (tmp / "ro").chmod(0o555)
        (tmp / "rw").mkdir()
        (tmp / "rw").chmod(0o777)
        link = tmp / "rw" / "link.jsonl"
        link.symlink_to(real)
        try:
            with (
                _held_by_a_process(UNPRIVILEGED_HOLDER, link),
                pytest.raises(ExportBusyError),
                exclusive_lock(real, "output"),
            ):
                pass
        finally:
            (tmp / "ro").chmod(0o755)
        assert lock_files(tmp) == []
