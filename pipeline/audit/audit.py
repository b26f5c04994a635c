"""The audit orchestrator: read a run folder, build the sheet table, apply every rule, write docs/DATA.md section 4.

:func:`run_audit` is the Python API behind ``python -m pipeline audit``. Each step is a function of the tables the
earlier steps produced; this module only chains them and writes the results atomically.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from pipeline.audit import alteration, cantu, evaluate
from pipeline.audit.arithmetic import arithmetic_flags
from pipeline.audit.crosssheet import cross_sheet_flags
from pipeline.audit.flags import SEVERITY_WEIGHT, Flag, flags_to_frame, suspicion
from pipeline.audit.forensics import run_forensics
from pipeline.audit.outputs import write_json, write_table
from pipeline.audit.schema import COUNT_FIELDS, OK_STATUS, VERDICTS
from pipeline.audit.settings import AuditSettings
from pipeline.audit.table import (
    CANDIDATE_COLUMNS,
    FIELDS_COLUMNS,
    MARKS_COLUMNS,
    PAGES_COLUMNS,
    READING_COLUMNS,
    build_sheet_table,
    candidate_map,
    read_table,
    sheet_reading,
)
from pipeline.engine.settings import EngineSettings
from pipeline.engine.stream import check_parquet_columns, parquet_sheet_chunks

log = logging.getLogger(__name__)

#: Verdict of a sheet with no flag, and the order in which a sheet's flags decide its overall verdict.
CLEAN_VERDICT = "ok"
VERDICT_ORDER = ("altered", "inconsistent", "suspicious", "needs_review")


@dataclass(frozen=True)
class AuditResult:
    """Everything the audit produced: the sheet table, the flags, the forensics and Cantu summaries, the
    comparison with ground truth (``None`` without ``truth``) and the files written."""

    sheets: pd.DataFrame
    flags: list[Flag]
    forensics: dict
    cantu: dict
    truth_eval: dict | None
    paths: dict


def page_flags(table: pd.DataFrame) -> list[Flag]:
    """A ``needs_review`` flag for every page the reader could not read (not a form, unreadable, ...)."""
    bad = table[table["status"] != OK_STATUS]
    return [Flag(str(sid), (), "page_not_read", "medium", "needs_review",
                 f"page was not read (status {row['status']}: {'' if pd.isna(row.get('reason')) else row['reason']})",
                 {"status": row["status"], "source": row.get("source")}) for sid, row in bad.iterrows()]


def row_chunks(table: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    """``table`` cut into consecutive slices of at most ``size`` rows (one empty slice for an empty table)."""
    return [table.iloc[i:i + size] for i in range(0, len(table), size)] or [table]


def sheet_flags(table: pd.DataFrame, fields_path: Path, rundir: Path, out: Path, s: AuditSettings,
                chunk_sheets: int) -> list[Flag]:
    """Arithmetic and read-uncertainty flags of every sheet whose page was read, in the table's order.

    The candidate readings (parsed ``alternatives`` of ``fields.parquet``) are read ``chunk_sheets`` sheets at a
    time in the file's order, never the whole column at once; a read sheet with no row there has no candidates.
    """
    ok = table[table["status"] == OK_STATUS]
    ok_ids = set(ok.index)
    by_sheet: dict[str, list[Flag]] = {}
    progress = tqdm(total=len(ok), desc="arithmetic", unit="sheet", disable=len(ok) < 50)
    for fields in parquet_sheet_chunks(fields_path, chunk_sheets, list(CANDIDATE_COLUMNS)):
        candidates = candidate_map(fields)
        ids = [sid for sid in candidates if sid in ok_ids]  # a label lookup per sheet, not a scan of the table
        for sid, row in ok.loc[ids].iterrows():
            by_sheet[str(sid)] = arithmetic_flags(sheet_reading(row, candidates, rundir, out), s)
        progress.update(len(ids))
    for sid, row in ok[~ok.index.isin(list(by_sheet))].iterrows():
        by_sheet[str(sid)] = arithmetic_flags(sheet_reading(row, {}, rundir, out), s)
    progress.close()
    return [f for sid in ok.index for f in by_sheet[str(sid)]]


def alteration_scores(table: pd.DataFrame, detector: alteration.Detector | None, rundir: Path, out: Path,
                      chunk_sheets: int) -> tuple[pd.DataFrame, list[Flag]]:
    """:func:`alteration.apply_detector` on ``chunk_sheets`` sheets at a time: a sheet's features and scores
    depend on that sheet alone, so the result is the same as in one go, without every field's features in memory.
    One pool of feature workers serves every chunk."""
    n_fields = int((table["status"] == OK_STATUS).sum()) * len(COUNT_FIELDS) if detector is not None else 0
    with alteration.feature_pool(n_fields) as pool:
        parts = [alteration.apply_detector(chunk, detector, rundir, out, pool)
                 for chunk in row_chunks(table, chunk_sheets)]
    return pd.concat([t for t, _ in parts]), [f for _, flags in parts for f in flags]


def summarise_sheets(table: pd.DataFrame, flags: list[Flag]) -> pd.DataFrame:
    """Add ``n_flags``, ``verdict`` (the gravest flag's) and ``suspicion`` (noisy-OR of flags and alteration score)."""
    by_sheet: dict[str, list[Flag]] = {}
    for f in flags:
        by_sheet.setdefault(f.sheet_id, []).append(f)
    out = table.copy()
    sids = [str(s) for s in out.index]
    out["n_flags"] = [len(by_sheet.get(s, [])) for s in sids]
    out["verdict"] = pd.array([_overall_verdict(by_sheet.get(s, [])) for s in sids], dtype="string")
    score = out["alteration_score"].astype(float).fillna(0.0)
    out["suspicion"] = [suspicion([score.iloc[i]] + [SEVERITY_WEIGHT[f.severity] for f in by_sheet.get(s, [])
                                                    if f.rule != alteration.RULE])
                        for i, s in enumerate(sids)]
    return out


def _overall_verdict(flags: list[Flag]) -> str:
    verdicts = {f.verdict for f in flags}
    return next((v for v in VERDICT_ORDER if v in verdicts), CLEAN_VERDICT)


def cantu_summary(table: pd.DataFrame, truth: pd.DataFrame | None, s: AuditSettings) -> dict:
    """The Cantu comparison on detected alterations and, when ``truth`` is given, on the true ones."""
    ok = table[table["status"] == OK_STATUS]
    result = {"level": s.ci_level, "ruling_party": s.ruling_party}
    if ok["altered"].notna().any():
        result["detected"] = cantu.compare(ok["altered"], ok["opposition_present"], s.ci_level)
    else:
        result["detected"] = {"skipped": "no alteration detector: run `python -m pipeline train-alteration`"}
    if truth is not None:
        t = truth.set_index("sheet_id")
        result["true"] = cantu.compare(t["altered"].astype(bool), t["opposition_present"].astype("Int8"),
                                       s.ci_level)
    return result


def write_outputs(out: Path, sheets: pd.DataFrame, flags: list[Flag], forensics: dict, cantu_json: dict,
                  truth_eval: dict | None) -> dict:
    """Write every docs/DATA.md section 4 file (and ``truth_eval.json`` when there is one); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = dict(zip(("sheets_parquet", "sheets_csv"), write_table(sheets.reset_index(), out / "sheets"), strict=True))
    paths.update(zip(("flags_parquet", "flags_csv"), write_table(flags_to_frame(flags), out / "flags"), strict=True))
    paths["forensics"] = write_json(out / "forensics.json", forensics)
    paths["cantu"] = write_json(out / "cantu.json", cantu_json)
    if truth_eval is not None:
        paths["truth_eval"] = write_json(out / "truth_eval.json", truth_eval)
    return paths


def run_audit(rundir: Path, out: Path, settings: AuditSettings | None = None,
              truth: Path | None = None, stream_sheets: int | None = None) -> AuditResult:
    """Audit one read run (``pages.csv``, ``fields.parquet``, ``marks.csv``, ``fields/``) into ``out``.

    Args:
        rundir: the reader's and recogniser's run folder (docs/DATA.md sections 2-3).
        out: folder for the audit files (created).
        settings: thresholds; defaults when ``None``.
        truth: optional ``truth.csv`` of a synthetic batch; adds ``truth_eval.json`` and the true Cantu rates.
        stream_sheets: sheets whose field images and candidate readings are held at once (default: the
            engine's); the sheet table itself (one small row per sheet) is whole.

    Raises:
        InputFileError: a required input is missing, unreadable or lacks documented columns.
        ModelError: the alteration detector exists but cannot be loaded.
    """
    s = settings or AuditSettings()
    rundir, out = Path(rundir), Path(out)
    fields_path = rundir / "fields.parquet"
    # the input tables live only while the sheet table is built
    table = build_sheet_table(read_table(rundir / "pages.csv", PAGES_COLUMNS),
                              read_table(check_parquet_columns(fields_path, FIELDS_COLUMNS), READING_COLUMNS,
                                         only_needed=True),
                              read_table(rundir / "marks.csv", MARKS_COLUMNS), rundir, out, s)
    truth_df = evaluate.read_truth(Path(truth)) if truth is not None else None
    detector = alteration.load_detector(Path(s.alteration_model))
    chunk = stream_sheets or EngineSettings().stream_sheets
    table, alteration_flags = alteration_scores(table, detector, rundir, out, chunk)
    flags = (page_flags(table) + sheet_flags(table, fields_path, rundir, out, s, chunk)
             + cross_sheet_flags(table[table["status"] == OK_STATUS], s) + alteration_flags)
    sheets = summarise_sheets(table, flags)
    forensics = run_forensics(sheets, s)
    cantu_json = cantu_summary(sheets, truth_df, s)
    truth_eval = evaluate.truth_eval(sheets, flags, truth_df, s) if truth_df is not None else None
    paths = write_outputs(out, sheets, flags, forensics, cantu_json, truth_eval)
    log.info("audited %d sheets: %d flags (%s)", len(sheets), len(flags),
             ", ".join(f"{v} {sum(f.verdict == v for f in flags)}" for v in VERDICTS))
    return AuditResult(sheets, flags, forensics, cantu_json, truth_eval, paths)


__all__ = ["AuditResult", "run_audit"]
