"""Never lose work: one part file per finished input, a run manifest, and safe output names.

A worker that finishes an input writes everything the parent needs about it (table rows and arrays) into one
``.npz`` part file, atomically (temporary file + rename), named after the input's path. A re-run with the same
output folder skips every input whose part exists and still matches the input (size and sha256 of its bytes), so
killing the process at any moment loses at most the inputs in flight. The run's tables are then rebuilt from
the parts, which makes the merge idempotent: merging twice gives the same files, and no row is duplicated.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat as stat_module
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.atomic import savez_atomic, write_atomic

PARTS_DIR = "parts"
MANIFEST_FILE = "manifest.csv"
MANIFEST_COLUMNS = ["path", "sha256", "size", "status", "stage", "error", "part"]
META_KEY = "meta"
HASH_BLOCK = 1 << 20
#: Characters that may not appear in a name used as a file or folder name under the output folder.
UNSAFE_CHARS = frozenset("/\\\0") | frozenset(map(chr, range(32)))
#: Python keeps the bytes of a file name that are not UTF-8 as lone surrogates U+DC80-U+DCFF (PEP 383).
ESCAPED_BYTE_FIRST, ESCAPED_BYTE_LAST = 0xDC80, 0xDCFF
ESCAPED_BYTE_BASE = 0xDC00


@dataclass(frozen=True)
class Fingerprint:
    """What identifies an input's content: size and modification time (cheap to check) and sha256."""

    size: int
    mtime_ns: int
    sha256: str


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in blocks (inputs may be large)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def is_regular_file(path: Path) -> bool:
    """Whether ``path`` is (or links to) a regular file: not a device such as ``/dev/zero``, a pipe or a dangling
    link, which must never be read (a device never ends, a pipe may block forever)."""
    try:
        return stat_module.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def fingerprint(path: Path) -> Fingerprint:
    """The fingerprint of ``path``; a file that cannot be read (or is not a regular file) gets an empty hash, and
    one that cannot even be looked at size and time 0, rather than an error."""
    try:
        stat = Path(path).stat()
    except OSError:
        return Fingerprint(0, 0, "")
    try:
        digest = sha256_file(path) if stat_module.S_ISREG(stat.st_mode) else ""
    except OSError:
        digest = ""
    return Fingerprint(stat.st_size, stat.st_mtime_ns, digest)


def part_path(parts: Path, source: Path) -> Path:
    """The part file of input ``source``: a hash of its absolute path, so no input name reaches the file system.

    The path is hashed as the bytes the file system holds, so a name that is not UTF-8 works like any other.
    """
    key = hashlib.sha256(os.fsencode(Path(source).absolute())).hexdigest()[:32]
    return parts / f"{key}.npz"


def printable(text: object) -> str:
    """``text`` (a path, or a message naming one) as a string any file, CSV or JSON can hold: the bytes of a file
    name that are not UTF-8 are shown as ``\\xNN``."""
    text = str(text)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that does not stand for a byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def name_to_id(name: str) -> str:
    """A file name part as a sheet id: the bytes that are not UTF-8 become ``~XX`` (hex), so the id is text that
    every table, file name and link can hold. Two names may map to one id; the reader reports that as
    ``duplicate_id``."""
    return "".join(f"~{ord(c) - ESCAPED_BYTE_BASE:02X}" if ESCAPED_BYTE_FIRST <= ord(c) <= ESCAPED_BYTE_LAST else c
                   for c in name)


def _json_default(value):
    """numpy scalars (crop rows carry them) as plain Python values."""
    return value.item() if hasattr(value, "item") else str(value)


def write_part(path: Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Store ``meta`` (JSON) and ``arrays`` in one ``.npz`` file, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = np.frombuffer(json.dumps(meta, default=_json_default).encode(), np.uint8)
    savez_atomic(path, {META_KEY: blob, **arrays})


def read_part(path: Path, arrays: bool = True) -> tuple[dict, dict[str, np.ndarray]] | None:
    """A part's meta and (if ``arrays``) its arrays; ``None`` when it is missing or unreadable (it is redone)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(npz[META_KEY].tobytes())
            return meta, ({k: npz[k] for k in npz.files if k != META_KEY} if arrays else {})
    except (OSError, ValueError, KeyError, EOFError):
        return None


def is_current(meta: dict, source: Path) -> bool:
    """Whether a part was made from ``source`` as it is now: same size and same sha256 of its bytes.

    The size is compared first (no read); the hash always, so that a file replaced by other bytes of the same
    size with its time kept (``cp -p``) is read again. A part of an input that had no hash (not a regular file,
    unreadable) is current while the input still has none and the same size.
    """
    current = fingerprint(source)
    return meta.get("size") == current.size and meta.get("sha256") == current.sha256


def is_safe_name(name: str) -> bool:
    """Whether ``name`` can be used as one file or folder name under an output folder without escaping it."""
    return bool(name) and name not in (".", "..") and not (set(name) & UNSAFE_CHARS)


def inside(root: Path, path: Path) -> bool:
    """Whether ``path`` resolves to a place under ``root``."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())


@dataclass(frozen=True)
class ManifestRow:
    """One input of a run: where it is, its content hash, how it ended, how far it got, and why it failed."""

    path: str
    sha256: str
    size: int
    status: str
    stage: str
    error: str
    part: str


def write_manifest(rows: Iterable[ManifestRow], path: Path) -> pd.DataFrame:
    """Write the run manifest (one row per input) atomically; returns it."""
    table = pd.DataFrame([asdict(r) for r in rows], columns=MANIFEST_COLUMNS)
    write_atomic(path, lambda tmp: table.to_csv(tmp, index=False))
    return table


def mark_stage(path: Path, stage: str) -> None:
    """Record that every input that got through reading (it has a part) has now been through ``stage``."""
    if not path.is_file():
        return
    table = pd.read_csv(path, dtype={"error": str, "part": str}, keep_default_na=False)
    table.loc[table["part"] != "", "stage"] = stage
    write_atomic(path, lambda tmp: table.to_csv(tmp, index=False))
