"""``train-alteration``: build a synthetic training batch, read it, train the alteration detector, pick its threshold.

The batch comes from its own generator seed (default 1001) and its own tampering rates (``altered_rate``, the
same with and without an opposition representative), so it shares neither with the batches the detector is
evaluated on. The sheet-level threshold is chosen on cross-validated (out-of-fold) scores: the best precision
among thresholds keeping recall at ``target_recall``; the final detector is then fitted on every sheet.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

from pipeline import __version__
from pipeline import config as cfg
from pipeline.audit.alteration import Detector, choose_threshold, feature_matrix, fit_detector, save_detector
from pipeline.audit.evaluate import alteration_metrics, read_truth
from pipeline.audit.schema import COUNT_FIELDS, OK_STATUS, VISIBLE_KINDS
from pipeline.audit.settings import ALTERATION_TRAIN_BATCH, AlterationSettings
from pipeline.errors import MissingDataError

log = logging.getLogger(__name__)

def field_labels(truth: pd.DataFrame, keys: pd.DataFrame) -> np.ndarray:
    """For each ``(sheet_id, field)`` key: was the field visibly altered (``F_alteration`` a visible kind)?"""
    t = truth.set_index("sheet_id")
    kinds = pd.DataFrame({f: t[f"{f}_alteration"].astype("string") for f in COUNT_FIELDS}).stack()
    kinds.index.names = ["sheet_id", "field"]
    looked_up = kinds.reindex(pd.MultiIndex.from_frame(keys.astype(str)))
    return looked_up.isin(VISIBLE_KINDS).to_numpy()


def labelled_fields(rundir: Path, truth: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features and labels of every count field of the sheets the reader read: ``(keys, x, y)``."""
    pages = pd.read_csv(rundir / "pages.csv", dtype={"sheet_id": str})
    ok = sorted(set(pages.loc[pages["status"] == OK_STATUS, "sheet_id"]) & set(truth["sheet_id"].astype(str)))
    keys, x = feature_matrix(rundir, ok)
    return keys, x, field_labels(truth, keys)


def sheet_scores(keys: pd.DataFrame, field_scores: np.ndarray) -> pd.Series:
    """A sheet's score is its highest field score."""
    return keys.assign(score=field_scores).groupby("sheet_id")["score"].max()


def score_metrics(keys: pd.DataFrame, scores: np.ndarray, y: np.ndarray, truth: pd.DataFrame,
                  threshold: float) -> dict:
    """Field ROC AUC and, at ``threshold``, the sheet-level metrics of :func:`alteration_metrics` (per kind too)."""
    sheets = sheet_scores(keys, scores)
    joined = truth.set_index("sheet_id").join(sheets.rename("alteration_score"), how="inner")
    joined = joined.rename(columns={"altered": "altered_truth"})
    joined["altered_pred"] = joined["alteration_score"] >= threshold
    field_auc = float(roc_auc_score(y, scores)) if 0 < y.sum() < len(y) else None
    return {"n_fields": int(len(y)), "n_altered_fields": int(y.sum()), "field_roc_auc": field_auc,
            **alteration_metrics(joined)}


def cross_validated_scores(keys: pd.DataFrame, x: np.ndarray, y: np.ndarray, s: AlterationSettings) -> np.ndarray:
    """Out-of-fold field scores: each sheet scored by a detector fitted without any of its fields."""
    scores = np.zeros(len(y))
    for fit_rows, held_out in GroupKFold(n_splits=s.folds).split(x, y, groups=keys["sheet_id"].to_numpy()):
        scores[held_out] = fit_detector(x[fit_rows], y[fit_rows], s).predict(x[held_out])
    return scores


def train_on(keys: pd.DataFrame, x: np.ndarray, y: np.ndarray, truth: pd.DataFrame,
             s: AlterationSettings) -> Detector:
    """Choose the threshold on out-of-fold sheet scores, then fit the final detector on every sheet.

    The threshold is the one with the best precision among those keeping cross-validated sheet recall at
    ``target_recall``; the cross-validated metrics at it are what to expect on new batches of this kind.
    """
    oof = cross_validated_scores(keys, x, y, s)
    sheets = sheet_scores(keys, oof)
    labels = truth.set_index("sheet_id")["altered"].reindex(sheets.index).to_numpy(bool)
    threshold, precision, recall = choose_threshold(sheets.to_numpy(), labels, s.target_recall)
    fitted = fit_detector(x, y, s)
    cv = score_metrics(keys, oof, y, truth, threshold)
    cv["meets_target"] = bool(recall >= s.target_recall and precision >= s.target_precision)
    metrics = {"cross_validation": cv, "training_fit": score_metrics(keys, fitted.predict(x), y, truth, threshold)}
    return Detector(fitted.mean, fitted.scale, fitted.weights, fitted.biases, threshold,
                    {"metrics": metrics, "n_sheets": int(len(sheets)), "folds": s.folds})


def make_training_batch(s: AlterationSettings, config: dict) -> tuple[Path, Path]:
    """Generate (or reuse, if already made with these settings) and read the training batch; returns its folders."""
    from pipeline.synth import SynthSettings, generate_batch
    from pipeline.vision import ReadSettings, read_batch

    batch = cfg.SYNTHETIC_DIR / ALTERATION_TRAIN_BATCH
    rundir = cfg.INTERIM_DIR / ALTERATION_TRAIN_BATCH
    synth = SynthSettings(sheets=s.sheets, seed=s.seed, altered_rate_absent=s.altered_rate,
                          altered_rate_present=s.altered_rate, alteration_weights=s.alteration_weights)
    stamp = batch / "alteration_settings.txt"
    wanted = repr(synth.for_manifest())
    if not (batch / "truth.csv").is_file() or not stamp.is_file() or stamp.read_text() != wanted:
        log.info("generating %d training sheets (seed %d) into %s", s.sheets, s.seed, batch)
        generate_batch(synth, batch)
        stamp.write_text(wanted)
        (rundir / "pages.csv").unlink(missing_ok=True)
    if not (rundir / "pages.csv").is_file():
        log.info("reading the training sheets into %s", rundir)
        read_batch([batch / "sheets"], rundir, cfg.build_settings(ReadSettings, "read", config))
    return batch, rundir


def train_alteration(s: AlterationSettings, out: Path, config: dict | None = None) -> Detector:
    """The whole ``train-alteration`` command: batch, features, fit, threshold, save to ``out``."""
    batch, rundir = make_training_batch(s, config or {})
    truth = read_truth(batch / "truth.csv")
    keys, x, y = labelled_fields(rundir, truth)
    if y.sum() < 2 or (~y).sum() < 2:
        raise MissingDataError(f"{rundir}: need altered and clean fields to train on, got {int(y.sum())} altered "
                               f"of {len(y)}; generate more sheets (--sheets)")
    detector = train_on(keys, x, y, truth, s)
    truth_hash = hashlib.sha256((batch / "truth.csv").read_bytes()).hexdigest()
    meta = {**detector.metadata, "settings": asdict(s), "training_batch": str(batch), "truth_sha256": truth_hash,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "package_version": __version__}
    detector = Detector(detector.mean, detector.scale, detector.weights, detector.biases, detector.threshold, meta)
    save_detector(detector, out)
    return detector
