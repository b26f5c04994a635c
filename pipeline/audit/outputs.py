"""Atomic writers for the audit outputs, and conversion of numpy/pandas values into plain JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd


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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(jsonable(obj), indent=2, sort_keys=True, allow_nan=False), encoding="utf-8")
    tmp.replace(path)
    return path


def write_table(df: pd.DataFrame, stem: Path) -> tuple[Path, Path]:
    """Write ``df`` as ``<stem>.parquet`` and ``<stem>.csv``, each atomically."""
    paths = []
    for suffix in (".parquet", ".csv"):
        path = stem.with_suffix(suffix)
        tmp = path.with_name(path.name + ".tmp")
        if suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
        tmp.replace(path)
        paths.append(path)
    return paths[0], paths[1]
