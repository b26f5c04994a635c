"""Benchmark of the synth stage (``python -m pipeline bench --only synth``): sheets per second at 200 dpi.

Two figures: the end-to-end rate of a whole ``generate_batch`` (MNIST loading, process pool, files, tables and
gallery included) on every core, and the CPU time one sheet costs (render + JPEG) in one process, which does not
depend on what else the machine is doing. The 1-minute load average before the run is stored with them, since
other work on a shared machine slows the end-to-end rate. The CPU time per sheet is also measured for the
``heldout`` style set (its scan damage costs more than the classic generator).

``forms``: for every shipped reference-image template (``pipeline/forms/templates/``) whose reference image is
found, the CPU time per sheet at ``FORM_DPI`` (render + JPEG), and, outside ``--quick``, the ground-truth scores of
``FORM_SHEETS`` synthetic sheets at each of ``FORM_SEEDS`` read with the template and recognised with the current
digit model (:func:`pipeline.synth.form_bench.run_form_bench`: registration, untampered fields read exactly, wrong
fields not marked for review, filler marks read as filler). Those need ``models/current``; without it only the
CPU time is measured.
"""

from __future__ import annotations

import dataclasses
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
FORM_SHEETS = 150
FORM_SEEDS = (1501, 1502)


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
        if quick:
            figures["read"] = {"skipped": "--quick"}
        elif not cfg.CURRENT_MODEL.exists():
            figures["read"] = {"skipped": "no digit model (models/current)"}
        else:
            figures["read"] = run_form_bench(path, FORM_SHEETS, FORM_SEEDS, FORM_DPI, settings.workers)
            figures["read"]["sheets_per_seed"] = FORM_SHEETS
        out[template.name] = figures
    return out
