"""Benchmark of the reader on synthetic sheets with ground truth (``python -m pipeline bench --only vision``).

Two synthetic batches are generated into a temporary folder and read through the file contract:

* ``artefacts``: the generator's full artefact range (rotation, perspective, shift, crop, lighting, stains, folds,
  stamps, noise, blur, JPEG) with scans at 150, 200 and 300 dpi and one sheet in ten upside down. It measures
  registration (against the generator's true homography), digit-count segmentation on clean fields, and the
  normalisation check: a fixed reference classifier trained on MNIST-train (PCA + k-NN, sklearn, seeded) scored
  on MNIST-test and on the sheet crops (labels from ``boxes.csv``); for diagnosis also on the crops of the same
    batch read without writer normalisation, on the MNIST originals of the very digits on the sheets, on MNIST-
  test digits enlarged and normalised back (the normalisation alone), and
  on the same after the generator's pen restyled them (slant, stroke width, squeeze: what the sheets add before
  any scanning).
* ``field_conditions``: registration under phone-photo and photocopy conditions, once per style group of the
  generator (``train`` and the ``heldout`` group kept out of every choice of setting): corner shifts up to 5% of
  the page, curl, bleed, banding, shadows, any quarter turn, at 150-300 dpi, on seeds of their own. Besides the
  share registered right it counts the pages kept as ``ok`` in a wrong orientation or place (target 0) and the
  pages refused as ``orientation_uncertain``.
* ``speed``: 200 dpi scans read with 2 worker processes; wall-clock throughput (the pool's start included), and
  CPU seconds per sheet, i.e. the throughput two free cores would give (the machine may be shared).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from pipeline.config import build_settings
from pipeline.forms.template import MM_PER_INCH, Template, load_template
from pipeline.mnist import Mnist, load_mnist
from pipeline.vision.batch import read_batch
from pipeline.vision.normalise import to_mnist
from pipeline.vision.settings import BOX_EMPTY, OK, ReadSettings
from pipeline.vision.unbend import Displacement

log = logging.getLogger(__name__)

SEED = 20_26
ARTEFACT_DPIS = (150, 200, 300)
UPSIDE_DOWN_RATE = 0.1
SPEED_DPI = 200
SPEED_WORKERS = 2
#: A page counts as registered when every box corner lands within this distance of where the template has it.
REGISTRATION_TOLERANCE_MM = 0.25
CLEAN_KINDS = ("none", "fabricated")
#: Side (px) of an MNIST frame enlarged to a written digit's size on a 200 dpi scan (box 9 mm, digit ~75 %).
SCAN_DIGIT_PX = 75
#: Suffix of the reader's columns where a page row is joined with its truth row (both have ``homography``).
READ_SUFFIX = "_read"
#: Seeds of the field-conditions batches, one per style group (other than every tuning seed).
FIELD_SEEDS = {"train": 3_105, "heldout": 3_305}
#: Field conditions: every page turned a quarter turn with this chance, and corner shifts up to this fraction.
FIELD_QUARTER_TURN_RATE = 0.75
FIELD_PERSPECTIVE = 0.05
#: A page kept ``ok`` whose box corners land this far (mm) from their place was read in a wrong place.
WRONG_PLACE_MM = 5.0
TARGETS = {"registration_success": 0.995, "segmentation_accuracy": 0.995, "crop_accuracy_gap_points": 0.5,
           "sheets_per_s": 20.0}


@dataclass(frozen=True)
class BenchSize:
    """How big the benchmark is (``quick`` is a smoke test of the benchmark itself)."""

    artefact_sheets: int
    speed_sheets: int
    train_digits: int
    test_digits: int

    field_sheets: int


FULL = BenchSize(artefact_sheets=300, speed_sheets=200, train_digits=20_000, test_digits=10_000, field_sheets=500)
QUICK = BenchSize(artefact_sheets=12, speed_sheets=12, train_digits=3_000, test_digits=1_000, field_sheets=12)


def _synth_batch(out: Path, sheets: int, seed: int = SEED, **overrides) -> tuple[Path, dict]:
    """Generate a synthetic batch (the generator is only needed here, never on the read path)."""
    from pipeline.synth import SynthSettings, generate_batch

    settings = SynthSettings(sheets=sheets, seed=seed, workers=SPEED_WORKERS, **overrides)
    generate_batch(settings, out)
    return out, {"sheets": sheets, "seed": seed, **overrides}


def true_placements(truth: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each sheet's placement homography (template pixels at its dpi -> scan pixels), as the generator stored it."""
    return {row.sheet_id: np.array(json.loads(row.homography)).reshape(3, 3) for row in truth.itertuples()}


def _box_corners_mm(template: Template) -> np.ndarray:
    return np.array([(x, y) for f in template.fields for b in f.boxes for x, y in ((b.x, b.y), (b.x + b.w, b.y + b.h))])


def registration_errors_mm(pages: pd.DataFrame, truth: pd.DataFrame, placements: dict[str, np.ndarray],
                           template: Template, settings: ReadSettings) -> pd.Series:
    """Largest box-corner error (mm) of each read page: true placement, then the reader's homography."""
    corners = _box_corners_mm(template)
    merged = pages[pages["status"] == OK].merge(truth[["sheet_id", "dpi"]], on="sheet_id")
    errors = {}
    for row in merged.itertuples():
        scan_tpl = (corners * row.dpi / MM_PER_INCH - 0.5)[None].astype(np.float64)
        scan = cv2.perspectiveTransform(scan_tpl, placements[row.sheet_id])
        read = cv2.perspectiveTransform(scan, np.array(json.loads(row.homography)).reshape(3, 3))[0]
        expected = corners * settings.px_per_mm - 0.5
        errors[row.sheet_id] = float(np.linalg.norm(read - expected, axis=1).max() / settings.px_per_mm)
    return pd.Series(errors, dtype=float)


def registration_report(pages: pd.DataFrame, truth: pd.DataFrame, placements: dict[str, np.ndarray],
                        template: Template, settings: ReadSettings) -> dict:
    """Share of pages read ``ok`` and registered within tolerance, with the error distribution and per-dpi rates."""
    errors = registration_errors_mm(pages, truth, placements, template, settings)
    table = truth[["sheet_id", "dpi", "upside_down"]].merge(pages[["sheet_id", "status", "flipped"]], on="sheet_id")
    table["success"] = table["sheet_id"].map(errors).le(REGISTRATION_TOLERANCE_MM)
    upside = table[table["upside_down"]]
    return {"pages": len(table), "ok": int((table["status"] == OK).sum()), "tolerance_mm": REGISTRATION_TOLERANCE_MM,
            "success_rate": float(table["success"].mean()), "target": TARGETS["registration_success"],
            "error_mm_median": float(errors.median()), "error_mm_p99": float(errors.quantile(0.99)),
            "error_mm_max": float(errors.max()),
            "success_rate_by_dpi": {int(k): float(v) for k, v in table.groupby("dpi")["success"].mean().items()},
            "upside_down_pages": len(upside), "upside_down_turned_back": int(upside["flipped"].sum()),
            "failures": table.loc[~table["success"], ["sheet_id", "status"]].to_dict("records")}


def true_scan_points(points_px: np.ndarray, row, scan_size: tuple[int, int]) -> np.ndarray:
    """Where template points (px at the sheet's dpi) lie on a generated scan: placement, curl, quarter turn."""
    from pipeline.synth.damage import curled_points, turn_matrix

    turns = int(getattr(row, "quarter_turns", 0) or 0)
    unturned = scan_size if turns % 2 == 0 else scan_size[::-1]
    turn = turn_matrix(unturned, turns)
    placement = np.linalg.inv(turn) @ np.array(json.loads(row.homography)).reshape(3, 3)
    pts = cv2.perspectiveTransform(points_px[None].astype(np.float64), placement)[0]
    curl_mm = float(getattr(row, "curl_mm", 0.0) or 0.0)
    if curl_mm > 0:
        pts = curled_points(pts, unturned, curl_mm * row.dpi / MM_PER_INCH, bool(row.curl_vertical))
    return cv2.perspectiveTransform(pts[None], turn)[0]


def reader_scan_points(points_px: np.ndarray, page) -> np.ndarray:
    """Where the reader takes template points (registered px) from on the scan: homography and displacement."""
    hom = np.array(json.loads(getattr(page, "homography" + READ_SUFFIX))).reshape(3, 3)
    pts = np.array(points_px, np.float64)
    if isinstance(page.displacement, str) and page.displacement:
        dx, dy = Displacement.from_json(page.displacement).at(pts[:, 0], pts[:, 1])
        pts = pts + np.stack([dx, dy], axis=1)
    return cv2.perspectiveTransform(pts[None], np.linalg.inv(hom))[0]


def field_errors_mm(pages: pd.DataFrame, truth: pd.DataFrame, template: Template, settings: ReadSettings,
                    batch: Path) -> pd.Series:
    """Largest box-corner error (mm, on the scan) of each page read ``ok``, curl and quarter turns included."""
    corners = _box_corners_mm(template)
    merged = pages[pages["status"] == OK].merge(truth, on="sheet_id", suffixes=(READ_SUFFIX, ""))
    errors = {}
    for row in merged.itertuples():
        with Image.open(batch / "sheets" / Path(row.file).name) as im:
            size = im.size
        truth_pts = true_scan_points(corners * row.dpi / MM_PER_INCH - 0.5, row, size)
        read_pts = reader_scan_points(corners * settings.px_per_mm - 0.5, row)
        errors[row.sheet_id] = float(np.linalg.norm(read_pts - truth_pts, axis=1).max() / (row.dpi / MM_PER_INCH))
    return pd.Series(errors, dtype=float)


def field_conditions_report(pages: pd.DataFrame, truth: pd.DataFrame, template: Template,
                            settings: ReadSettings, batch: Path) -> dict:
    """Registration of a field-conditions batch: right, refused, and the silent failures (kept ``ok`` in a wrong
    orientation or place), overall and for the pages with curl."""
    errors = field_errors_mm(pages, truth, template, settings, batch)
    table = truth.merge(pages[["sheet_id", "status"]], on="sheet_id")
    table["error_mm"] = table["sheet_id"].map(errors)
    table["success"] = table["error_mm"].le(REGISTRATION_TOLERANCE_MM)
    kept_wrong = (table["status"] == OK) & table["error_mm"].gt(WRONG_PLACE_MM)
    curled = table["curl_mm"].gt(0) if "curl_mm" in table else pd.Series(False, index=table.index)
    ok_errors = table.loc[table["status"] == OK, "error_mm"]
    return {"pages": len(table), "ok": int((table["status"] == OK).sum()),
            "statuses": {str(k): int(v) for k, v in table["status"].value_counts().items()},
            "success_rate": float(table["success"].mean()), "target": TARGETS["registration_success"],
            "success_rate_without_curl": float(table.loc[~curled, "success"].mean()) if (~curled).any() else None,
            "success_rate_curled": float(table.loc[curled, "success"].mean()) if curled.any() else None,
            "within_line_search_mm": settings.line_search_mm,
            "success_rate_within_line_search": float(table["error_mm"].le(settings.line_search_mm).mean()),
            "curled_pages": int(curled.sum()),
            "error_mm_median": float(ok_errors.median()), "error_mm_p99": float(ok_errors.quantile(0.99)),
            "kept_in_wrong_place_or_orientation": int(kept_wrong.sum()),
            "turned_pages": int(truth.get("quarter_turns", pd.Series(0)).gt(0).sum()),
            "failures": table.loc[~table["success"], ["sheet_id", "status", "error_mm"]].head(20).to_dict("records")}


def field_conditions(tmp: Path, sheets: int, settings: ReadSettings, template: Template) -> dict:
    """Registration on a batch of each style group under phone-photo perspective and any quarter turn."""
    result = {}
    for group, seed in FIELD_SEEDS.items():
        overrides = {"style_set": group, "quarter_turn_rate": FIELD_QUARTER_TURN_RATE,
                     "perspective": FIELD_PERSPECTIVE, "dpi_choices": ARTEFACT_DPIS}
        batch, synth = _synth_batch(tmp / f"field-{group}", sheets, seed=seed, **overrides)
        read_batch([batch / "sheets"], tmp / f"field-{group}-read", settings)
        pages, _, _, truth, _ = _tables(tmp / f"field-{group}-read", batch)
        result[group] = {"batch": synth,
                         "registration": field_conditions_report(pages, truth, template, settings, batch)}
    return result


def _written_boxes(boxes: pd.DataFrame) -> pd.DataFrame:
    return boxes[(boxes["position"] == "box") & (boxes["digit"] >= 0)]


def clean_fields(truth: pd.DataFrame, template: Template) -> pd.DataFrame:
    """(sheet_id, field) pairs with nothing visibly altered: every id field, and counts altered by no one or
    changed without a trace (``fabricated``)."""
    rows = [(r["sheet_id"], f.name) for _, r in truth.iterrows() for f in template.fields if f.is_numeric
            and (f.kind == "id" or r[f"{f.name}_alteration"] in CLEAN_KINDS)]
    return pd.DataFrame(rows, columns=["sheet_id", "field"])


def segmentation_report(crops: pd.DataFrame, boxes: pd.DataFrame, truth: pd.DataFrame, template: Template) -> dict:
    """Share of clean fields where the number of digits found equals the number written."""
    fields = clean_fields(truth, template)
    written = _written_boxes(boxes).groupby(["sheet_id", "field"]).size().rename("written")
    found = crops[(crops["box"] >= 0) & (crops["box_status"] != BOX_EMPTY)].groupby(["sheet_id", "field"]).size()
    table = fields.join(written, on=["sheet_id", "field"]).join(found.rename("found"), on=["sheet_id", "field"])
    table = table.fillna({"written": 0, "found": 0})
    table["correct"] = table["written"] == table["found"]
    kinds = {f.name: f.kind for f in template.fields}
    return {"clean_fields": len(table), "correct": int(table["correct"].sum()),
            "accuracy": float(table["correct"].mean()), "target": TARGETS["segmentation_accuracy"],
            "accuracy_by_kind": {k: float(v) for k, v in
                                 table.groupby(table["field"].map(kinds))["correct"].mean().items()},
            "failures": table.loc[~table["correct"], ["sheet_id", "field", "written", "found"]].head(20)
            .to_dict("records")}


def labelled_crops(crops: pd.DataFrame, boxes: pd.DataFrame, truth: pd.DataFrame, template: Template) -> pd.DataFrame:
    """Crops of clean fields read as one digit in a box, with the written digit and its MNIST test index."""
    single = crops[(crops["box"] >= 0) & (crops["box_status"] == "digit")]
    single = single[single.groupby(["sheet_id", "field", "box"])["slot"].transform("size") == 1]
    clean = clean_fields(truth, template)
    written = _written_boxes(boxes)[["sheet_id", "field", "box", "digit", "mnist_index"]]
    return single.merge(clean, on=["sheet_id", "field"]).merge(written, on=["sheet_id", "field", "box"])


def reference_classifier(mnist: Mnist, n_train: int):
    """The fixed reference: PCA(50) + 3-nearest-neighbours on a seeded subset of MNIST-train (pixels / 255)."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline

    pick = np.random.default_rng(SEED).choice(len(mnist.x_train), n_train, replace=False)
    model = make_pipeline(PCA(n_components=50, random_state=SEED), KNeighborsClassifier(n_neighbors=3))
    return model.fit(_features(mnist.x_train[pick]), mnist.y_train[pick])


def _features(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def _accuracy(model, images: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(model.predict(_features(images)) == labels))


def renormalised(images: np.ndarray, restyle: bool) -> np.ndarray:
    """MNIST digits enlarged to their size on a scan (as the generator's pen does) and normalised back; with
    ``restyle``, first given random writers' styles from the generator's ranges (slant, stroke, squeeze)."""
    from pipeline.synth import SynthSettings, style_digit

    ranges = SynthSettings()
    rng = np.random.default_rng(SEED)
    out = []
    for img in images:
        style = {"slant_deg": rng.uniform(*ranges.slant_deg), "stroke_scale": rng.uniform(*ranges.stroke_scale),
                 "width_scale": rng.uniform(*ranges.digit_width)} if restyle else {"jitter": 0.0}
        out.append(to_mnist(style_digit(img, rng, size=SCAN_DIGIT_PX, **style)))
    return np.stack(out)


def normalisation_report(model, mnist: Mnist, test_digits: int, labelled: pd.DataFrame, digits: np.ndarray,
                         plain: tuple[pd.DataFrame, np.ndarray]) -> dict:
    """Reference-classifier accuracy on MNIST-test, on the sheet crops, on the crops read without writer
    normalisation (``plain``: labelled crops and digits), on the crops' MNIST originals, and on MNIST-test digits
    enlarged and normalised back (plain: the normalisation alone; restyled: plus the generator's pen styles,
    without any scanning)."""
    test = np.random.default_rng(SEED).choice(len(mnist.x_test), test_digits, replace=False)
    x, y = mnist.x_test[test], mnist.y_test[test]
    mnist_acc = _accuracy(model, x, y)
    crop_acc = _accuracy(model, digits[labelled["digit_row"]], labelled["digit"].to_numpy())
    source = labelled["mnist_index"].to_numpy()
    source_acc = _accuracy(model, mnist.x_test[source], mnist.y_test[source])
    return {"classifier": "PCA(50) + 3-NN (sklearn), fixed seed", "train_digits": int(model[-1].n_samples_fit_),
            "mnist_test_digits": test_digits, "mnist_test_accuracy": mnist_acc,
            "crops": len(labelled), "crop_accuracy": crop_acc, "crop_source_mnist_accuracy": source_acc,
            "gap_points": 100 * (mnist_acc - crop_acc), "target_gap_points": TARGETS["crop_accuracy_gap_points"],
            "gap_to_source_points": 100 * (source_acc - crop_acc),
            "crop_accuracy_without_writer_normalisation": _accuracy(model, plain[1][plain[0]["digit_row"]],
                                                                    plain[0]["digit"].to_numpy()),
            "renormalised_mnist_accuracy": _accuracy(model, renormalised(x, restyle=False), y),
            "restyled_renormalised_mnist_accuracy": _accuracy(model, renormalised(x, restyle=True), y)}


def speed_report(sheets_dir: Path, out: Path, settings: ReadSettings, n_sheets: int) -> dict:
    """Wall-clock throughput of reading a batch with ``SPEED_WORKERS`` processes (pool start included), and its
    CPU cost: the workers' per-page CPU seconds from ``pages.csv`` plus this process's own."""
    load = os.getloadavg()[0]
    own, wall = time.process_time(), time.perf_counter()
    read_batch([sheets_dir], out, settings)
    wall, own = time.perf_counter() - wall, time.process_time() - own
    workers_cpu = float(pd.read_csv(out / "pages.csv")["cpu_s"].sum())
    per_sheet = (workers_cpu + own) / n_sheets
    return {"sheets": n_sheets, "dpi": SPEED_DPI, "workers": settings.workers, "wall_s": round(wall, 2),
            "sheets_per_s": round(n_sheets / wall, 2), "cpu_s_per_sheet": round(per_sheet, 4),
            "worker_cpu_s_per_sheet": round(workers_cpu / n_sheets, 4),
            "sheets_per_s_on_2_free_cores": round(SPEED_WORKERS / per_sheet, 2),
            "load_average_before": round(load, 2), "target_sheets_per_s": TARGETS["sheets_per_s"],
            "cpus": os.cpu_count()}


def _tables(run: Path, batch: Path) -> tuple[pd.DataFrame, ...]:
    return (pd.read_csv(run / "pages.csv"), pd.read_parquet(run / "crops.parquet"),
            np.load(run / "digits.npy", allow_pickle=False), pd.read_csv(batch / "truth.csv"),
            pd.read_csv(batch / "boxes.csv"))


def run_bench(config: dict, quick: bool) -> dict:
    """Measure registration, segmentation, normalisation and speed on fresh synthetic batches."""
    size = QUICK if quick else FULL
    settings = build_settings(ReadSettings, "read", config)
    template = load_template(settings.template) if settings.template else load_template()
    mnist = load_mnist()
    with tempfile.TemporaryDirectory(prefix="vision-bench-") as tmp:
        tmp = Path(tmp)
        artefacts = {"dpi_choices": ARTEFACT_DPIS, "upside_down_rate": UPSIDE_DOWN_RATE}
        batch, synth = _synth_batch(tmp / "artefacts", size.artefact_sheets, **artefacts)
        read_batch([batch / "sheets"], tmp / "artefacts-read", settings)
        pages, crops, digits, truth, boxes = _tables(tmp / "artefacts-read", batch)
        placements = true_placements(truth)
        model = reference_classifier(mnist, size.train_digits)
        plain_settings = build_settings(ReadSettings, "read", config, writer_normalisation=False)
        read_batch([batch / "sheets"], tmp / "plain-read", plain_settings)
        _, plain_crops, plain_digits, _, _ = _tables(tmp / "plain-read", batch)
        plain = (labelled_crops(plain_crops, boxes, truth, template), plain_digits)
        result = {"artefact_batch": synth,
                  "registration": registration_report(pages, truth, placements, template, settings),
                  "segmentation": segmentation_report(crops, boxes, truth, template),
                  "normalisation": normalisation_report(model, mnist, size.test_digits,
                                                        labelled_crops(crops, boxes, truth, template), digits, plain)}
        result["field_conditions"] = field_conditions(tmp, size.field_sheets, settings, template)
        speed_batch, _ = _synth_batch(tmp / "speed", size.speed_sheets, dpi=SPEED_DPI)
        speed_settings = build_settings(ReadSettings, "read", config, workers=SPEED_WORKERS, dpi=SPEED_DPI)
        result["speed"] = speed_report(speed_batch / "sheets", tmp / "speed-read", speed_settings, size.speed_sheets)
    return result
