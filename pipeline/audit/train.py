"""``train-alteration``: build a synthetic training batch, read it, train the alteration detector, pick its threshold.

The batch comes from its own generator seed (default 1001), its own tampering rates (``altered_rate``, the
same with and without an opposition representative) and the generator's ``train`` style group (``style_set``), so
it shares neither seed nor tampering, writer or scan styles with the ``heldout`` batches the detector is evaluated
on. The sheet-level threshold is chosen on cross-validated (out-of-fold) scores: the best precision
among thresholds keeping recall at ``target_recall``; the final detector is then fitted on every sheet.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

from pipeline import __version__
from pipeline import config as cfg
from pipeline.audit.alteration import (
    TEMPLATE_KEY,
    Detector,
    choose_threshold,
    feature_matrix,
    fit_detector,
    save_detector,
)
from pipeline.audit.evaluate import alteration_metrics, read_truth
from pipeline.audit.schema import OK_STATUS, VISIBLE_KINDS, FormSchema
from pipeline.audit.settings import ALTERATION_TRAIN_BATCH, AlterationSettings
from pipeline.errors import MissingDataError
from pipeline.forms.template import run_template

log = logging.getLogger(__name__)

#: Style given to a field that was not visibly altered (clean or fabricated).
NO_STYLE = "none"


def per_field(truth: pd.DataFrame, keys: pd.DataFrame, suffix: str) -> pd.Series:
    """The truth column ``<field><suffix>`` looked up for each ``(sheet_id, field)`` key (NA where absent)."""
    t = truth.set_index(truth["sheet_id"].astype(str))
    fields = keys["field"].astype(str).unique()
    columns = {f: t[f"{f}{suffix}"].astype("string") for f in fields if f"{f}{suffix}" in t}
    if not columns:
        return pd.Series(pd.NA, index=keys.index, dtype="string")
    values = pd.DataFrame(columns).stack()
    values.index.names = ["sheet_id", "field"]
    return pd.Series(values.reindex(pd.MultiIndex.from_frame(keys.astype(str))).to_numpy(), index=keys.index,
                     dtype="string")


def field_labels(truth: pd.DataFrame, keys: pd.DataFrame) -> np.ndarray:
    """For each ``(sheet_id, field)`` key: was the field visibly altered (``F_alteration`` a visible kind)?"""
    return per_field(truth, keys, "_alteration").isin(VISIBLE_KINDS).to_numpy()


def field_styles(truth: pd.DataFrame, keys: pd.DataFrame) -> np.ndarray:
    """The tampering style of each visibly altered field, :data:`NO_STYLE` for the others.

    The style is the generator's per-field ``<field>_style`` name where truth.csv has one (a finer tampering
    style, or a pen/scan style), otherwise the alteration kind (overwrite, erase, fluid, crossout).
    """
    kinds = per_field(truth, keys, "_alteration").fillna(NO_STYLE).to_numpy(str)
    styles = per_field(truth, keys, "_style").fillna("").to_numpy(str)
    named = (styles != "") & (styles != NO_STYLE)
    return np.where(np.isin(kinds, VISIBLE_KINDS), np.where(named, styles, kinds), NO_STYLE)


def labelled_fields(rundir: Path, truth: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features and labels of every count field (of the run's form) of the sheets the reader read:
    ``(keys, x, y)``."""
    pages = pd.read_csv(rundir / "pages.csv", dtype={"sheet_id": str})
    ok = sorted(set(pages.loc[pages["status"] == OK_STATUS, "sheet_id"]) & set(truth["sheet_id"].astype(str)))
    keys, x = feature_matrix(rundir, ok, FormSchema.of(run_template(rundir)).count_fields)
    return keys, x, field_labels(truth, keys)


@dataclass(frozen=True)
class FieldSet:
    """The labelled count fields of one read batch: keys ``sheet_id, field``, features, altered or not, and the
    tampering style of each (:func:`field_styles`)."""

    keys: pd.DataFrame
    x: np.ndarray
    y: np.ndarray
    styles: np.ndarray

    def subset(self, rows: np.ndarray) -> FieldSet:
        """The fields selected by the boolean or index array ``rows``."""
        return FieldSet(self.keys[rows].reset_index(drop=True), self.x[rows], self.y[rows], self.styles[rows])

    def sheet_labels(self, sheets: pd.Index) -> np.ndarray:
        """Whether each of ``sheets`` has an altered field among these fields."""
        return self.keys.assign(y=self.y).groupby("sheet_id")["y"].any().reindex(sheets).fillna(False).to_numpy(bool)


def load_fields(batch: Path, rundir: Path) -> FieldSet:
    """Features, labels and styles of every count field the reader read in a synthetic batch."""
    truth = read_truth(batch / "truth.csv", FormSchema.of(run_template(rundir)))
    keys, x, y = labelled_fields(rundir, truth)
    return FieldSet(keys, x, y, field_styles(truth, keys))


def sheet_scores(keys: pd.DataFrame, field_scores: np.ndarray) -> pd.Series:
    """A sheet's score is its highest field score."""
    return keys.assign(score=field_scores).groupby("sheet_id")["score"].max()


def style_recall(fields: FieldSet, scores: np.ndarray, threshold: float) -> dict:
    """Per tampering style: its fields' recall, and the recall on the sheets whose only style it is."""
    sheets = sheet_scores(fields.keys, scores)
    styles_of = pd.Series(fields.styles).groupby(fields.keys["sheet_id"].to_numpy()).agg(
        lambda v: frozenset(v) - {NO_STYLE}).reindex(sheets.index)
    out = {}
    for style in sorted(set(fields.styles) - {NO_STYLE}):
        mine = fields.styles == style
        only = (styles_of == frozenset({style})).to_numpy()
        out[style] = {"n_fields": int(mine.sum()), "field_recall": float(np.mean(scores[mine] >= threshold)),
                      "n_sheets_only_this_style": int(only.sum()),
                      "sheet_recall": float(np.mean(sheets.to_numpy()[only] >= threshold)) if only.any() else None}
    return out


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


def threshold_on_training(fields: FieldSet, s: AlterationSettings) -> tuple[float, float, float, np.ndarray]:
    """The sheet threshold chosen on out-of-fold scores of ``fields`` (best precision keeping cross-validated
    sheet recall at ``target_recall``): ``(threshold, precision, recall, out-of-fold field scores)``. A sheet is
    altered when one of its fields is."""
    oof = cross_validated_scores(fields.keys, fields.x, fields.y, s)
    sheets = sheet_scores(fields.keys, oof)
    threshold, precision, recall = choose_threshold(sheets.to_numpy(), fields.sheet_labels(sheets.index),
                                                    s.target_recall)
    return threshold, precision, recall, oof


def train_on(keys: pd.DataFrame, x: np.ndarray, y: np.ndarray, truth: pd.DataFrame,
             s: AlterationSettings) -> Detector:
    """Choose the threshold on out-of-fold sheet scores, then fit the final detector on every sheet.

    The threshold is the one with the best precision among those keeping cross-validated sheet recall at
    ``target_recall``; the cross-validated metrics at it are what to expect on new batches of this kind.
    """
    threshold, precision, recall, oof = threshold_on_training(FieldSet(keys, x, y, np.full(len(y), NO_STYLE)), s)
    sheets = sheet_scores(keys, oof)
    fitted = fit_detector(x, y, s)
    cv = score_metrics(keys, oof, y, truth, threshold)
    cv["meets_target"] = bool(recall >= s.target_recall and precision >= s.target_precision)
    cv["per_style"] = style_recall(FieldSet(keys, x, y, field_styles(truth, keys)), oof, threshold)
    metrics = {"cross_validation": cv, "training_fit": score_metrics(keys, fitted.predict(x), y, truth, threshold)}
    return fitted.with_threshold(threshold, {"metrics": metrics, "n_sheets": int(len(sheets)), "folds": s.folds})


def make_training_batch(s: AlterationSettings, config: dict, root: Path | None = None) -> tuple[Path, Path]:
    """Generate (or reuse, if already made with these settings) and read the training batch; returns its folders
    (under ``data/`` or, given, under ``root``)."""
    from pipeline.synth import SynthSettings, generate_batch
    from pipeline.vision import ReadSettings, read_batch

    batch = (root / "synthetic" if root else cfg.SYNTHETIC_DIR) / ALTERATION_TRAIN_BATCH
    rundir = (root / "interim" if root else cfg.INTERIM_DIR) / ALTERATION_TRAIN_BATCH
    synth = SynthSettings(sheets=s.sheets, seed=s.seed, altered_rate_absent=s.altered_rate,
                          altered_rate_present=s.altered_rate, alteration_weights=s.alteration_weights,
                          style_set=s.style_set)
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
    template = run_template(rundir)
    truth = read_truth(batch / "truth.csv", FormSchema.of(template))
    keys, x, y = labelled_fields(rundir, truth)
    if y.sum() < 2 or (~y).sum() < 2:
        raise MissingDataError(f"{rundir}: need altered and clean fields to train on, got {int(y.sum())} altered "
                               f"of {len(y)}; generate more sheets (--sheets)")
    detector = train_on(keys, x, y, truth, s)
    truth_hash = hashlib.sha256((batch / "truth.csv").read_bytes()).hexdigest()
    meta = {**detector.metadata, "settings": asdict(s), "training_batch": str(batch), "truth_sha256": truth_hash,
            TEMPLATE_KEY: template.name,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "package_version": __version__}
    detector = detector.with_threshold(detector.threshold, meta)
    save_detector(detector, out)
    return detector
