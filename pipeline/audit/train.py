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
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

from pipeline import __version__
from pipeline import config as cfg
from pipeline.audit.alteration import (
    DETECTOR_JSON,
    FIELD_INPUTS,
    INPUTS_KEY,
    LAYOUTS_KEY,
    SHEET_RELATIVE,
    TEMPLATE_KEY,
    Detector,
    choose_threshold,
    feature_matrix,
    fit_detector,
    load_detector,
    model_inputs,
    save_detector,
    trained_template,
    uses_sheet_relative,
)
from pipeline.audit.evaluate import alteration_metrics, read_truth
from pipeline.audit.features import ACTA_LAYOUT, FieldLayout
from pipeline.audit.schema import OK_STATUS, VISIBLE_KINDS, FormSchema
from pipeline.audit.settings import ALTERATION_TRAIN_BATCH, AlterationSettings
from pipeline.errors import ConfigError, MissingDataError, ModelError
from pipeline.forms.template import Template, load_template, portable_raw, run_template

if TYPE_CHECKING:
    from pipeline.synth import SynthSettings

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


def field_layouts(template: Template) -> dict[str, FieldLayout] | None:
    """The box layout of each count field of ``template`` (:class:`FieldLayout`), or None when every one is the
    acta's (so the acta's features and detector files are what they were before layouts existed)."""
    layouts = {f.name: FieldLayout.of(f) for f in template.fields_of_kind("count")}
    return None if all(v == ACTA_LAYOUT for v in layouts.values()) else layouts


def labelled_fields(rundir: Path, truth: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features and labels of every count field (of the run's form, laid out as its template says) of the sheets
    the reader read: ``(keys, x, y)``."""
    pages = pd.read_csv(rundir / "pages.csv", dtype={"sheet_id": str})
    ok = sorted(set(pages.loc[pages["status"] == OK_STATUS, "sheet_id"]) & set(truth["sheet_id"].astype(str)))
    template = run_template(rundir)
    keys, x = feature_matrix(rundir, ok, FormSchema.of(template).count_fields, layouts=field_layouts(template))
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


def relative_inputs(keys: pd.DataFrame, s: AlterationSettings) -> bool:
    """Whether the detector fitted on the fields ``keys`` (``sheet_id, field``) takes sheet-relative inputs: the
    setting ``inputs``, for a form with enough count fields (:func:`pipeline.audit.alteration.uses_sheet_relative`)."""
    return uses_sheet_relative(s, int(keys["field"].nunique()))


def fields_inputs(keys: pd.DataFrame, x: np.ndarray, s: AlterationSettings) -> np.ndarray:
    """The detector's inputs (:func:`pipeline.audit.alteration.model_inputs`) from the raw features ``x`` of the
    fields ``keys``."""
    return model_inputs(keys["sheet_id"].to_numpy(), x, relative_inputs(keys, s))


def cross_validated_scores(keys: pd.DataFrame, x: np.ndarray, y: np.ndarray, s: AlterationSettings) -> np.ndarray:
    """Out-of-fold field scores: each sheet scored by a detector fitted without any of its fields (``x``: the
    detector's inputs, :func:`fields_inputs`; folds keep a sheet's fields together, so sheet-relative inputs never
    mix sheets across folds)."""
    scores = np.zeros(len(y))
    for fit_rows, held_out in GroupKFold(n_splits=s.folds).split(x, y, groups=keys["sheet_id"].to_numpy()):
        scores[held_out] = fit_detector(x[fit_rows], y[fit_rows], s).predict(x[held_out])
    return scores


def threshold_on_training(fields: FieldSet, s: AlterationSettings) -> tuple[float, float, float, np.ndarray]:
    """The sheet threshold chosen on out-of-fold scores of ``fields`` (best precision keeping cross-validated
    sheet recall at ``target_recall``): ``(threshold, precision, recall, out-of-fold field scores)``. A sheet is
    altered when one of its fields is."""
    oof = cross_validated_scores(fields.keys, fields_inputs(fields.keys, fields.x, s), fields.y, s)
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
    inputs = fields_inputs(keys, x, s)
    fitted = fit_detector(inputs, y, s)
    cv = score_metrics(keys, oof, y, truth, threshold)
    cv["meets_target"] = bool(recall >= s.target_recall and precision >= s.target_precision)
    cv["per_style"] = style_recall(FieldSet(keys, x, y, field_styles(truth, keys)), oof, threshold)
    metrics = {"cross_validation": cv, "training_fit": score_metrics(keys, fitted.predict(inputs), y, truth, threshold)}
    return fitted.with_threshold(threshold, {"metrics": metrics, "n_sheets": int(len(sheets)), "folds": s.folds,
                                             INPUTS_KEY: SHEET_RELATIVE if relative_inputs(keys, s) else FIELD_INPUTS})


def training_batch_name(template: Template | None) -> str:
    """Folder name of ``train-alteration``'s own batch of ``template`` (None or the packaged acta: today's
    :data:`ALTERATION_TRAIN_BATCH`, so the acta's batch and detector are unchanged; any other form:
    ``alteration-train-<template name>``)."""
    if template is None or template.name == load_template().name:
        return ALTERATION_TRAIN_BATCH
    return f"{ALTERATION_TRAIN_BATCH}-{template.name}"


def synth_settings(s: AlterationSettings, template: Template | None) -> SynthSettings:
    """The generator settings of a training batch: its size, seed, tampering rates and weights and style group;
    a reference-image form is drawn at its reference's resolution (the scale its template was measured at)."""
    from pipeline.synth import SynthSettings

    extra = {}
    if template is not None and template.uses_reference and template.reference_dpi:
        extra["dpi"] = round(template.reference_dpi)
    return SynthSettings(sheets=s.sheets, seed=s.seed, altered_rate_absent=s.altered_rate,
                         altered_rate_present=s.altered_rate, alteration_weights=s.alteration_weights,
                         style_set=s.style_set, **extra)


def batch_template(batch: Path) -> Path | None:
    """The template file a synthetic batch is read with (``template.yaml`` beside its sheets), None for the acta."""
    from pipeline.synth.batch import TEMPLATE_FILE

    path = batch / TEMPLATE_FILE
    return path if path.is_file() else None


def read_training_batch(batch: Path, rundir: Path, config: dict) -> None:
    """Read a batch's sheets into ``rundir`` with the batch's own template (unless already read)."""
    from pipeline.vision import ReadSettings, read_batch

    if (rundir / "pages.csv").is_file():
        return
    log.info("reading the training sheets into %s", rundir)
    settings = cfg.build_settings(ReadSettings, "read", config)
    form = batch_template(batch)
    if form is not None:
        settings = replace(settings, template=str(form), templates=())
    read_batch([batch / "sheets"], rundir, settings)


def make_training_batch(s: AlterationSettings, config: dict, root: Path | None = None,
                        template: Template | None = None) -> tuple[Path, Path]:
    """Generate (or reuse, if already made with these settings) and read the training batch of ``template``
    (default: the acta); returns its folders (under ``data/`` or, given, under ``root``)."""
    from pipeline.synth import generate_batch

    name = training_batch_name(template)
    batch = (root / "synthetic" if root else cfg.SYNTHETIC_DIR) / name
    rundir = (root / "interim" if root else cfg.INTERIM_DIR) / name
    synth = synth_settings(s, template)
    stamp = batch / "alteration_settings.txt"
    wanted = repr(synth.for_manifest())
    if name != ALTERATION_TRAIN_BATCH:  # another form: its template is part of what the batch was made with
        wanted += f"\ntemplate: {template.name} {sorted(portable_raw(template).items())!r}"
    if not (batch / "truth.csv").is_file() or not stamp.is_file() or stamp.read_text() != wanted:
        log.info("generating %d training sheets (seed %d) into %s", s.sheets, s.seed, batch)
        generate_batch(synth, batch, template=None if name == ALTERATION_TRAIN_BATCH else template)
        stamp.write_text(wanted)
        (rundir / "pages.csv").unlink(missing_ok=True)
    read_training_batch(batch, rundir, config)
    return batch, rundir


def default_out(template: Template | None) -> Path:
    """Where ``train-alteration`` saves a form's detector: ``models/alteration/`` for the acta (as always),
    ``models/alteration/<template name>/`` for any other form (where the audit looks for it)."""
    from pipeline.audit.alteration import form_folder
    from pipeline.audit.settings import ALTERATION_DIR

    if template is None or template.name == load_template().name:
        return ALTERATION_DIR
    return form_folder(ALTERATION_DIR, template.name)


def check_out(out: Path, form: str) -> None:
    """Refuse to replace a detector of another form (``models/alteration/`` holds the acta's)."""
    if (out / DETECTOR_JSON).is_file():
        try:
            there = trained_template(load_detector(out))
        except ModelError:  # a corrupt or outdated detector of any form may be replaced
            return
        if there != form:
            raise ConfigError(f"{out}: holds the detector of '{there}', not '{form}'; save this one elsewhere "
                              f"(--out, default {default_out(None)}/<template name>/)")


def train_alteration(s: AlterationSettings, out: Path, config: dict | None = None, template: Template | None = None,
                     batch: Path | None = None, rundir: Path | None = None) -> Detector:
    """The whole ``train-alteration`` command: batch, features, fit, threshold, save to ``out``.

    ``template``: the form to train for (default: the acta; its own batch, ``alteration-train-<name>``, is
    generated and read). ``batch``: take this synthetic batch (``truth.csv``, ``sheets/``, its ``template.yaml``)
    instead of generating one, read into ``rundir`` (default ``data/interim/<batch folder name>``) unless read
    there already.
    """
    if batch is not None:
        rundir = rundir or cfg.INTERIM_DIR / Path(batch).name
        read_training_batch(Path(batch), Path(rundir), config or {})
    else:
        batch, rundir = make_training_batch(s, config or {}, template=template)
    template = run_template(rundir)
    check_out(Path(out), template.name)
    truth = read_truth(batch / "truth.csv", FormSchema.of(template))
    keys, x, y = labelled_fields(rundir, truth)
    if y.sum() < 2 or (~y).sum() < 2:
        raise MissingDataError(f"{rundir}: need altered and clean fields to train on, got {int(y.sum())} altered "
                               f"of {len(y)}; generate more sheets (--sheets)")
    detector = train_on(keys, x, y, truth, s)
    truth_hash = hashlib.sha256((batch / "truth.csv").read_bytes()).hexdigest()
    layouts = field_layouts(template)
    meta = {**detector.metadata, "settings": asdict(s), "training_batch": str(batch), "truth_sha256": truth_hash,
            TEMPLATE_KEY: template.name,
            **({LAYOUTS_KEY: {f: v.to_json() for f, v in layouts.items()}} if layouts else {}),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "package_version": __version__}
    detector = detector.with_threshold(detector.threshold, meta)
    save_detector(detector, out)
    return detector
