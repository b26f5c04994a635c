"""Benchmark of the synth stage (``python -m pipeline bench --only synth``): sheets per second at 200 dpi.

Two figures: the end-to-end rate of a whole ``generate_batch`` (MNIST loading, process pool, files, tables and
gallery included) on every core, and the CPU time one sheet costs (render + JPEG) in one process, which does not
depend on what else the machine is doing. The 1-minute load average before the run is stored with them, since
other work on a shared machine slows the end-to-end rate. The CPU time per sheet is also measured for the
``heldout`` style set (its scan damage costs more than the classic generator).

``forms`` (issue 15): for every shipped reference-image template (``pipeline/forms/templates/``) whose reference
image is found, the CPU time per sheet at ``FORM_DPI`` (render + JPEG), and under ``read`` the ground-truth scores
of ``FORM_SHEETS`` synthetic sheets of each style set of :data:`FORM_BATCHES` (the default ``classic`` generator
and the ``heldout`` styles, each on a held-out seed that no training, tuning or other bench uses; ``--quick``:
``FORM_QUICK_SHEETS`` sheets of the first only), read with the template, recognised with the current digit model
and audited against their truth with the installed alteration detector
(:func:`pipeline.synth.form_bench.run_form_bench`):
registration, untampered fields read exactly, wrong fields not marked for review (of all fields), filler marks
read as filler, altered-sheet precision, recall and ROC AUC (or "no detector for this form" and what the
arithmetic alone catches of the altered sheets), clean consistent sheets called ``inconsistent`` and the
detector's false alarms. Those need ``models/current``; without it only the CPU time is measured. Next to them,
``forms.acta1988_audit`` copies the acta's same figures from the audit stage of the bench file (``bench --only
audit``; not rerun here).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import cv2

from pipeline import config as cfg
from pipeline.config import build_settings
from pipeline.forms.template import Template, load_template
from pipeline.mnist import load_mnist
from pipeline.synth.batch import generate_batch, resolve_workers
from pipeline.synth.digits import DigitSource
from pipeline.synth.scan import encode_image
from pipeline.synth.settings import SynthSettings
from pipeline.synth.sheet import render_sheet

BENCH_DPI = 200
BENCH_SHEETS = 200
QUICK_SHEETS = 6
CPU_SHEETS = 20
QUICK_CPU_SHEETS = 3
TARGET_SHEETS_PER_S = 20.0
#: Shipped templates, and the synthetic batches of each reference-image template that are read and scored: held-out
#: seeds (no other bench or training uses them), the reference's own resolution.
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "forms" / "templates"
FORM_DPI = 100
FORM_SHEETS = 300
FORM_QUICK_SHEETS = 2
#: (style set, seed) of each template's batches: held-out seeds, used by nothing else (the acta's audit bench uses
#: 2024 and its own held-out seed, train-alteration 1001, make data 1).
FORM_BATCHES = (("classic", 4101), ("heldout", 4102))
#: Key under ``forms`` of the acta's figures copied from the audit stage, and the figures copied.
ACTA_KEY = "acta1988_audit"
ACTA_FIGURES = ("untampered_exact", "silent_wrong", "false_inconsistent", "altered_precision", "altered_recall")


def _cpu_ms_per_sheet(settings: SynthSettings, digits: DigitSource, n: int, template: Template | None = None) -> float:
    """Mean CPU milliseconds to render and encode one sheet in this process (one OpenCV thread)."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        render_sheet(1, settings, digits, template)  # warm the per-process blank-form cache
        start = time.process_time()
        for index in range(2, n + 2):
            sheet = render_sheet(index, settings, digits, template)
            encode_image(sheet.image, settings.image_format, sheet.truth["jpeg_quality"])
        return (time.process_time() - start) / n * 1000
    finally:
        cv2.setNumThreads(threads)


def run_bench(config: dict, quick: bool) -> dict:
    """Measure the generator at 200 dpi with the ``synth`` settings of ``config`` (sheet count and dpi fixed)."""
    sheets = QUICK_SHEETS if quick else BENCH_SHEETS
    settings = build_settings(SynthSettings, "synth", config, sheets=sheets, dpi=BENCH_DPI, dpi_choices=())
    digits = DigitSource.from_mnist(load_mnist())
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        start = time.perf_counter()
        out = generate_batch(settings, Path(tmp) / "batch", digits)
        seconds = time.perf_counter() - start
        kb_per_sheet = sum(f.stat().st_size for f in (out / "sheets").iterdir()) / sheets / 1024
    cpu_sheets = QUICK_CPU_SHEETS if quick else CPU_SHEETS
    cpu_ms = _cpu_ms_per_sheet(settings, digits, cpu_sheets)
    heldout_ms = _cpu_ms_per_sheet(dataclasses.replace(settings, style_set="heldout"), digits, cpu_sheets)
    rate = sheets / seconds
    forms = _form_figures(settings, digits, cpu_sheets, quick)
    forms[ACTA_KEY] = acta_reference(cfg.BENCH_JSON)
    return {"forms": forms, "sheets": sheets, "dpi": BENCH_DPI, "image_format": settings.image_format,
            "workers": resolve_workers(settings), "cpus": os.cpu_count(), "loadavg_1min_before": round(load_before, 2),
            "seconds": round(seconds, 2), "sheets_per_s": round(rate, 2),
            "target_sheets_per_s": TARGET_SHEETS_PER_S, "meets_target": rate >= TARGET_SHEETS_PER_S,
            "cpu_ms_per_sheet": round(cpu_ms, 1), "single_core_sheets_per_s": round(1000 / cpu_ms, 2),
            "heldout_cpu_ms_per_sheet": round(heldout_ms, 1),
            "kb_per_sheet": round(kb_per_sheet, 1)}


def _form_figures(settings: SynthSettings, digits: DigitSource, cpu_sheets: int, quick: bool) -> dict:
    """The ``forms`` figures (module docstring), by template name."""
    from pipeline.synth.form_bench import run_form_bench

    out = {}
    for path in sorted(TEMPLATES_DIR.glob("*.yaml")):
        template = load_template(path)
        if not template.uses_reference:
            continue
        if template.reference is None:
            out[template.name] = {"skipped": "reference image not found"}
            continue
        form_settings = dataclasses.replace(settings, dpi=FORM_DPI)
        figures = {"dpi": FORM_DPI,
                   "cpu_ms_per_sheet": round(_cpu_ms_per_sheet(form_settings, digits, cpu_sheets, template), 1)}
        if not cfg.CURRENT_MODEL.exists():
            figures["read"] = {"skipped": "no digit model (models/current)"}
        else:
            sheets = FORM_QUICK_SHEETS if quick else FORM_SHEETS
            batches = FORM_BATCHES[:1] if quick else FORM_BATCHES
            figures["read"] = run_form_bench(path, sheets, batches, FORM_DPI, settings.workers)
            figures["read"]["sheets_per_batch"] = sheets
        out[template.name] = figures
    return out


def acta_reference(bench_json: Path) -> dict:
    """The acta's figures of :data:`ACTA_FIGURES` per batch of the audit stage in ``bench_json``
    (``audit.pipeline.<batch>``: seed, style set, sheets and each figure's value), so the forms' figures stand next
    to them; says so when the file has no audit stage."""
    source = "audit stage of reports/bench.json (bench --only audit), not rerun by this stage"
    try:
        pipeline = json.loads(bench_json.read_text())["audit"]["pipeline"]
    except (OSError, ValueError, KeyError, TypeError):
        return {"skipped": f"no {source}"}
    out = {"source": source}
    for name, group in pipeline.items():
        if not isinstance(group, dict) or "targets" not in group:
            continue
        out[name] = {"seed": group.get("seed"), "style_set": group.get("style_set"), "sheets": group.get("sheets"),
                     "n_read_ok": group.get("n_read_ok"),
                     **{k: group["targets"].get(k, {}).get("value") for k in ACTA_FIGURES},
                     "altered_roc_auc": group.get("alteration", {}).get("roc_auc")}
    return out
