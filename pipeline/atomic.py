"""Atomic file writes: every stage writes through a temporary file and a rename, so a reader (or a re-run after a
crash) never sees half a file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where arrays are written, not by every command's --help
    import numpy as np


def temp_path(path: Path) -> Path:
    """The temporary file beside ``path`` that a write goes to before its rename: hidden, and carrying the process
    id, so concurrent writers never share one."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a :func:`temp_path` beside ``path``, then rename it onto ``path``; returns ``path``.
    The temporary file is removed if ``write`` fails."""
    tmp = temp_path(path)
    try:
        write(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def savez_atomic(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` as an ``.npz`` file at exactly ``path`` (through a file handle: ``np.savez`` would add
    ``.npz`` to a temporary name)."""

    def save(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            import numpy as np

            np.savez(fh, **arrays)

    return write_atomic(path, save)
