"""Write a synthetic batch folder (docs/DATA.md section 1), in parallel, byte-identical for any worker count.

Sheets are rendered by a process pool (each worker renders, encodes and writes its own files and sends back
only its table rows); results come back in index order, so the tables, the PDF and the gallery do not depend
on scheduling. The sheets go to ``sheets.partial/`` and replace ``sheets/`` only when every sheet is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import pandas as pd
import yaml

from pipeline import __version__
from pipeline.atomic import write_bytes_atomic
from pipeline.engine.pool import process_context
from pipeline.errors import InputFileError
from pipeline.forms import Template, load_template
from pipeline.forms.template import portable_raw
from pipeline.mnist import load_mnist
from pipeline.progress import SettledBar
from pipeline.synth.digits import DigitSource
from pipeline.synth.gallery import make_gallery
from pipeline.synth.pdf import JpegPdf
from pipeline.synth.scan import encode_image
from pipeline.synth.settings import SynthSettings
from pipeline.synth.sheet import is_acta, render_sheet

log = logging.getLogger(__name__)

SHEETS_DIR = "sheets"
PDF_NAME = "sheets.pdf"
CHUNKSIZE = 4
#: The template of a batch of another form than the acta, written beside its sheets.
TEMPLATE_FILE = "template.yaml"


@dataclass(frozen=True)
class RenderedSheet:
    """What a worker sends back: the table rows, and for PDF output the encoded page."""

    truth: dict
    boxes: list[dict]
    page: bytes | None
    size: tuple[int, int]


@dataclass(frozen=True)
class _Job:
    settings: SynthSettings
    digits: DigitSource
    staging: Path
    template: Template


_JOB: _Job | None = None


def _init_worker(job: _Job, threads: int) -> None:
    """Give this process its job; one OpenCV thread per worker when the pool already uses every core."""
    global _JOB
    _JOB = job
    cv2.setNumThreads(threads)


def _render_one(index: int) -> RenderedSheet:
    """Render sheet ``index``; write it to the staging folder (one file per sheet) or return its PDF page."""
    job = _JOB
    sheet = render_sheet(index, job.settings, job.digits, job.template)
    data = encode_image(sheet.image, job.settings.image_format, sheet.truth["jpeg_quality"])
    size = (sheet.image.shape[1], sheet.image.shape[0])
    if job.settings.image_format == "pdf":
        return RenderedSheet(sheet.truth, sheet.boxes, data, size)
    name = f"{sheet.sheet_id}.{job.settings.image_format}"
    (job.staging / name).write_bytes(data)
    truth = {**sheet.truth, "file": f"{SHEETS_DIR}/{name}"}
    return RenderedSheet(truth, sheet.boxes, None, size)


def pdf_sheet_id(page: int) -> str:
    """The reader's id for page ``page`` of ``sheets.pdf`` (file stem, plus ``-p<N>`` after page 1)."""
    stem = Path(PDF_NAME).stem
    return stem if page == 1 else f"{stem}-p{page}"


def _as_pdf_page(result: RenderedSheet, page: int) -> RenderedSheet:
    sid = pdf_sheet_id(page)
    truth = {**result.truth, "sheet_id": sid, "file": f"{SHEETS_DIR}/{PDF_NAME}", "page": page}
    return RenderedSheet(truth, [{**b, "sheet_id": sid} for b in result.boxes], result.page, result.size)


def resolve_workers(settings: SynthSettings) -> int:
    """Worker processes to use: ``settings.workers``, or every core when it is 0; never more than sheets."""
    return max(1, min(settings.workers or os.cpu_count() or 1, settings.sheets))


def _render_all(job: _Job, workers: int) -> Iterator[RenderedSheet]:
    """Every sheet's result, in index order."""
    indices = range(1, job.settings.sheets + 1)
    if workers == 1:
        _init_worker(job, cv2.getNumThreads())
        yield from map(_render_one, indices)
        return
    context = process_context([__name__])
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(job, 1)) as pool:
        yield from pool.map(_render_one, indices, chunksize=CHUNKSIZE)


def _collect(job: _Job, workers: int) -> tuple[list[dict], list[dict]]:
    """Render the batch into the staging folder; returns the truth and boxes rows."""
    truth, boxes = [], []
    results = SettledBar(_render_all(job, workers), total=job.settings.sheets, desc="synth", unit="sheet")
    if job.settings.image_format != "pdf":
        for r in results:
            truth.append(r.truth)
            boxes += r.boxes
        return truth, boxes
    with JpegPdf(job.staging / PDF_NAME) as pdf:
        for page, r in enumerate(results, start=1):
            r = _as_pdf_page(r, page)
            pdf.add_page(r.page, *r.size, r.truth["dpi"], r.truth["grey"])
            truth.append(r.truth)
            boxes += r.boxes
    return truth, boxes


def _truth_table(rows: list[dict]) -> pd.DataFrame:
    """truth.csv as a table: written numbers as nullable ints (empty = nothing written)."""
    df = pd.DataFrame(rows)
    written = [c for c in df.columns if c.endswith("_written")]
    df[written] = df[written].astype("Int64")
    return df


def _write_atomic(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` via a temporary file; returns its sha256."""
    write_bytes_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def _manifest(settings: SynthSettings, digits: DigitSource, template: Template, truth: pd.DataFrame,
              hashes: dict[str, str]) -> dict:
    summary = {key: int(truth[key].sum()) for key in ("altered", "fabricated", "arithmetic_error",
                                                      "opposition_present", "upside_down", "grey")}
    return {"generator": "pipeline.synth", "version": __version__, "seed": settings.seed,
            "sheets": settings.sheets, "image_format": settings.image_format, "template": template.name,
            "mnist": {"source": digits.source, "split": "test", "images": int(len(digits.images))},
            "truth_sha256": hashes["truth.csv"], "files_sha256": hashes, "summary": summary,
            "styles": {"style_set": settings.style_set, "active": sorted(settings.styles())},
            "settings": settings.for_manifest(), **_form_manifest(template)}


def _form_manifest(template: Template) -> dict:
    """The ``form`` entry of a batch of a template other than the acta (none for the acta)."""
    if is_acta(template):
        return {}
    form = {"template": template.name, "template_file": TEMPLATE_FILE, "geometry": template.geometry,
            "rules": [getattr(r, "text", r) for r in template.rules], "filler_marks": list(template.filler_marks)}
    if template.uses_reference:
        form["reference"] = template.reference.name if template.reference else None
        form["blanked"] = ("every field's boxes blanked: handwriting painted with the paper colour around it, "
                           "printed lines kept (pipeline.synth.reference)")
    return {"form": form}


def _check_form(template: Template) -> None:
    """Fail before any sheet is drawn when a template cannot be filled: its reference image is missing or
    unreadable, or its rules contradict each other (ConfigError naming the cause)."""
    from pipeline.synth.formsheet import template_rules
    from pipeline.synth.reference import blank_reference

    template_rules(template)
    if template.uses_reference:
        blank_reference(template)


def _prepare(out: Path) -> Path:
    """Create ``out`` and an empty staging folder for the sheets; refuse a path that is a file."""
    if out.exists() and not out.is_dir():
        raise InputFileError(f"{out}: output path exists and is not a folder")
    staging = out / f"{SHEETS_DIR}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def generate_batch(settings: SynthSettings, out: Path, digits: DigitSource | None = None,
                   template: Template | None = None) -> Path:
    """Write ``settings.sheets`` synthetic scans with truth.csv, boxes.csv, manifest.json and gallery.png to
    ``out`` (replacing an earlier batch's sheets there); returns ``out``.

    ``template`` is the form filled in (default: the packaged acta). For any other template the batch also holds
    ``template.yaml``, the template made loadable from anywhere (its reference image's folder written in), to read
    the batch with (``read --form BATCH/template.yaml``); the manifest names it under ``form``.
    """
    out = Path(out)
    template = template or load_template()
    if not is_acta(template):
        _check_form(template)
    digits = digits or DigitSource.from_mnist(load_mnist())
    job = _Job(settings, digits, _prepare(out), template)
    workers = resolve_workers(settings)
    log.info("rendering %d sheets at %s dpi with %d worker(s) into %s", settings.sheets,
             "/".join(map(str, settings.resolutions())), workers, out)
    truth_rows, box_rows = _collect(job, workers)
    shutil.rmtree(out / SHEETS_DIR, ignore_errors=True)
    job.staging.replace(out / SHEETS_DIR)
    truth = _truth_table(truth_rows)
    hashes = {"truth.csv": _write_atomic(out / "truth.csv", truth.to_csv(index=False).encode()),
              "boxes.csv": _write_atomic(out / "boxes.csv", pd.DataFrame(box_rows).to_csv(index=False).encode())}
    if not is_acta(template):
        hashes[TEMPLATE_FILE] = _write_atomic(out / TEMPLATE_FILE, yaml.safe_dump(
            portable_raw(template), sort_keys=False, allow_unicode=True).encode())
    gallery = make_gallery(truth, settings, digits, template)
    hashes["gallery.png"] = _write_atomic(out / "gallery.png", cv2.imencode(".png", gallery)[1].tobytes())
    manifest = _manifest(settings, digits, template, truth, hashes)
    _write_atomic(out / "manifest.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    log.info("wrote %s: %d sheets, %d visibly altered, %d fabricated, %d with arithmetic errors", out,
             len(truth), manifest["summary"]["altered"], manifest["summary"]["fabricated"],
             manifest["summary"]["arithmetic_error"])
    return out
