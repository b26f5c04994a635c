"""Compare an audit with the ground truth of a synthetic batch (``truth.csv``, docs/DATA.md section 1).

Which sheets are "truly inconsistent" is decided by applying the audit's own rules to the numbers visibly written
on each sheet (``F_written``), so the arithmetic check is judged on what a perfect reader would see.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from pipeline.audit.arithmetic import counts_consistent
from pipeline.audit.flags import Flag
from pipeline.audit.schema import CHOICE_FIELD, COUNT_FIELDS, ID_FIELDS, NUMERIC_FIELDS, OK_STATUS, VISIBLE_KINDS
from pipeline.audit.settings import AuditSettings
from pipeline.audit.table import TRUE_STRINGS, read_table

ARITHMETIC_RULES = ("votes_add_up", "ballots_add_up", "total_within_registered", "count_within_registered",
                    "ids_well_formed", "unreadable")
#: Yes/no columns of truth.csv, read as booleans whether written True/False or 1/0.
TRUTH_FLAGS = ("altered", "fabricated", "opposition_present", "arithmetic_error")
TRUTH_COLUMNS = ("sheet_id", "altered", "opposition_present", *ID_FIELDS, *(f"{f}_written" for f in COUNT_FIELDS))


def read_truth(path: Path | str) -> pd.DataFrame:
    """``truth.csv`` with the columns the evaluation needs (raises InputFileError naming what is missing)."""
    truth = read_table(Path(path), TRUTH_COLUMNS)
    for column in TRUTH_FLAGS:
        if column in truth:
            truth[column] = truth[column].astype("string").str.strip().str.lower().isin(TRUE_STRINGS)
    return truth


def written_values(truth: pd.DataFrame, s: AuditSettings) -> pd.DataFrame:
    """What a perfect reader returns for every numeric field (ids as written, counts ``F_written``), by sheet_id.

    Blank counts become 0 when ``empty_counts_as_zero``, exactly as the audit treats blank reads.
    """
    t = truth.set_index("sheet_id")
    out = pd.DataFrame({f: pd.to_numeric(t[f], errors="coerce") for f in ID_FIELDS}, index=t.index)
    for f in COUNT_FIELDS:
        written = pd.to_numeric(t[f"{f}_written"], errors="coerce")
        out[f] = written.fillna(0) if s.empty_counts_as_zero else written
    return out.astype("Int64")


def _safe(metric, y_true, y_pred) -> float | None:
    return float(metric(y_true, y_pred, zero_division=0)) if len(y_true) else None


def alteration_metrics(j: pd.DataFrame) -> dict:
    """Sheet-level precision, recall and ROC AUC of the detector, and its recall per alteration kind.

    ``j`` joins truth and audit by sheet: ``altered_truth``, ``altered_pred``, ``alteration_score`` and
    ``alteration_kinds`` (``;``-joined).
    """
    if j.empty or j["alteration_score"].isna().all():
        return {"skipped": "no alteration scores (no detector)"}
    y, pred, score = j["altered_truth"].astype(bool), j["altered_pred"].astype(bool), j["alteration_score"]
    kinds = j["alteration_kinds"].astype("string").fillna("").str.split(";") if "alteration_kinds" in j else None
    per_kind = {}
    for kind in VISIBLE_KINDS if kinds is not None else ():
        has = kinds.apply(lambda ks, k=kind: k in ks).astype(bool)
        per_kind[kind] = {"n": int(has.sum()), "recall": float(pred[has].mean()) if has.any() else None}
    return {"n": int(len(j)), "n_altered": int(y.sum()), "precision": _safe(precision_score, y, pred),
            "recall": _safe(recall_score, y, pred),
            "roc_auc": float(roc_auc_score(y, score.fillna(0))) if y.nunique() == 2 else None,
            "per_kind_recall": per_kind,
            "fabricated_only_flagged": _fabricated_rate(j, pred)}


def _fabricated_rate(j: pd.DataFrame, pred: pd.Series) -> float | None:
    """Share of sheets changed without a visible trace (fabricated, not altered) that the image detector flags
    nonetheless: it should find nothing there."""
    if "fabricated" not in j:
        return None
    only = j["fabricated"].astype(bool) & ~j["altered_truth"].astype(bool)
    return float(pred[only].mean()) if only.any() else None


def fields_read_right(sheets: pd.DataFrame, written: pd.DataFrame) -> pd.DataFrame:
    """Per sheet (in both tables) and numeric field: was it read exactly as written (both blank counts too)?"""
    common = written.index.intersection(sheets.index)
    read = sheets.loc[common, list(NUMERIC_FIELDS)].astype("Int64")
    truth = written.loc[common, list(NUMERIC_FIELDS)]
    return ((read == truth).fillna(False) | (read.isna() & truth.isna())).astype(bool)


def read_accuracy(right: pd.DataFrame) -> dict:
    """Share of fields read exactly as written (ids, counts, all) and of sheets with every field right."""
    return {"n_sheets": int(len(right)), "ids": float(right[list(ID_FIELDS)].to_numpy().mean()),
            "counts": float(right[list(COUNT_FIELDS)].to_numpy().mean()),
            "all_fields": float(right.to_numpy().mean()), "sheets_all_correct": float(right.all(axis=1).mean()),
            "per_field": {f: float(right[f].mean()) for f in NUMERIC_FIELDS}}


def arithmetic_eval(verdicts: dict[str, str], truth: pd.DataFrame, written: pd.DataFrame, read_ok: pd.Series,
                    s: AuditSettings) -> dict:
    """How the arithmetic rules and the uncertainty search did on truly inconsistent and on clean sheets
    (``verdicts``: :func:`arithmetic_verdicts` of the audit's flags)."""
    types = truth.set_index("sheet_id")[CHOICE_FIELD] if CHOICE_FIELD in truth else None
    consistent = pd.Series({sid: counts_consistent({f: _int(written.at[sid, f]) for f in NUMERIC_FIELDS},
                                                   None if types is None else types.get(sid), s)
                            for sid in read_ok.index}, dtype="object")
    flagged = pd.Series([sid in verdicts for sid in read_ok.index], index=read_ok.index)
    called = pd.Series([verdicts.get(sid) == "inconsistent" for sid in read_ok.index], index=read_ok.index)
    bad, clean = consistent == False, consistent == True  # noqa: E712 (object Series holding None too)
    return {
        "inconsistent_read_correctly": _rates(flagged, called, bad & read_ok),
        "inconsistent_all": _rates(flagged, called, bad),
        "clean": {**_rates(flagged, called, clean), "false_inconsistent_rate": _mean(called[clean]),
                  "needs_review_rate": _mean(flagged[clean] & ~called[clean])},
        "clean_misread": _rates(flagged, called, clean & ~read_ok)}


def _int(v) -> int | None:
    return None if pd.isna(v) else int(v)


def _mean(x: pd.Series) -> float | None:
    return float(x.mean()) if len(x) else None


def _rates(flagged: pd.Series, called: pd.Series, mask: pd.Series) -> dict:
    return {"n": int(mask.sum()), "flagged_rate": _mean(flagged[mask]), "inconsistent_rate": _mean(called[mask])}


def arithmetic_verdicts(flags: list[Flag]) -> dict[str, str]:
    """Per sheet with an arithmetic flag: ``inconsistent`` if any such flag says so, else ``needs_review``."""
    out: dict[str, str] = {}
    for f in flags:
        if f.rule in ARITHMETIC_RULES and out.get(f.sheet_id) != "inconsistent":
            out[f.sheet_id] = f.verdict
    return out


def truth_eval(sheets: pd.DataFrame, verdicts: dict[str, str], truth: pd.DataFrame, s: AuditSettings) -> dict:
    """``truth_eval.json``: alteration detection, arithmetic rules (``verdicts``: :func:`arithmetic_verdicts`)
    and read accuracy against the ground truth."""
    ok = sheets[sheets["status"] == OK_STATUS]
    written = written_values(truth, s)
    right = fields_read_right(ok, written)
    joined = truth.set_index("sheet_id").join(ok[["alteration_score", "altered"]], how="inner",
                                              lsuffix="_truth", rsuffix="_pred")
    return {"n_truth": int(len(truth)), "n_audited": int(len(sheets)), "n_read_ok": int(len(ok)),
            "missing_from_audit": sorted(set(truth["sheet_id"]) - set(sheets.index.astype(str))),
            "alteration": alteration_metrics(joined),
            "arithmetic": arithmetic_eval(verdicts, truth, written, right.all(axis=1), s),
            "reading": read_accuracy(right),
            "opposition_tick_agreement": _opposition_agreement(ok, truth)}


def _opposition_agreement(ok: pd.DataFrame, truth: pd.DataFrame) -> float | None:
    """Share of sheets whose read opposition-present tick matches the truth."""
    t = truth.set_index("sheet_id")["opposition_present"].astype("Int8")
    both = ok["opposition_present"].astype("Int8").to_frame("read").join(t.rename("truth"), how="inner").dropna()
    return float(np.mean(both["read"] == both["truth"])) if len(both) else None
