"""``python -m pipeline bench --only forms``: reference-image templates on real scans, and the filler-mark check.

Figures (all under the ``forms`` key of ``reports/bench.json``):

* ``real``: the shipped Lampiran template (``c1_2014_lampiran.yaml``) on the real images of the development set
  (``../shared/data/forms/c1_2014/``, its ``truth.csv``): pages registered, pages of the other form rejected,
  the exact value of every high-confidence truth field (a field the truth says is empty is exact when it is read
  empty), wrong values not marked for review, filler marks found in the boxes the truth says hold an X or dash,
  digits taken for filler, the sheets whose own rules fail on the values read, and the rules that fail on each
  sheet on the values read and on the truth's values. Values need the digit model (``models/current``); without
  it only registration, segmentation and the rules on the truth's values are measured.
* ``certificate``: the same figures (``real``, by the same code) for the shipped certificate page's template
  (``c1_2014_certificate.yaml``, its pages of ``truth.csv``; the Lampiran images are the other form's pages).
* ``template_init``: ``template init`` (:mod:`pipeline.forms.init`, resolution guessed as a user's run would) on
  the shipped templates' reference images: the boxes found / missed / spurious against each shipped template's
  (matched one to one at intersection over union >= 0.5), their mean overlap, and the fields found; the
  certificate page's figures (``sertifikat_reference.jpg``) under ``certificate``.
* ``filler_synthetic``: X and dash strokes drawn at random (seeded) that the check takes for filler, marks drawn
  in styles its learned part was not fitted on (:func:`pipeline.vision.filler_model.draw_held_out`), and MNIST
  test digits of every class it wrongly takes for filler.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pipeline.forms.template import Template, load_template

log = logging.getLogger(__name__)

#: The shipped templates measured, where their real images live, and the ``form_type`` of their pages in truth.csv.
LAMPIRAN = Path(__file__).with_name("templates") / "c1_2014_lampiran.yaml"
CERTIFICATE = Path(__file__).with_name("templates") / "c1_2014_certificate.yaml"
REAL_DIR = Path("../shared/data/forms/c1_2014")
FORM_TYPE = "lampiran_c1_ppwp_2014"
CERTIFICATE_FORM_TYPE = "c1_ppwp_2014_sertifikat"
#: Truth ``lead`` values that are filler marks the check should find.
FILLER_LEADS = {"x": "x", "dash": "dash"}
#: Synthetic strokes drawn per kind, and MNIST digits per label, for the filler figures.
SYNTH_STROKES, SYNTH_QUICK = 500, 60
MNIST_CONFUSABLE = tuple(range(10))  # every class: a digit taken for filler is a silent error
SEED = 15
#: Height of the box an MNIST digit (20 px tall) would be written in (digits fill about 3/4 of a box).
MNIST_BOX_HEIGHT = 27


def _truth(real_dir: Path, template: Template, form_type: str = FORM_TYPE) -> pd.DataFrame:
    """High-, medium- and low-confidence truth rows of the template's form (``form_type``), with the template's
    field names."""
    truth = pd.read_csv(real_dir / "truth.csv", dtype={"value": "Int64"}, keep_default_na=True)
    truth = truth[truth["form_type"] == form_type].copy()
    by_label = {f.label: f.name for f in template.fields}
    truth["name"] = truth["field"].map(by_label)
    return truth.dropna(subset=["name"])


def _read(path: Path, template: Template, settings):
    from pipeline.vision.page import read_page

    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return read_page(grey, path.stem, settings, template)


def _values(reads: list, template: Template) -> pd.DataFrame | None:
    """Field values of the pages read (``None`` without a digit model)."""
    from pipeline.model.recognise import recognise_frames
    from pipeline.model.recogniser import DigitRecogniser
    from pipeline.model.settings import RecogniseSettings

    try:
        recogniser = DigitRecogniser.load(None, RecogniseSettings().tta_below)
    except Exception as exc:  # a missing or broken model: report what can be measured without it
        log.warning("no digit model (%s): values not measured", exc)
        return None
    crops = pd.DataFrame([c.__dict__ for r in reads for c in r.crops])
    offsets, stacks, n = [], [], 0
    for r in reads:
        offsets += [n] * len(r.crops)
        stacks.append(r.digits)
        n += len(r.digits)
    crops["digit_row"] = np.where(crops["digit_row"] >= 0, crops["digit_row"] + np.array(offsets), -1)
    names = [f.name for f in template.fields if f.is_numeric]
    required = [f.name for f in template.fields if f.is_numeric and f.always_written]
    _, fields = recognise_frames(crops, np.concatenate(stacks), recogniser, RecogniseSettings(), names,
                                 required=required)
    return fields


def _filler_figures(truth: pd.DataFrame, crops: pd.DataFrame) -> dict:
    """Filler marks found in the boxes truth says hold one, and digits the check took for filler."""
    expected, found, digits, as_filler, zero_last, zero_last_filler = 0, 0, 0, 0, 0, 0
    for row in truth.itertuples():
        cells = crops[(crops["sheet_id"] == Path(row.image).stem) & (crops["field"] == row.name)
                      & (crops["box"] >= 0)]
        if cells.empty or pd.isna(row.value):
            continue
        n_boxes = int(cells["box"].max()) + 1
        n_lead = n_boxes - len(str(int(row.value)))
        for box in range(n_boxes):
            marked = bool((cells[cells["box"] == box]["filler"] != "").any())
            if box < n_lead and row.lead in FILLER_LEADS:
                expected += 1
                found += marked
            elif box >= n_lead:
                digits += 1
                as_filler += marked
                if row.value == 0 and row.lead in FILLER_LEADS:  # X-X-X or X-X-0: truth does not say which
                    zero_last += 1
                    zero_last_filler += marked
    return {"filler_boxes": expected, "filler_found": found,
            "filler_recall": round(found / expected, 4) if expected else None,
            "digit_boxes": digits, "digits_taken_for_filler": as_filler,
            "of_which_last_box_of_a_zero_after_filler": f"{zero_last_filler}/{zero_last}"}


def failing_rules(wide: pd.DataFrame, template: Template) -> dict[str, list[str]]:
    """The names of the template's rules that fail on each sheet of ``wide`` (one row per sheet, a column per
    field; a rule with an empty value is not evaluated), for the sheets where one fails."""
    from pipeline.forms.semantics import rule_engine

    engine = rule_engine()
    names = [f.name for f in template.fields if f.is_numeric]
    wide = wide.reindex(columns=names).astype("Float64")
    failing: dict[str, list[str]] = {}
    for rule in template.rules:
        result = engine.evaluate(engine.parse_rule(rule.text), wide, template.rule_bindings(), rule.tolerance or 0)
        for sheet in wide.index[np.asarray(result.failed, bool)]:
            failing.setdefault(str(sheet), []).append(rule.name)
    return dict(sorted(failing.items()))


def real_report(real_dir: Path, template: Template, settings, form_type: str = FORM_TYPE) -> dict:
    """Figures of the template on the real images of ``real_dir`` whose ``truth.csv`` form is ``form_type`` (module
    docstring); the other images are the other form's pages, which the template must reject."""
    truth = _truth(real_dir, template, form_type)
    truth = truth.assign(sheet_id=truth["image"].map(lambda s: Path(s).stem))
    form_images = sorted(set(truth["image"]))
    others = sorted(p.name for p in real_dir.glob("*.jpg") if p.name not in form_images)
    _read(real_dir / form_images[0], template, settings)  # builds the reference model once, outside the timing
    reads, seconds = {}, []
    for name in form_images + others:
        start = time.perf_counter()
        reads[name] = _read(real_dir / name, template, settings)
        seconds.append(time.perf_counter() - start)
    ok = [n for n in form_images if reads[n].status == "ok"]
    out = {"images": len(form_images), "registered": len(ok),
           "not_registered": {n: reads[n].reason for n in form_images if n not in ok},
           "other_form_images": len(others),
           "other_form_rejected": sum(reads[n].status == "not_a_form" for n in others),
           "seconds_per_page_median": round(float(np.median(seconds)), 3),
           "registration_scores": {n: reads[n].score for n in form_images},
           "line_agreement": {n: reads[n].line_agreement for n in form_images}}
    good = [reads[n] for n in ok]
    crops = pd.DataFrame([c.__dict__ for r in good for c in r.crops])
    out.update(_filler_figures(truth, crops))
    out["rules_failing_on_truth_values"] = failing_rules(
        truth.pivot(index="sheet_id", columns="name", values="value"), template)
    values = _values(good, template)
    if values is None:
        out["values"] = "not measured: no digit model at models/current"
        return out
    merged = truth.merge(values[["sheet_id", "field", "value", "needs_review", "text"]].rename(
        columns={"field": "name", "value": "read"}), on=["sheet_id", "name"], how="left")
    # exact: the value read, or an empty field read empty (no digit, no mark)
    merged["exact"] = ((merged["read"] == merged["value"]).fillna(False)
                       | (merged["value"].isna() & merged["read"].isna() & (merged["text"] == ""))).astype(bool)
    high = merged[merged["confidence"] == "high"]
    exact = high["exact"]
    wrong = high[~exact & high["text"].notna()]
    failing = failing_rules(values.pivot(index="sheet_id", columns="field", values="value"), template)
    out.update(high_confidence_fields=len(high), exact=int(exact.sum()),
               exact_rate=round(float(exact.mean()), 4) if len(high) else None,
               marked_for_review=int(high["needs_review"].fillna(True).astype(bool).sum()),
               wrong_not_marked=int((~wrong["needs_review"].astype(bool)).sum()),
               all_fields=len(merged), all_exact=int(merged["exact"].sum()),
               exact_by_confidence={c: f"{int(g['exact'].sum())}/{len(g)}"
                                    for c, g in merged.groupby("confidence", sort=False)},
               misreads=[f"{r.sheet_id}/{r.name}: truth {r.value}, read {r.text!r}"
                         f"{' (review)' if r.needs_review else ''}"
                         for r in merged.itertuples() if not r.exact],
               rule_fails_on_read_values=list(failing), rules_failing_on_read_values=failing)
    return out


def draw_stroke(kind: str, rng: np.random.Generator, side: int = 64) -> np.ndarray:
    """A boolean ``side`` x ``side`` box with a hand-drawn X or dash (random size, slant, thickness, wobble)."""
    img = np.zeros((side, side), np.uint8)
    t = int(rng.integers(2, 6))
    c = side / 2 + rng.normal(0, side * 0.04, 2)
    if kind == "dash":
        half = side * rng.uniform(0.18, 0.35)
        tilt = rng.normal(0, 0.08)
        p0 = (c[0] - half, c[1] - half * tilt)
        p1 = (c[0] + half, c[1] + half * tilt)
        cv2.line(img, tuple(map(round, p0)), tuple(map(round, p1)), 255, t)
        return img > 0
    hw, hh = side * rng.uniform(0.2, 0.38), side * rng.uniform(0.25, 0.4)
    for sign in (1, -1):
        j = rng.normal(0, side * 0.03, 4)
        p0 = (c[0] - hw + j[0], c[1] - sign * hh + j[1])
        p1 = (c[0] + hw + j[2], c[1] + sign * hh + j[3])
        mid = ((p0[0] + p1[0]) / 2 + rng.normal(0, side * 0.03), (p0[1] + p1[1]) / 2 + rng.normal(0, side * 0.03))
        pts = np.array([p0, mid, p1]).round().astype(np.int32)
        cv2.polylines(img, [pts], False, 255, t)
    return img > 0


def _cropped(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return mask[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]


def synthetic_filler_report(n: int, marks: tuple[str, ...]) -> dict:
    """Drawn X and dash strokes taken for filler, and MNIST test digits wrongly taken for filler."""
    from pipeline.mnist import load_mnist
    from pipeline.vision.filler import filler_kind
    from pipeline.vision.filler_model import HELD_OUT_STYLES, box_height_of, draw_held_out

    rng = np.random.default_rng(SEED)
    out: dict = {}
    for kind in ("x", "dash"):
        hits = sum(filler_kind(_cropped(draw_stroke(kind, rng)), 64, marks) == kind for _ in range(n))
        out[f"{kind}_drawn"], out[f"{kind}_found"] = n, hits
    for style in HELD_OUT_STYLES:
        masks = [draw_held_out(style, rng) for _ in range(n)]
        hits = sum(filler_kind(m, box_height_of(m), marks) == style.rsplit("_", 1)[1] for m in masks)
        out[f"{style}_drawn"], out[f"{style}_found"] = n, hits
    mnist = load_mnist()
    images, labels = mnist.x_test, mnist.y_test
    for label in MNIST_CONFUSABLE:
        idx = np.flatnonzero(labels == label)
        wrong = sum(bool(filler_kind(_cropped(images[i] > 96), MNIST_BOX_HEIGHT, marks)) for i in idx)
        out[f"mnist_{label}"], out[f"mnist_{label}_taken_for_filler"] = len(idx), wrong
    return out


#: The certificate page's reference image, measured by ``template init`` too.
CERTIFICATE_REFERENCE = "sertifikat_reference.jpg"


def init_figures(reference: Path, template: Template | None) -> dict:
    """``template init`` on ``reference``: the fields and boxes it finds, and, given the template shipped for it,
    its boxes found / missed / spurious against that template's (:func:`pipeline.forms.init.compare_boxes`)."""
    from pipeline.forms.init import compare_boxes, find_fields, guess_dpi, template_px_boxes

    grey = cv2.imread(str(reference), cv2.IMREAD_GRAYSCALE)
    start = time.perf_counter()
    fields = find_fields(grey, guess_dpi(grey.shape))
    out = {"reference": reference.name, "seconds": round(time.perf_counter() - start, 3),
           "fields_found": len(fields), "boxes_found": sum(len(f.boxes) for f in fields),
           "boxes_per_field": sorted({len(f.boxes) for f in fields})}
    if template is not None:
        out |= {"template_fields": len(template.fields),
                **compare_boxes([b for f in fields for b in f.boxes], template_px_boxes(template))}
    return out


def template_init_report(template: Template, real_dir: Path = REAL_DIR) -> dict:
    """``template init`` on the reference image of ``template`` (and on the certificate page's, against the shipped
    certificate template): module docstring."""
    out = init_figures(template.reference, template)
    other = real_dir / CERTIFICATE_REFERENCE
    if other.is_file():
        out["certificate"] = init_figures(other, load_template(CERTIFICATE))
    return out


def run_bench(config: dict, quick: bool) -> dict:
    """The ``forms`` figures (module docstring); the real-image part is skipped when the images are absent."""
    from pipeline.config import build_settings
    from pipeline.vision.settings import ReadSettings

    template = load_template(LAMPIRAN)
    settings = build_settings(ReadSettings, "read", config)
    result: dict = {"template": template.name,
                    "filler_synthetic": synthetic_filler_report(SYNTH_QUICK if quick else SYNTH_STROKES,
                                                                template.filler_marks)}
    if template.reference is not None:
        result["template_init"] = template_init_report(template)
    else:
        result["template_init"] = "skipped: the reference image is absent"
    if (REAL_DIR / "truth.csv").is_file() and template.reference is not None:
        result["real"] = real_report(REAL_DIR, template, settings)
    else:
        result["real"] = f"skipped: {REAL_DIR} or the reference image is absent"
    certificate = load_template(CERTIFICATE)
    if (REAL_DIR / "truth.csv").is_file() and certificate.reference is not None:
        result["certificate"] = {"template": certificate.name,
                                 "real": real_report(REAL_DIR, certificate, settings, CERTIFICATE_FORM_TYPE)}
    else:
        result["certificate"] = f"skipped: {REAL_DIR} or the reference image is absent"
    return result
