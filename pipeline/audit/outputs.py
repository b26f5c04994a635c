"""Atomic writers for the audit outputs, and conversion of numpy/pandas values into plain JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.atomic import write_atomic, write_text_atomic


def jsonable(obj):
    """``obj`` with numpy/pandas scalars and arrays turned into Python values and NaN/NA into ``None``."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray, pd.Series)):
        return [jsonable(v) for v in list(obj)]
    if obj is None or obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, (np.generic,)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps(obj) -> str:
    """Strict JSON (no NaN) of ``obj`` after :func:`jsonable`."""
    return json.dumps(jsonable(obj), sort_keys=True, allow_nan=False)


def write_json(path: Path, obj) -> Path:
    """Write ``obj`` as indented JSON atomically (temp file + rename)."""
    write_text_atomic(path, json.dumps(jsonable(obj), indent=2, sort_keys=True, allow_nan=False))
    return path


def write_table(df: pd.DataFrame, stem: Path) -> tuple[Path, Path]:
    """Write ``df`` as ``<stem>.parquet`` and ``<stem>.csv``, each atomically."""
    paths = []
    for suffix in (".parquet", ".csv"):
        path = stem.with_suffix(suffix)
        write = df.to_parquet if suffix == ".parquet" else df.to_csv
        write_atomic(path, lambda tmp, write=write: write(tmp, index=False))
        paths.append(path)
    return paths[0], paths[1]
