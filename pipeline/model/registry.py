"""Versioned models on disk: ``models/<version>/{model.keras,metadata.json}`` and the ``models/current`` link.

A version is never modified after it is written; promoting one only moves the relative symlink ``current``
(replaced atomically, so a reader never sees it half-written). No Keras here: loading lives in
:mod:`pipeline.model.recogniser`.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pipeline import config as cfg
from pipeline.atomic import write_text_atomic
from pipeline.errors import ModelError

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
CURRENT_NAME = "current"
VERSION_FORMAT = "v%Y%m%dT%H%M%SZ"


def data_hash(*arrays: np.ndarray) -> str:
    """sha256 over the shapes, dtypes and bytes of ``arrays``: identifies exactly what a model was trained on."""
    digest = hashlib.sha256()
    for arr in arrays:
        digest.update(f"{arr.shape}{arr.dtype}".encode())
        digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()


def utc_now() -> datetime:
    """The current time in UTC (one place, so versions and metadata dates agree)."""
    return datetime.now(timezone.utc)


def new_version_dir(models_dir: Path, when: datetime) -> Path:
    """A fresh, not yet existing ``models_dir/<version>``; a suffix keeps versions made in the same second apart."""
    base = when.strftime(VERSION_FORMAT)
    candidate, n = models_dir / base, 1
    while candidate.exists():
        n += 1
        candidate = models_dir / f"{base}-{n}"
    return candidate


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` as indented JSON via a temporary file and a rename."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=float))


def resolve_model_dir(path: Path | None = None) -> Path:
    """The version folder that ``path`` names (a version folder, ``current``, or a ``model.keras`` file).

    Raises:
        ModelError: nothing is there, with the command that creates a model.
    """
    path = Path(path) if path is not None else cfg.CURRENT_MODEL
    folder = path.parent if path.name == MODEL_FILE else path
    if not (folder / MODEL_FILE).is_file():
        raise ModelError(f"{path}: no model found ({MODEL_FILE} missing); train one first with "
                         "`python -m pipeline train` (or `make train`)")
    return folder.resolve()


def read_metadata(version_dir: Path) -> dict:
    """The version's ``metadata.json`` as a dict; a missing or corrupt file is a :class:`ModelError`."""
    path = Path(version_dir) / METADATA_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: cannot read model metadata ({exc})") from exc


def set_current(models_dir: Path, version_dir: Path) -> Path:
    """Point ``models_dir/current`` at ``version_dir`` with a relative symlink, replaced atomically."""
    link = models_dir / CURRENT_NAME
    tmp = models_dir / f".{CURRENT_NAME}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.relpath(version_dir, models_dir), tmp)
    tmp.replace(link)
    return link


def current_version(models_dir: Path) -> str | None:
    """Name of the version ``models_dir/current`` points at, or ``None`` when there is none."""
    link = models_dir / CURRENT_NAME
    return link.resolve().name if (link / MODEL_FILE).is_file() else None
