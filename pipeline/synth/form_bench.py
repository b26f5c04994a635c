"""Score a read run of a synthetic batch of any template against its ground truth, and the bench that does it.

:func:`score_run` compares a run folder (``read --form`` then ``recognise``: ``pages.csv``, ``crops.parquet``,
``fields.parquet``) with the batch's ``truth.csv`` and ``boxes.csv`` (docs/DATA.md sections 1-3). It needs no audit,
so it works for any template (the audit's own ``--truth`` evaluation, :mod:`pipeline.audit.evaluate`, does too,
by the template's fields and roles, and :func:`audit_figures` picks its headline figures). Figures:

* ``registration``: sheets read (status ``ok``) of all sheets, other statuses by count, and the placement error:
  every box corner of the template mapped by the truth's homography (template pixels at the sheet's dpi -> scan)
  and then the reader's (scan -> template at the reading dpi), against where the template puts it, in mm (median
  and largest of each sheet's largest corner error);
* ``fields``: count fields of registered sheets that nobody tampered with (``F_alteration`` ``none``) read exactly
  (``value`` equal to ``F_written``; a blank count read blank or 0), overall, per field and per filler habit, and
  those that are wrong without being marked for review (``needs_review`` false): ``silent_wrong``. ``all_sheets``
  counts every sheet's untampered fields, an unregistered sheet's as wrong;
* ``filler``: boxes holding an X or dash (``boxes.csv`` ``filler``, no digit, untampered field) of registered sheets
  that the reader marks as filler (``crops.parquet`` ``filler`` not empty), with the right kind, and that it reads
  as no digit at all (``box_status`` ``empty``: a filler mark, or ink dropped as too small for a digit); digit
  boxes of untampered fields marked as filler; leading ``0`` boxes read as a digit box;
* ``rules``: sheets whose written numbers fail the template's rules (``rules_failed``).

:func:`run_form_bench` generates batches of a template at given seeds and style sets, reads, recognises and
audits them (``--truth``) in a scratch folder and scores each: the reading by :func:`score_run`, the audit by
:func:`audit_figures` (altered-sheet precision, recall and ROC AUC where the form has a detector, else why not and
what the arithmetic alone catches; clean sheets called ``inconsistent``; the detector's false alarms);
``python -m pipeline bench --only synth`` runs it for the shipped reference templates.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pipeline.engine.pool import resolve_workers
from pipeline.forms.template import MM_PER_INCH, Template, load_template

OK_STATUS = "ok"
STROKE_FILLERS = ("x", "dash")


def _share(hits: int, n: int) -> dict:
    return {"n": int(n), "hits": int(hits), "share": round(hits / n, 4) if n else None}


def _matrix(values: str) -> np.ndarray:
    return np.asarray(json.loads(values), np.float64).reshape(3, 3)


def placement_errors(truth: pd.DataFrame, pages: pd.DataFrame, template: Template, read_dpi: float) -> pd.Series:
    """Largest error (mm) of the template's box corners on each registered sheet (module docstring), by sheet_id."""
    corners = np.array([[(b.x + dx * b.w, b.y + dy * b.h) for f in template.fields for b in f.boxes
                         for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1))]], np.float64)  # mm
    ok = pages[pages["status"] == OK_STATUS].drop_duplicates("sheet_id").set_index("sheet_id")
    t = truth.set_index("sheet_id")
    errors = {}
    for sid, page in ok.iterrows():
        if sid not in t.index or not isinstance(page.get("homography"), str):
            continue
        row = t.loc[sid]
        scan = cv2.perspectiveTransform(corners * row["dpi"] / MM_PER_INCH, _matrix(row["homography"]))
        read = cv2.perspectiveTransform(scan, _matrix(page["homography"]))[0] / (read_dpi / MM_PER_INCH)
        errors[sid] = float(np.abs(read - corners[0]).max())
    return pd.Series(errors, dtype=float)


def _field_table(truth: pd.DataFrame, fields: pd.DataFrame, counts: list[str]) -> pd.DataFrame:
    """One row per sheet and count field: truth (written, alteration, filler) and what was read."""
    rows = []
    for name in counts:
        part = truth[["sheet_id", "filler_habit", f"{name}_written", f"{name}_alteration"]].copy()
        part.columns = ["sheet_id", "filler_habit", "written", "alteration"]
        part["field"] = name
        rows.append(part)
    table = pd.concat(rows, ignore_index=True)
    read = fields[["sheet_id", "field", "value", "needs_review"]].drop_duplicates(["sheet_id", "field"])
    table = table.merge(read, on=["sheet_id", "field"], how="left")
    written = pd.to_numeric(table["written"], errors="coerce")
    value = pd.to_numeric(table["value"], errors="coerce")
    blank = written.isna() & (value.isna() | (value == 0))
    table["exact"] = blank | (value == written).fillna(False)
    table["flagged"] = table["needs_review"].astype("boolean").fillna(True).astype(bool)
    table["filler_habit"] = table["filler_habit"].fillna("").astype(str).replace("", "blank")
    table["alteration"] = table["alteration"].fillna("none").astype(str)
    return table


def _filler_figures(boxes: pd.DataFrame, crops: pd.DataFrame, untampered: set, ok: set) -> dict:
    """Filler marks found and digits taken for filler (module docstring)."""
    b = boxes[(boxes["position"] == "box") & boxes["sheet_id"].isin(ok)].copy()
    b = b[[(s, f) in untampered for s, f in zip(b["sheet_id"], b["field"], strict=True)]]
    b["filler"] = b["filler"].fillna("").astype(str)
    c = crops[crops["slot"] == 0][["sheet_id", "field", "box", "box_status", "filler"]].drop_duplicates(
        ["sheet_id", "field", "box"]).rename(columns={"filler": "read_filler"})
    c["read_filler"] = c["read_filler"].fillna("").astype(str)
    j = b.merge(c, on=["sheet_id", "field", "box"], how="left")
    j["read_filler"] = j["read_filler"].fillna("")
    marks = j[j["filler"].isin(STROKE_FILLERS) & (j["digit"] < 0)]
    out = {"marks_read_as_filler": _share(int((marks["read_filler"] != "").sum()), len(marks)),
           "marks_right_kind": _share(int((marks["read_filler"] == marks["filler"]).sum()), len(marks)),
           "marks_read_as_no_digit": _share(int((marks["box_status"] == "empty").sum()), len(marks))}
    for kind in STROKE_FILLERS:
        k = marks[marks["filler"] == kind]
        out[f"{kind}_read_as_filler"] = _share(int((k["read_filler"] != "").sum()), len(k))
        out[f"{kind}_read_as_no_digit"] = _share(int((k["box_status"] == "empty").sum()), len(k))
    digits = j[j["digit"] >= 0]
    out["digits_taken_for_filler"] = _share(int((digits["read_filler"] != "").sum()), len(digits))
    zeros = j[(j["filler"] == "zero") & (j["digit"] == 0)]
    out["leading_zeros_read_as_digit_box"] = _share(int((zeros["box_status"] == "digit").sum()), len(zeros))
    return out


def score_run(batch: Path, rundir: Path, template: Template | None = None, read_dpi: float = 200.0) -> dict:
    """Every figure of the module docstring for the run folder ``rundir`` read from the synthetic ``batch``."""
    batch, rundir = Path(batch), Path(rundir)
    template = template or load_template(batch / "template.yaml")
    truth = pd.read_csv(batch / "truth.csv")
    boxes = pd.read_csv(batch / "boxes.csv")
    pages = pd.read_csv(rundir / "pages.csv")
    fields = pd.read_parquet(rundir / "fields.parquet")
    crops = pd.read_parquet(rundir / "crops.parquet")
    counts = [f.name for f in template.fields_of_kind("count")]
    status = pages.drop_duplicates("sheet_id").set_index("sheet_id")["status"].reindex(truth["sheet_id"])
    ok = set(status[status == OK_STATUS].index)
    errors = placement_errors(truth, pages, template, read_dpi)
    registration = {**_share(len(ok), len(truth)),
                    "statuses": {str(k): int(v) for k, v in status.fillna("missing").value_counts().items()},
                    "corner_error_mm_median": round(float(errors.median()), 2) if len(errors) else None,
                    "corner_error_mm_max": round(float(errors.max()), 2) if len(errors) else None}
    table = _field_table(truth, fields, counts)
    clean = table[table["alteration"] == "none"]
    read = clean[clean["sheet_id"].isin(ok)]
    wrong = read[~read["exact"]]
    figures = {"untampered_exact": _share(int(read["exact"].sum()), len(read)),
               "silent_wrong": _share(int((~wrong["flagged"]).sum()), len(read)),
               "wrong_marked_for_review": _share(int(wrong["flagged"].sum()), len(wrong)),
               "all_sheets_untampered_exact": _share(int((clean["exact"] & clean["sheet_id"].isin(ok)).sum()),
                                                     len(clean)),
               "per_field": {f: _share(int(g["exact"].sum()), len(g)) for f, g in read.groupby("field")},
               "per_filler_habit": {h: _share(int(g["exact"].sum()), len(g))
                                    for h, g in read.groupby("filler_habit")},
               "tampered_fields": int(len(table) - len(clean))}
    untampered = set(zip(clean["sheet_id"], clean["field"], strict=True))
    failed = truth["rules_failed"].fillna("").astype(str) != ""
    return {"sheets": len(truth), "template": template.name, "registration": registration, "fields": figures,
            "filler": _filler_figures(boxes, crops, untampered, ok),
            "rules": {"sheets_failing_on_paper": int(failed.sum()),
                      "altered_sheets": int(truth["altered"].astype(bool).sum())}}


#: Sections of a :func:`pipeline.audit.evaluate.truth_eval` result that :func:`audit_figures` needs.
TRUTH_EVAL_SECTIONS = ("n_read_ok", "alteration", "arithmetic", "fields")
#: Label of the audit with the installed detector (``models/alteration``: the one trained on the form, in its
#: ``<form>/`` subfolder, or none for this form) in :func:`run_form_bench`'s ``audit`` figures.
INSTALLED = "installed"
#: What :func:`audit_figures` says of the alteration figures when the audit had no detector for the form.
NO_DETECTOR = "no detector for this form"


def _rate(value) -> float | None:
    """A share rounded for the report (None stays None); a value outside [0, 1] is refused (ValueError)."""
    if value is None:
        return None
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"a share must lie in [0, 1], not {value}")
    return round(value, 4)


def audit_figures(ev: dict, target_recall: float | None = None) -> dict:
    """Issue 15's audit figures of one form's batch, from the audit's own ground-truth evaluation ``ev``
    (``truth_eval.json``, :func:`pipeline.audit.evaluate.truth_eval`, with the recogniser's review marks), with the
    same definitions as the acta's (``bench --only audit``):

    * ``untampered_exact``: untampered fields of read sheets read exactly; ``silent_wrong``: fields wrong and not
      marked for review, of all fields of read sheets (``n_fields``);
    * ``false_inconsistent``: clean sheets (their written numbers obey the form's rules) called ``inconsistent``;
    * ``alteration``: the detector's altered-sheet precision, recall, ROC AUC and ``false_alarms`` (clean sheets,
      neither altered nor fabricated, called altered), or ``{"skipped": NO_DETECTOR, "reason": why}``;
    * ``altered_by_arithmetic``: the visibly altered sheets the arithmetic calls ``inconsistent`` (``recall``) or
      flags at all (``flagged``): what is caught without a detector;
    * ``targets``: each headline figure against the acta's issue 13 target
      (:func:`pipeline.audit.bench.target_figures`; ``target_recall`` as for the acta's batch of the same style
      set), when given.

    Raises:
        ValueError: ``ev`` lacks a section (:data:`TRUTH_EVAL_SECTIONS`), has no review marks (silent wrong not
            measured), or holds a share outside [0, 1].
    """
    missing = [k for k in TRUTH_EVAL_SECTIONS if k not in ev]
    if missing:
        raise ValueError(f"not a truth_eval result: no {missing}")
    fields, arithmetic, alteration = ev["fields"], ev["arithmetic"], ev["alteration"]
    if fields.get("silent_wrong") is None and fields.get("n_fields"):
        raise ValueError("the evaluation has no review marks (fields.parquet needs_review): silent wrong unmeasured")
    clean, altered = arithmetic.get("clean", {}), arithmetic.get("altered", {})
    if "skipped" in alteration:
        detector = {"skipped": NO_DETECTOR, "reason": alteration["skipped"]}
    else:
        detector = {"n": alteration["n"], "n_altered": alteration["n_altered"],
                    "precision": _rate(alteration["precision"]), "recall": _rate(alteration["recall"]),
                    "roc_auc": _rate(alteration["roc_auc"]), "n_clean": alteration.get("n_clean"),
                    "false_alarms": _rate(alteration.get("clean_false_alarm_rate")),
                    "per_style_recall": alteration.get("per_style_recall")}
    out = {"n_read_ok": int(ev["n_read_ok"]), "n_fields": fields.get("n_fields"),
           "n_untampered": fields.get("n_untampered"), "untampered_exact": _rate(fields.get("untampered_exact")),
           "silent_wrong": _rate(fields.get("silent_wrong")), "n_silent_wrong": fields.get("n_silent_wrong"),
           "false_inconsistent": {"n_clean_consistent": clean.get("n"),
                                  "rate": _rate(clean.get("false_inconsistent_rate"))},
           "alteration": detector,
           "altered_by_arithmetic": {"n_altered": altered.get("n"), "recall": _rate(altered.get("inconsistent_rate")),
                                     "flagged": _rate(altered.get("flagged_rate"))}}
    if target_recall is not None:
        from pipeline.audit.bench import target_figures

        out["targets"] = target_figures(ev, target_recall)
    return out


def _target_recall(style_set: str) -> float | None:
    """The altered-sheet recall the acta's audit bench asks of a batch of ``style_set`` (None: no such batch)."""
    from pipeline.audit.bench import BENCH_GROUPS

    return next((g.target_recall for g in BENCH_GROUPS if g.style_set == style_set), None)


def installed_detector() -> Path | None:
    """The installed detector folder (``models/alteration``), None when there is none (CI): audit without one."""
    from pipeline.audit.alteration import DETECTOR_JSON
    from pipeline.audit.settings import ALTERATION_DIR

    return ALTERATION_DIR if (ALTERATION_DIR / DETECTOR_JSON).is_file() else None


def audit_batch(batch: Path, run: Path, out: Path, detector: Path | None, style_set: str,
                settings=None) -> dict:
    """Audit the run folder ``run`` of ``batch`` into ``out`` with the detector folder ``detector`` (None:
    without the visible-alteration check) and give :func:`audit_figures` of its ``truth_eval.json``."""
    import dataclasses

    from pipeline.audit.audit import run_audit
    from pipeline.audit.settings import AuditSettings

    s = dataclasses.replace(settings or AuditSettings(),
                            alteration_model=None if detector is None else str(detector))
    start = time.perf_counter()
    result = run_audit(run, out, s, truth=batch / "truth.csv")
    figures = audit_figures(result.truth_eval, _target_recall(style_set))
    if detector is None:
        figures["alteration"] = {"skipped": NO_DETECTOR, "reason": "no alteration detector given (none installed)"}
    figures["detector_folder"] = None if detector is None else str(detector)
    figures["seconds"] = round(time.perf_counter() - start, 1)
    return figures


def run_form_bench(template_path: Path, sheets: int, batches: tuple[tuple[str, int], ...], dpi: int = 100,
                   workers: int = 0, work: Path | None = None, detectors: dict[str, Path | None] | None = None,
                   keep: Path | None = None, audit_settings=None) -> dict:
    """Per ``(style_set, seed)`` of ``batches``: generate ``sheets`` sheets of the template (default generator
    settings, that style set), read (``--form``) and recognise them, score the reading (:func:`score_run`) and
    audit the run against its truth once per detector of ``detectors`` (label -> detector folder, None: without
    one; default: the installed one, :data:`INSTALLED`), giving :func:`audit_figures` under ``audit``. Results
    are keyed by style set; every batch also carries its seed and the seconds each stage took. The batches, runs
    and audits are written under a scratch folder in ``work``, or kept under ``keep`` when given."""
    from pipeline.mnist import load_mnist
    from pipeline.model.recognise import recognise_run
    from pipeline.model.settings import RecogniseSettings
    from pipeline.synth.batch import generate_batch
    from pipeline.synth.digits import DigitSource
    from pipeline.synth.settings import SynthSettings
    from pipeline.vision.batch import read_batch
    from pipeline.vision.settings import ReadSettings

    styles = [style for style, _ in batches]
    if len(set(styles)) != len(styles):
        raise ValueError(f"one batch per style set, not {styles}")
    detectors = {INSTALLED: installed_detector()} if detectors is None else detectors
    template = load_template(Path(template_path))
    digits = DigitSource.from_mnist(load_mnist())
    out = {}
    with tempfile.TemporaryDirectory(prefix="form-bench-", dir=work) as tmp:
        root = Path(keep) if keep is not None else Path(tmp)
        for style_set, seed in batches:
            batch, run = root / f"batch-{style_set}-{seed}", root / f"run-{style_set}-{seed}"
            start = time.perf_counter()
            generate_batch(SynthSettings(sheets=sheets, seed=seed, dpi=dpi, workers=workers, style_set=style_set),
                           batch, digits, template)
            made = time.perf_counter()
            settings = ReadSettings(template=str(batch / "template.yaml"), workers=resolve_workers(workers))
            read_batch([batch / "sheets"], run, settings)
            read = time.perf_counter()
            recognise_run(run, None, RecogniseSettings(), 100)
            score = {"style_set": style_set, "seed": seed, **score_run(batch, run, template, settings.dpi)}
            score["seconds"] = {"synth": round(made - start, 1), "read": round(read - made, 1),
                                "recognise": round(time.perf_counter() - read, 1)}
            score["audit"] = {label: audit_batch(batch, run, root / f"audit-{style_set}-{seed}-{label}", folder,
                                                 style_set, audit_settings)
                              for label, folder in detectors.items()}
            out[style_set] = score
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.synth.form_bench BATCH RUNDIR [--audit AUDIT] [--dpi D] [--out F]``: print (or write)
    the scores of :func:`score_run` as JSON, with :func:`audit_figures` of an audit of the run (``--audit``)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m pipeline.synth.form_bench", description=main.__doc__)
    p.add_argument("batch", type=Path, help="the synthetic batch folder (truth.csv, boxes.csv, template.yaml)")
    p.add_argument("rundir", type=Path, help="the run folder it was read into (read --form, then recognise)")
    p.add_argument("--audit", type=Path, help="an audit folder of the run (audit RUNDIR --out AUDIT): add its "
                                              "figures against the batch's truth")
    p.add_argument("--dpi", type=float, default=200.0, help="the reading resolution of the run (read --dpi)")
    p.add_argument("--out", type=Path, help="write the JSON here instead of printing it")
    args = p.parse_args(argv)
    figures = score_run(args.batch, args.rundir, read_dpi=args.dpi)
    if args.audit is not None:
        from pipeline.audit.evaluate import evaluate_run

        figures["audit"] = audit_figures(evaluate_run(args.rundir, args.audit, args.batch / "truth.csv"))
    text = json.dumps(figures, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
