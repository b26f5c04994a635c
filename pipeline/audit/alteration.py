"""The visible-alteration detector (the Cantu check): a score per count field image and per sheet.

Two scores over the hand-made features of :mod:`features`, and a field's score is the higher of the two:

* a small neural network (scikit-learn's ``MLPClassifier``) trained on synthetic altered and clean fields by
  ``python -m pipeline train-alteration``: it knows the tampering styles it was shown;
* a novelty score (:class:`Novelty`) fitted on the clean fields alone: how far the field's most unusual feature
  lies beyond what honest fields show, in units of the clean fields' own upper spread. It knows no tampering
  style, so a style the network never saw still scores high when it leaves any trace the features measure (more
  junctions, a covered box line, grey smudge, hatching, a straight stroke through the boxes, ...). A discriminative
  network alone scores an unseen style as clean (leave-one-style-out recall near 0 on our own four kinds).

It is stored without pickle: ``detector.npz`` holds the standardisation, the weight arrays and the novelty centre
and spread (loaded with ``allow_pickle=False``) and ``detector.json`` the feature names, settings, the sheet-level
threshold and the validation metrics; scoring is plain NumPy. A sheet's score is the highest of its fields' scores.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.atomic import savez_atomic, write_text_atomic
from pipeline.audit.features import (
    ACTA_LAYOUT,
    FEATURES_VERSION,
    FieldLayout,
    feature_names,
    field_features,
    read_field_image,
)
from pipeline.audit.flags import Flag
from pipeline.audit.schema import OK_STATUS, FormSchema
from pipeline.audit.settings import AlterationSettings
from pipeline.engine.pool import process_context, resolve_workers
from pipeline.errors import InputFileError, ModelError
from pipeline.progress import SettledBar

log = logging.getLogger(__name__)

RULE = "visible_alteration"
DETECTOR_JSON = "detector.json"
DETECTOR_NPZ = "detector.npz"
#: Sheets scoring at least this are ``high`` severity, below it (but over the threshold) ``medium``.
HIGH_SCORE = 0.9
#: Field images below which features are computed in this process (a pool costs ~1 s to start).
PARALLEL_MIN_FIELDS = 500
#: Field images per task sent to a worker.
FEATURE_CHUNK = 64
#: Key of ``detector.json`` holding the box layout of each count field of the form it was trained on.
LAYOUTS_KEY = "field_layouts"
#: Paper measures (feature names or box measure prefixes) left out of the novelty score.
NOVELTY_PAPER_MEASURES = ("grey", "paper_drop", "paper_texture", "paper_std", "bright", "flat")
#: Key of ``detector.json`` holding the :data:`pipeline.audit.features.FEATURES_VERSION` it was trained on, and the
#: version assumed for a detector saved before the key existed.
FEATURES_VERSION_KEY = "features_version"
LEGACY_FEATURES_VERSION = 1
#: Key of ``detector.json`` saying what the detector's inputs are (setting ``alteration.inputs``); a detector
#: saved before the key existed took each field's own features.
INPUTS_KEY = "inputs"
SHEET_RELATIVE = "sheet_relative"
FIELD_INPUTS = "field"
#: Fewest count fields a form needs for sheet-relative inputs: with one or two, a field's median neighbour is
#: itself or half of it, and the relative features say nothing.
MIN_RELATIVE_FIELDS = 3
#: Smallest novelty span of a feature and smallest novelty level ``at`` (features are fractions, counts and ratios).
NOVELTY_MIN_SPAN = 1e-3


@dataclass(frozen=True)
class Novelty:
    """How far a field lies beyond the clean fields: ``level = max over features of (x - centre) / span``.

    ``centre`` is the clean fields' median of each feature and ``span`` its upper spread (see
    :func:`fit_novelty`). Below the level ``at`` the score is 0, so the network alone decides there and honest
    variation adds no noise to its scores; from ``at`` it rises from 0.5 towards 1 (``level = 2 * at`` scores
    ``1 - exp(-slope) / 2``).
    """

    centre: np.ndarray
    span: np.ndarray
    at: float
    slope: float

    def level(self, x: np.ndarray) -> np.ndarray:
        """The novelty level of each row of ``x`` (row by row, element-wise: independent of the other rows)."""
        return ((np.asarray(x, float) - self.centre) / self.span).max(axis=1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Score in [0, 1) of each row of ``x``: 0 below level ``at``, 0.5 at it, rising towards 1 past it."""
        past = self.level(x) / self.at - 1.0
        return np.where(past >= 0, 1.0 - 0.5 * np.exp(-self.slope * np.maximum(past, 0.0)), 0.0)


@dataclass(frozen=True)
class Detector:
    """Standardisation, MLP weights (ReLU hidden layers, logistic output), the sheet-level threshold and the
    novelty score (``None``: the network alone)."""

    mean: np.ndarray
    scale: np.ndarray
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    threshold: float
    metadata: dict
    novelty: Novelty | None = None
    #: The folder it was loaded from (None: not loaded from files); per-form detectors lie in its subfolders.
    folder: Path | None = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probability that each row of features ``x`` comes from an altered field.

        Each row's score depends on that row alone, to the last bit, however many rows come with it (see
        :func:`dense`): scoring a batch whole or chunk by chunk gives the same files.
        """
        h = (np.asarray(x, float) - self.mean) / self.scale
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = np.maximum(dense(h, w, b), 0.0)
        z = dense(h, self.weights[-1], self.biases[-1]).ravel()
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))
        return p if self.novelty is None else np.maximum(p, self.novelty.predict(x))

    @property
    def sheet_relative(self) -> bool:
        """Whether it was trained on sheet-relative inputs (:func:`sheet_relative`)."""
        return self.metadata.get(INPUTS_KEY, FIELD_INPUTS) == SHEET_RELATIVE

    def score(self, sheet_ids: np.ndarray | pd.Series, x: np.ndarray) -> np.ndarray:
        """Probability that each field (row of raw features ``x``, of the sheet ``sheet_ids`` names) is altered,
        after turning the features into the inputs it was trained on (:func:`model_inputs`). Pass every scored
        field of a sheet together: with sheet-relative inputs a field is judged against its sheet's other fields."""
        return self.predict(model_inputs(sheet_ids, x, self.sheet_relative))

    def with_threshold(self, threshold: float, metadata: dict) -> Detector:
        """The same detector with another sheet-level threshold and metadata."""
        return Detector(self.mean, self.scale, self.weights, self.biases, threshold, metadata, self.novelty,
                        self.folder)

    def layouts(self, fields: tuple[str, ...]) -> dict[str, FieldLayout] | None:
        """The box layout of each of ``fields`` on the form it was trained on (``detector.json`` key
        :data:`LAYOUTS_KEY`); a field it does not know, and every field of a detector that records none (the
        acta's, saved before layouts were recorded), gets the acta's. None when every field has the acta's."""
        known = {f: FieldLayout.from_json(v) for f, v in (self.metadata.get(LAYOUTS_KEY) or {}).items()}
        out = {f: known.get(f, ACTA_LAYOUT) for f in fields}
        return None if all(v == ACTA_LAYOUT for v in out.values()) else out


def sheet_relative(sheet_ids: np.ndarray | pd.Series, x: np.ndarray) -> np.ndarray:
    """Each row of ``x`` less the median, feature by feature, of the rows of the same sheet (``sheet_ids``).

    Why: scan damage (ink bleed, banding, shadow), the pen and the writer's hand move every field of a sheet
    alike, while a tampering moves the one or two fields it touched. Judged against its own sheet, a heavily bled
    but honest field looks like its neighbours; an overwritten one still stands out. The median is exact (no
    summation order), so the result does not depend on how rows are batched, only on which fields of the sheet
    come together.
    """
    x = np.asarray(x, float)
    if not len(x):
        return x
    medians = pd.DataFrame(x).groupby(np.asarray(sheet_ids), sort=False).transform("median").to_numpy()
    return x - medians


def model_inputs(sheet_ids: np.ndarray | pd.Series, x: np.ndarray, relative: bool) -> np.ndarray:
    """The detector's inputs from raw field features: :func:`sheet_relative` when ``relative``, else ``x``."""
    return sheet_relative(sheet_ids, x) if relative else np.asarray(x, float)


def uses_sheet_relative(s: AlterationSettings, n_count_fields: int) -> bool:
    """Whether a detector for a form with ``n_count_fields`` count fields trains on sheet-relative inputs."""
    return s.inputs == SHEET_RELATIVE and n_count_fields >= MIN_RELATIVE_FIELDS


def dense(h: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``h @ w + b``, summed over the inputs in their order, one input at a time, with plain element-wise
    operations.

    ``h @ w`` goes to BLAS, whose kernels (and so the order and fusion of the additions) change with the number of
    rows: one sheet scored alone and in a chunk of a hundred differed in the 17th significant digit, enough to
    change a file. Element-wise products and sums are rounded the same way for any number of rows.
    """
    out = np.zeros((h.shape[0], w.shape[1]))
    for i in range(w.shape[0]):
        out += h[:, i:i + 1] * w[i]
    return out + b


def novelty_features() -> np.ndarray:
    """Which features the novelty score looks at: all but those of the paper itself (grey, smudge, brightness,
    flatness, texture), which scan damage never seen in training (toner banding, shadows, faded copies) moves as
    much as an eraser or fluid does. The network still sees them, with the damage it was trained on."""
    paper = NOVELTY_PAPER_MEASURES
    return np.array([name not in paper and not name.split("_", 1)[-1].startswith(paper) for name in feature_names()])


def fit_novelty(clean: np.ndarray, s: AlterationSettings) -> Novelty:
    """The novelty score of :class:`Novelty` fitted on the features of clean fields.

    A feature's span is the distance from its median to its ``novelty_tail`` quantile, at least its interquartile
    range and ``novelty_min_std`` of its standard deviation (so a feature that is almost always 0 on clean fields,
    such as ink beside the boxes, is not divided by ~0). ``at`` is the level that only ``novelty_field_fpr`` of
    the clean fields reach.
    """
    centre = np.median(clean, axis=0)
    q25, q75, tail = np.quantile(clean, [0.25, 0.75, s.novelty_tail], axis=0)
    span = np.maximum.reduce([tail - centre, q75 - q25, s.novelty_min_std * clean.std(axis=0),
                              np.full(clean.shape[1], NOVELTY_MIN_SPAN)])
    if clean.shape[1] == len(feature_names()):  # the paper measures take no part
        span = np.where(novelty_features(), span, np.inf)
    novelty = Novelty(centre, span, 1.0, s.novelty_slope)
    at = float(np.quantile(novelty.level(clean), 1.0 - s.novelty_field_fpr))
    return Novelty(centre, span, max(at, NOVELTY_MIN_SPAN), s.novelty_slope)


def fit_detector(x: np.ndarray, y: np.ndarray, s: AlterationSettings) -> Detector:
    """Fit the standardisation and the MLP on field features ``x`` and labels ``y``, and the novelty score on the
    clean fields (when ``s.novelty``); the threshold is 0.5 until chosen."""
    # scikit-learn is imported here, not with the module: scoring needs none of it, and every feature worker
    # imports this module, so a module-level import would cost each audit worker most of a second
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    mlp = MLPClassifier(hidden_layer_sizes=s.hidden_units, alpha=s.l2, max_iter=s.max_iter,
                        random_state=s.random_state, early_stopping=False)
    with warnings.catch_warnings():  # running out of iterations is expected with early stopping off
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit((x - scaler.mean_) / scale, y.astype(int))
    novelty = fit_novelty(x[~y.astype(bool)], s) if s.novelty else None
    return Detector(scaler.mean_, scale, tuple(mlp.coefs_), tuple(mlp.intercepts_), 0.5, {}, novelty)


def choose_threshold(scores: np.ndarray, labels: np.ndarray, target_recall: float) -> tuple[float, float, float]:
    """The threshold with the best precision among those keeping recall >= ``target_recall``.

    Returns ``(threshold, precision, recall)`` at that threshold; ties go to the highest threshold.
    """
    from sklearn.metrics import precision_recall_curve  # training only; see fit_detector

    precision, recall, thresholds = precision_recall_curve(labels.astype(int), scores)
    ok = np.flatnonzero(recall[:-1] >= target_recall)
    best = ok[np.argmax(precision[ok] + 1e-12 * ok)]  # among equal precisions, the later (higher) threshold
    return float(thresholds[best]), float(precision[best]), float(recall[best])


def save_detector(detector: Detector, folder: Path) -> Path:
    """Write ``detector.npz`` (arrays) and ``detector.json`` (metadata, threshold) into ``folder``; returns the JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"mean": detector.mean, "scale": detector.scale}
    arrays.update({f"w{i}": w for i, w in enumerate(detector.weights)})
    arrays.update({f"b{i}": b for i, b in enumerate(detector.biases)})
    novelty = {}
    if detector.novelty is not None:
        arrays.update({"novelty_centre": detector.novelty.centre, "novelty_span": detector.novelty.span})
        novelty = {"novelty_at": detector.novelty.at, "novelty_slope": detector.novelty.slope}
    savez_atomic(folder / DETECTOR_NPZ, arrays)
    meta = {**detector.metadata, "threshold": detector.threshold, "n_layers": len(detector.weights),
            "feature_names": feature_names(), FEATURES_VERSION_KEY: FEATURES_VERSION, "model_file": DETECTOR_NPZ,
            **novelty}
    return write_text_atomic(folder / DETECTOR_JSON, json.dumps(meta, indent=2, sort_keys=True))


#: Verdict of the Cantu comparison, and what the report says, when the audit ran without the alteration check.
NO_CHECK = "the visible-alteration check was off (--no-alteration): no sheet can be found altered"
#: Key of ``detector.json`` naming the form template whose field images the detector was trained on, and the
#: template assumed for a detector saved before the key existed (every one was trained on the acta).
TEMPLATE_KEY = "template"
LEGACY_TEMPLATE = "acta1988"


def trained_template(detector: Detector) -> str:
    """The name of the form template whose field images ``detector`` was trained on (``detector.json`` key
    :data:`TEMPLATE_KEY`; :data:`LEGACY_TEMPLATE` for a detector saved before it was recorded)."""
    return str(detector.metadata.get(TEMPLATE_KEY) or LEGACY_TEMPLATE)


def not_applicable(detector: Detector, form: str, force: bool = False) -> str | None:
    """Why ``detector`` does not score the sheets of the form template named ``form``, or None when it does.

    A detector knows the ink, boxes and paper of the form it was trained on: on another form's field images its
    features lie outside what it saw and it calls honest sheets altered (every real Lampiran sheet scored 1.00
    with the acta's detector). ``force`` (setting ``audit.alteration_any_form``) scores them nonetheless.
    """
    trained = trained_template(detector)
    if force or trained == form:
        return None
    return (f"the visible-alteration detector was trained on '{trained}' sheets, not '{form}': its scores do not "
            f"apply to this form, so no sheet of it was scored or can be found altered (train one on '{form}', "
            "or set audit.alteration_any_form to score anyway)")


def form_folder(folder: Path, form: str) -> Path:
    """Where the detector of the form template named ``form`` lies under a detector folder (``models/alteration/``
    holds the acta's; ``train-alteration --form`` saves another form's in ``models/alteration/<name>/``)."""
    return Path(folder) / form


def for_form(detector: Detector, form: str, force: bool = False) -> tuple[Detector | None, str | None]:
    """The detector that scores the sheets of the form template named ``form``: ``detector`` when it was trained
    on that form, else the one trained on it in the subfolder ``form`` of the folder ``detector`` was loaded from
    (:func:`form_folder`), else ``detector`` itself only with ``force``; and why no sheet is scored (None when one
    is). A subfolder detector trained on another form is refused (ModelError)."""
    if trained_template(detector) == form:
        return detector, None
    if detector.folder is not None and (form_folder(detector.folder, form) / DETECTOR_JSON).is_file():
        own = load_detector(form_folder(detector.folder, form))
        if trained_template(own) != form:
            raise ModelError(f"{form_folder(detector.folder, form)}: this detector was trained on "
                             f"'{trained_template(own)}' sheets, not '{form}'; retrain it with "
                             f"`python -m pipeline train-alteration --form TEMPLATE`")
        return own, None
    skipped = not_applicable(detector, form, force)
    return (detector if skipped is None else None), skipped


def load_detector(folder: Path) -> Detector:
    """The detector saved in ``folder``.

    Raises:
        ModelError: there is no detector in ``folder`` (without it no altered sheet is found, so the audit does not
            go on silently), or its files are corrupt or do not match this code's features.
    """
    meta_path, npz_path = folder / DETECTOR_JSON, folder / DETECTOR_NPZ
    if not meta_path.is_file():
        raise ModelError(f"{folder}: no alteration detector; train one with `python -m pipeline train-alteration` "
                         f"(about 3 min), or audit without the visible-alteration check with --no-alteration")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        with np.load(npz_path, allow_pickle=False) as z:
            n = int(meta["n_layers"])
            novelty = (Novelty(z["novelty_centre"], z["novelty_span"], float(meta["novelty_at"]),
                               float(meta["novelty_slope"])) if "novelty_at" in meta else None)
            detector = Detector(z["mean"], z["scale"], tuple(z[f"w{i}"] for i in range(n)),
                                tuple(z[f"b{i}"] for i in range(n)), float(meta["threshold"]), meta, novelty,
                                Path(folder))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{folder}: cannot load the alteration detector ({exc})") from exc
    if meta.get("feature_names") != feature_names() or detector.mean.shape != (len(feature_names()),):
        raise ModelError(f"{meta_path}: detector was trained on other features; retrain with "
                         "`python -m pipeline train-alteration`")
    version = meta.get(FEATURES_VERSION_KEY, LEGACY_FEATURES_VERSION)
    if version != FEATURES_VERSION:
        raise ModelError(f"{meta_path}: detector was trained on features computed by version {version} of the "
                         f"feature code, this code computes version {FEATURES_VERSION}; retrain with "
                         "`python -m pipeline train-alteration`")
    return detector


def field_image_path(rundir: Path, sheet_id: str, field: str) -> Path:
    """Where the reader wrote a field's image (docs/DATA.md section 2)."""
    return rundir / "fields" / sheet_id / f"{field}.png"


def path_features(path: Path, layout: FieldLayout = ACTA_LAYOUT) -> np.ndarray | None:
    """Features of one field image (its boxes laid out as ``layout``), or ``None`` (with a warning) when it is
    missing or unreadable."""
    if not path.is_file():
        return None
    try:
        return field_features(read_field_image(path), layout)
    except InputFileError as exc:
        log.warning("%s", exc)
        return None


def feature_pool(n_fields: int) -> AbstractContextManager[Executor | None]:
    """A process pool over every core for the features of ``n_fields`` images, or ``None`` (features computed in
    this process) when there is one core or too few images to pay for starting the workers.

    Callers that score a batch in chunks open one pool for all of them: each start costs the workers' imports.
    """
    workers = resolve_workers(0, n_fields)
    if n_fields < PARALLEL_MIN_FIELDS or workers == 1:
        return nullcontext(None)
    return ProcessPoolExecutor(workers, mp_context=process_context())


def map_features(paths: list[Path], pool: Executor | None = None,
                 layouts: list[FieldLayout] | None = None) -> list[np.ndarray | None]:
    """:func:`path_features` of every path, in order, on ``pool``; without one, on a :func:`feature_pool` of
    their own, with a progress bar (the features are pure NumPy/OpenCV on one image each). A caller that passes
    its pool shares it over many calls and shows its own progress. ``layouts``: each image's field layout (None:
    the acta's for all)."""
    args = (paths,) if layouts is None else (paths, layouts)
    if pool is not None:
        return list(pool.map(path_features, *args, chunksize=FEATURE_CHUNK))
    with feature_pool(len(paths)) as own:
        results = map(path_features, *args) if own is None else own.map(path_features, *args,
                                                                         chunksize=FEATURE_CHUNK)
        return list(SettledBar(results, desc="alteration features", unit="field", total=len(paths),
                         disable=len(paths) < PARALLEL_MIN_FIELDS))


def feature_matrix(rundir: Path, sheet_ids: list[str], count_fields: tuple[str, ...],
                   pool: Executor | None = None, layouts: dict[str, FieldLayout] | None = None
                   ) -> tuple[pd.DataFrame, np.ndarray]:
    """Features of every count field image (``count_fields``: the form's) of ``sheet_ids``: ``(keys, x)`` with keys
    ``sheet_id, field``; computed on ``pool`` (see :func:`map_features`). Each field's features come from its own
    image alone, its boxes laid out as ``layouts[field]`` (None: the acta's).

    A missing or unreadable image is skipped with a warning (its field gets no score), never fatal.
    """
    pairs = [(sid, f) for sid in sheet_ids for f in count_fields]
    features = map_features([field_image_path(rundir, sid, f) for sid, f in pairs], pool,
                            None if layouts is None else [layouts[f] for _, f in pairs])
    kept = [(key, x) for key, x in zip(pairs, features, strict=True) if x is not None]
    frame = pd.DataFrame([key for key, _ in kept], columns=["sheet_id", "field"], dtype="string")
    if not kept:
        return frame, np.zeros((0, len(feature_names())))
    return frame, np.vstack([x for _, x in kept])


def score_fields(rundir: Path, sheet_ids: list[str], detector: Detector, count_fields: tuple[str, ...],
                 pool: Executor | None = None) -> pd.DataFrame:
    """``sheet_id, field, score`` for every readable count field image (features on ``pool``, see
    :func:`map_features`)."""
    keys, x = feature_matrix(rundir, sheet_ids, count_fields, pool, detector.layouts(count_fields))
    return keys.assign(score=detector.score(keys["sheet_id"], x) if len(x) else np.zeros(0))


def score_column(field: str) -> str:
    """Column of the sheet table holding ``field``'s alteration score (``pri_alteration``)."""
    return f"{field}_alteration"


def apply_detector(table: pd.DataFrame, detector: Detector | None, rundir: Path, out: Path, schema: FormSchema,
                   pool: Executor | None = None) -> tuple[pd.DataFrame, list[Flag]]:
    """Add per-field scores (the form's count fields), ``alteration_score`` (max) and ``altered`` to the table, and
    flag altered sheets (features on ``pool``, see :func:`map_features`)."""
    table = table.copy()
    counts = schema.count_fields
    ok = [str(s) for s in table.index[table["status"] == OK_STATUS]]
    scores = score_fields(rundir, ok, detector, counts, pool) if detector is not None and ok else None
    wide = scores.pivot(index="sheet_id", columns="field", values="score") if scores is not None else None
    for f in counts:
        has = wide is not None and f in wide
        table[score_column(f)] = wide[f].reindex(table.index).astype(float) if has else np.nan
    table["alteration_score"] = table[[score_column(f) for f in counts]].max(axis=1, skipna=True)
    threshold = detector.threshold if detector is not None else np.nan
    table["altered"] = (table["alteration_score"] >= threshold).astype("boolean").where(
        table["alteration_score"].notna())
    altered = table[table["altered"].fillna(False).astype(bool)]
    flags = [alteration_flag(sid, row, threshold, rundir, out, schema) for sid, row in altered.iterrows()]
    return table, flags


def alteration_flag(sheet_id, row: pd.Series, threshold: float, rundir: Path, out: Path, schema: FormSchema) -> Flag:
    """The ``altered`` flag of one sheet: its fields scoring over the threshold, highest first, with images."""
    scores = {f: float(row[score_column(f)]) for f in schema.count_fields if pd.notna(row[score_column(f)])}
    hits = sorted((f for f, v in scores.items() if v >= threshold), key=lambda f: -scores[f])
    named = ", ".join(f"{schema.display_name(f)} (score {scores[f]:.2f})" for f in hits)
    reason = (f"{named} look{'s' if len(hits) == 1 else ''} altered (threshold {threshold:.2f}): the image shows "
              "traces such as overwriting, erasure, correction fluid or a crossed-out number; see the field image")
    images = {f: os.path.relpath(field_image_path(rundir, str(sheet_id), f), out) for f in hits}
    return Flag(str(sheet_id), tuple(hits), RULE, "high" if row["alteration_score"] >= HIGH_SCORE else "medium",
                "altered", reason, {"scores": scores, "threshold": threshold, "images": images,
                                    "values": {f: row.get(f) for f in hits}})
