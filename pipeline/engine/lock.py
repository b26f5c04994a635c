"""One run per output folder: a lock file that says which process writes the folder.

Two runs writing one folder would mix their results (the second run's tables under the first run's summary), so
every stage that writes a folder holds its lock for as long as it writes. The lock is an advisory ``flock`` on
``<folder>/.tally-audit.lock``, which holds the owner's process id: the system releases it when the owner dies,
however it dies, so the lock of a run that was killed (``kill -9``, out of memory) is simply taken over by the next
run. A process may take a lock it already holds (a whole-pipeline run holds its folders while each stage takes them
again).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import OutputError

log = logging.getLogger(__name__)

LOCK_FILE = ".tally-audit.lock"
#: Names of what a killed run leaves behind: temporary files (:func:`pipeline.atomic.temp_path`) and the audit's
#: scratch folders.
SCRATCH_FILES = ".*.tmp"
SCRATCH_DIRS = ".audit-*"
#: Locks this process holds: folder -> (open file descriptor, how many times it was taken).
_HELD: dict[Path, list[int]] = {}


def lock_owner(folder: Path) -> int | None:
    """The process id written in ``folder``'s lock file, or ``None`` (no lock file, or no id in it)."""
    try:
        text = (Path(folder) / LOCK_FILE).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _take(folder: Path) -> int:
    """Open and lock ``folder``'s lock file; returns its descriptor.

    Raises:
        OutputError: another process holds the lock.
    """
    path = folder / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            owner = lock_owner(folder)
            raise OutputError(f"{folder}: another run{f' (process {owner})' if owner else ''} is writing this "
                              "folder; wait for it to end, or write to another folder") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # else the owner removed the file as we opened it: try again on the new one
            break
        os.close(fd)
    if lock_owner(folder) not in (None, os.getpid()):
        log.info("%s: taking over the lock of process %s, which is gone", folder, lock_owner(folder))
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    return fd


def remove_scratch(folder: Path) -> int:
    """Remove the temporary files and scratch folders a killed run left directly in ``folder``; returns how many.

    Call it only with ``folder``'s lock held: then no other run is writing there, so all of them are stale.
    """
    folder = Path(folder)
    stale = [p for p in folder.glob(SCRATCH_FILES) if p.is_file()] + [p for p in folder.glob(SCRATCH_DIRS)
                                                                       if p.is_dir()]
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if stale:
        log.info("%s: removed %d file(s) or folder(s) left by a run that was killed", folder, len(stale))
    return len(stale)


@contextmanager
def folder_lock(folder: Path) -> Iterator[Path]:
    """Hold the lock of ``folder`` (created if missing) for the ``with`` block; yields the folder.

    Raises:
        OutputError: another live process holds the lock, or the folder cannot be created or written.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        key = folder.resolve()
        if key not in _HELD:
            _HELD[key] = [_take(folder), 0]
    except OSError as exc:
        raise OutputError(f"{folder}: cannot lock the output folder ({exc.strerror}); check that it is a folder "
                          "you can write to") from exc
    _HELD[key][1] += 1
    try:
        yield folder
    finally:
        _HELD[key][1] -= 1
        if _HELD[key][1] == 0:
            fd = _HELD.pop(key)[0]
            (folder / LOCK_FILE).unlink(missing_ok=True)  # before the unlock, so nobody locks a removed file
            os.close(fd)
