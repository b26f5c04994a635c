"""Load what the report shows: the audit's tables, the run folder's reads, optional ground truth, the models.

Everything here reads files written by other stages (docs/DATA.md sections 2-4 and ``models/``) and checks the
columns the report relies on, so a missing or stale input fails with a message naming the file.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline import config as cfg
from pipeline.errors import InputFileError

log = logging.getLogger(__name__)

SHEET_COLUMNS = ("sheet_id", "status", "suspicion", "n_flags")
FLAG_COLUMNS = ("sheet_id", "fields", "rule", "severity", "verdict", "reason", "evidence")
#: Files whose presence marks a folder as a read/recognise run folder (docs/DATA.md section 2).
RUNDIR_MARKERS = ("crops.parquet", "pages.csv")
METADATA_FILE = "metadata.json"
ALTERATION_FILE = "detector.json"
#: The audit's settings (``pipeline.audit.outputs.SETTINGS_FILE``): the report reads its ``rule_tolerance``.
AUDIT_SETTINGS_FILE = "settings.json"


@dataclass(frozen=True, eq=False)
class ReportInputs:
    """Everything one report is built from; optional parts are ``None`` when the file is absent."""

    processed: Path
    rundir: Path | None
    sheets: pd.DataFrame
    flags: pd.DataFrame
    forensics: dict | list
    truth_eval: dict
    cantu: dict
    fields: pd.DataFrame | None
    digits: pd.DataFrame | None
    pages: pd.DataFrame | None
    truth: pd.DataFrame | None
    boxes: pd.DataFrame | None
    rule_tolerance: int = 0  # the audit's audit.rule_tolerance (settings.json), for rules that state none


def read_table(folder: Path, stem: str, required: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read ``folder/stem.parquet`` (or ``.csv``) and check it has the ``required`` columns."""
    parquet, csv = folder / f"{stem}.parquet", folder / f"{stem}.csv"
    try:
        if parquet.is_file():
            df, path = pd.read_parquet(parquet), parquet
        elif csv.is_file():
            df, path = pd.read_csv(csv, keep_default_na=False, na_values=[""]), csv
        else:
            raise InputFileError(f"{parquet}: missing (and no {csv.name}); run the stage that writes it first")
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{parquet if parquet.is_file() else csv}: cannot read table ({exc})") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputFileError(f"{path}: lacks column(s) {', '.join(missing)} (see docs/DATA.md)")
    return df


def read_optional_table(path: Path) -> pd.DataFrame | None:
    """Read a Parquet or CSV file if it exists, else ``None``."""
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path}: cannot read table ({exc})") from exc


def read_json(path: Path, default: dict | list | None = None) -> dict | list:
    """Parse a JSON file; a missing file gives ``default`` (or an error when ``default`` is ``None``)."""
    if not path.is_file():
        if default is None:
            raise InputFileError(f"{path}: missing; run the stage that writes it first")
        log.warning("%s: missing, that part of the report will be empty", path)
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path}: not valid JSON ({exc})") from exc


def _is_rundir(path: Path) -> bool:
    return any((path / marker).is_file() for marker in RUNDIR_MARKERS)


def rundir_from_evidence(processed: Path, sheets: pd.DataFrame) -> Path | None:
    """The run folder the audit read, found by walking up from the sheets' ``evidence_dir`` paths (which the
    audit writes relative to its output folder)."""
    if "evidence_dir" not in sheets.columns:
        return None
    for text in sheets["evidence_dir"].dropna().astype(str).head(20):
        path = Path(os.path.normpath(processed.resolve() / text))
        for candidate in (path, *path.parents):
            if _is_rundir(candidate):
                return candidate
    return None


def find_rundir(processed: Path, sheets: pd.DataFrame, explicit: Path | None) -> Path | None:
    """The run folder: ``explicit``, else the one the evidence paths point into, else ``data/interim/<name>``."""
    if explicit is not None:
        if not explicit.is_dir():
            raise InputFileError(f"{explicit}: run folder not found")
        return explicit
    found = rundir_from_evidence(processed, sheets)
    conventional = cfg.INTERIM_DIR / processed.name
    if found is None and _is_rundir(conventional):
        found = conventional
    if found is None:
        log.warning("no run folder found for %s (pass --rundir); sheet pages will have no scans", processed)
    return found


def find_truth(processed: Path, sheets: pd.DataFrame, explicit: Path | None) -> pd.DataFrame | None:
    """Ground truth: ``explicit``, else ``data/synthetic/<name>/truth.csv`` when it covers every sheet read."""
    if explicit is not None:
        truth = read_optional_table(explicit)
        if truth is None:
            raise InputFileError(f"{explicit}: truth file not found")
        if "sheet_id" not in truth.columns:
            raise InputFileError(f"{explicit}: lacks column sheet_id (see docs/DATA.md section 1)")
        return truth
    truth = read_optional_table(cfg.SYNTHETIC_DIR / processed.name / "truth.csv")
    if truth is None or "sheet_id" not in truth.columns:
        return None
    if not set(sheets["sheet_id"].astype(str)) <= set(truth["sheet_id"].astype(str)):
        return None
    log.info("using ground truth from %s", cfg.SYNTHETIC_DIR / processed.name / "truth.csv")
    return truth


def truth_path(processed: Path, explicit: Path | None) -> Path:
    """Where :func:`find_truth` looks, so the boxes file beside it can be found."""
    return explicit if explicit is not None else cfg.SYNTHETIC_DIR / processed.name / "truth.csv"


def audit_rule_tolerance(processed: Path) -> int:
    """The ``rule_tolerance`` the audit in ``processed`` checked the form's rules with (its ``settings.json``,
    docs/DATA.md section 4), so that the report calls a rule holding exactly when the audit did; 0 (the setting's
    default) for an audit folder written before the file was.

    Raises:
        InputFileError: ``settings.json`` is not valid JSON or its ``rule_tolerance`` is not a whole number >= 0.
    """
    path = Path(processed) / AUDIT_SETTINGS_FILE
    if not path.is_file():
        log.info("%s: missing (an older audit), rules are checked without the audit's rule_tolerance", path)
        return 0
    settings = read_json(path)
    value = settings.get("rule_tolerance", 0) if isinstance(settings, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputFileError(f"{path}: rule_tolerance must be a whole number of votes >= 0, not {value!r}")
    return value


def load_inputs(processed: Path, rundir: Path | None = None, truth: Path | None = None) -> ReportInputs:
    """Read every input of the report for the audit output folder ``processed``."""
    processed = Path(processed)
    if not processed.is_dir():
        raise InputFileError(f"{processed}: audit output folder not found (run `python -m pipeline audit` first)")
    sheets = read_table(processed, "sheets", SHEET_COLUMNS)
    sheets["sheet_id"] = sheets["sheet_id"].astype(str)
    flags = read_table(processed, "flags", FLAG_COLUMNS)
    flags["sheet_id"] = flags["sheet_id"].astype(str)
    run = find_rundir(processed, sheets, rundir)
    truth_df = find_truth(processed, sheets, truth)
    boxes = read_optional_table(truth_path(processed, truth).with_name("boxes.csv")) if truth_df is not None else None
    return ReportInputs(
        processed=processed, rundir=run, sheets=sheets, flags=flags,
        forensics=read_json(processed / "forensics.json", default={}),
        truth_eval=read_json(processed / "truth_eval.json") if (processed / "truth_eval.json").is_file() else {},
        cantu=read_json(processed / "cantu.json", default={}),
        fields=read_optional_table(run / "fields.parquet") if run else None,
        digits=read_optional_table(run / "digits_read.parquet") if run else None,
        pages=read_optional_table(run / "pages.csv") if run else None,
        truth=truth_df, boxes=boxes, rule_tolerance=audit_rule_tolerance(processed))


@dataclass(frozen=True)
class ModelVersion:
    """One trained digit model: its folder name, metadata and whether ``models/current`` points at it."""

    version: str
    metadata: dict
    current: bool


def load_models(models_dir: Path) -> list[ModelVersion]:
    """Every ``models/<version>/metadata.json``, oldest first (by ``created`` in the metadata)."""
    if not models_dir.is_dir():
        return []
    current = (models_dir / "current").resolve() if (models_dir / "current").exists() else None
    versions = []
    for meta in sorted(models_dir.glob(f"*/{METADATA_FILE}")):
        folder = meta.parent
        if folder.is_symlink():
            continue
        data = read_json(meta)
        versions.append(ModelVersion(folder.name, data if isinstance(data, dict) else {}, folder.resolve() == current))
    return sorted(versions, key=lambda v: (str(v.metadata.get("created", v.metadata.get("date", ""))), v.version))


def load_alteration_detector(models_dir: Path) -> dict | None:
    """The alteration detector's description (``models/alteration/detector.json``), if trained."""
    path = models_dir / "alteration" / ALTERATION_FILE
    return read_json(path) if path.is_file() else None
