"""Atomic writers for the audit outputs, and conversion of numpy/pandas values into plain JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.atomic import write_text_atomic
from pipeline.engine.stream import CsvSink, ParquetSink


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


#: The audit's settings as the run used them (docs/DATA.md section 4); the report takes ``rule_tolerance`` from it,
#: so that it calls a rule holding exactly when the audit did.
SETTINGS_FILE = "settings.json"


def write_settings(folder: Path, settings) -> Path:
    """Write the audit ``settings`` (a dataclass, :class:`pipeline.audit.settings.AuditSettings`) to
    ``folder/settings.json``."""
    return write_json(Path(folder) / SETTINGS_FILE, asdict(settings))


class TableSink:
    """A table written chunk by chunk as ``<stem>.parquet`` and ``<stem>.csv``, each renamed into place by
    :meth:`commit`: a reader never sees half a table. The CSV is for people: cells a spreadsheet would execute are
    neutralised there (the Parquet file keeps every value as it is)."""

    def __init__(self, stem: Path) -> None:
        self.sinks = (ParquetSink(stem.with_suffix(".parquet")), CsvSink(stem.with_suffix(".csv"), for_people=True))

    def write(self, df: pd.DataFrame) -> None:
        """Append ``df``'s rows to both files."""
        for sink in self.sinks:
            sink.write(df)

    def commit(self) -> tuple[Path, Path]:
        """Rename both files into place; returns the Parquet and CSV paths."""
        return self.sinks[0].commit(), self.sinks[1].commit()

    def discard(self) -> None:
        """Drop both temporary files (after a failure)."""
        for sink in self.sinks:
            sink.discard()
