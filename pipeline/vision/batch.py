"""Reading a batch of scans into a run folder (docs/DATA.md section 2), in parallel.

Each worker process reads whole files (all pages of a PDF), writes the per-sheet images itself (field images,
registered page) and sends back only table rows and 28x28 digits; the parent writes the four tables atomically.
A file that cannot be read, or that makes the reader fail, becomes a ``pages.csv`` row with a status and a reason;
the batch goes on.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.forms.template import Template, load_template
from pipeline.vision import settings as st
from pipeline.vision.loading import ScanPage, discover_scans, load_pages
from pipeline.vision.normalise import MNIST_SIZE
from pipeline.vision.page import PageRead, read_page
from pipeline.vision.settings import ReadSettings

log = logging.getLogger(__name__)

PAGE_COLUMNS = ["sheet_id", "source", "page", "status", "reason", "registration_score", "rotation_fixed_deg",
                "flipped", "n_fiducials", "residual_px", "line_agreement", "n_digits", "homography", "cpu_s"]
CROP_COLUMNS = ["sheet_id", "field", "box", "slot", "box_status", "digit_row", "x0", "y0", "x1", "y1", "ink_pixels",
                "ink_mean", "n_components", "box_x0", "box_y0", "box_x1", "box_y1", "field_x0", "field_y0"]
MARK_COLUMNS = ["sheet_id", "field", "option", "ink_ratio", "ticked"]
FIELDS_DIR, REGISTERED_DIR = "fields", "registered"
#: Field images are mostly paper grain, which deflate cannot shrink: Huffman coding alone is 3x faster and as small.
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]


@dataclass(frozen=True)
class PageOutcome:
    """What a worker returns for one page: its ``pages.csv`` row, crop and mark rows, and its digits."""

    page: dict
    crops: list[dict] = field(default_factory=list)
    marks: list[dict] = field(default_factory=list)
    digits: np.ndarray = field(default_factory=lambda: np.zeros((0, MNIST_SIZE, MNIST_SIZE), np.uint8))


def page_row(scan: ScanPage, read: PageRead | None) -> dict:
    """The ``pages.csv`` row of a page (``read`` is ``None`` for pages that could not be decoded).

    ``homography`` is the registration as JSON: the row-major 3x3 map from scan pixels to registered pixels;
    ``cpu_s`` (filled in by :func:`read_file`) the CPU seconds the page took: decoding, reading and writing.
    """
    row = {"sheet_id": scan.sheet_id, "source": scan.source, "page": scan.page, "status": scan.status,
           "reason": scan.reason, "registration_score": 0.0, "rotation_fixed_deg": 0.0, "flipped": False,
           "n_fiducials": 0, "residual_px": float("nan"), "line_agreement": 0.0, "n_digits": 0, "homography": "",
           "cpu_s": 0.0}
    if read is not None:
        row.update(status=read.status, reason=read.reason, registration_score=read.score,
                   rotation_fixed_deg=read.rotation_fixed_deg, flipped=read.flipped, n_fiducials=read.n_fiducials,
                   residual_px=read.residual_px, line_agreement=read.line_agreement,
                   n_digits=sum(c.digit_row >= 0 for c in read.crops),
                   homography="" if read.homography is None else json.dumps(read.homography.ravel().tolist()))
    return row


def _write_image(path: Path, image: np.ndarray, params: list[int]) -> None:
    ok, data = cv2.imencode(path.suffix, image, params)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the image")
    path.write_bytes(data.tobytes())


def write_evidence(read: PageRead, out: Path, settings: ReadSettings) -> None:
    """The page's field images and its registered page, for the report and the alteration check."""
    folder = out / FIELDS_DIR / read.sheet_id
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in read.field_images.items():
        _write_image(folder / f"{name}.png", image, PNG_PARAMS)
    if read.registered is not None:
        (out / REGISTERED_DIR).mkdir(parents=True, exist_ok=True)
        _write_image(out / REGISTERED_DIR / f"{read.sheet_id}.jpg", read.registered,
                     [cv2.IMWRITE_JPEG_QUALITY, settings.jpeg_quality])


def read_scan_page(scan: ScanPage, out: Path, settings: ReadSettings, template: Template) -> PageOutcome:
    """Read one decoded page and write its evidence; a page without an image passes its status through."""
    if scan.image is None:
        return PageOutcome(page_row(scan, None))
    read = read_page(scan.image, scan.sheet_id, settings, template)
    if read.status == st.OK:
        write_evidence(read, out, settings)
    return PageOutcome(page_row(scan, read), [asdict(c) for c in read.crops], [asdict(m) for m in read.marks],
                       read.digits)


def read_file(path: Path, out: Path, settings: ReadSettings) -> list[PageOutcome]:
    """Every page of one scan file; never raises: a failure becomes an ``error`` row naming the file."""
    template = load_template(settings.template) if settings.template else load_template()
    outcomes: list[PageOutcome] = []
    try:
        pages, start = load_pages(path, settings), time.process_time()
        for scan in pages:  # decoding happens as the generator yields, so it is inside the timing
            outcome = read_scan_page(scan, out, settings, template)
            outcome.page["cpu_s"] = round(time.process_time() - start, 4)
            outcomes.append(outcome)
            start = time.process_time()
    except Exception as exc:  # the batch must go on: any failure on this file becomes its status row
        log.exception("%s: reading failed", path)
        scan = ScanPage(f"{path.stem}-p{len(outcomes) + 1}" if outcomes else path.stem, str(path),
                        len(outcomes) + 1, status=st.ERROR, reason=f"{path}: {type(exc).__name__}: {exc}")
        outcomes.append(PageOutcome(page_row(scan, None)))
    return outcomes


def _duplicates(paths: list[Path]) -> dict[Path, Path]:
    """Files whose stem (the sheet id) was already taken by an earlier file, mapped to that earlier file."""
    first: dict[str, Path] = {}
    dupes = {}
    for p in paths:
        if p.stem in first:
            dupes[p] = first[p.stem]
        else:
            first[p.stem] = p
    return dupes


def _duplicate_outcome(path: Path, original: Path) -> list[PageOutcome]:
    scan = ScanPage(path.stem, str(path), 1, status=st.DUPLICATE_ID,
                    reason=f"{path}: sheet id '{path.stem}' is already used by {original}; rename one of them")
    return [PageOutcome(page_row(scan, None))]


def _init_worker() -> None:
    """One OpenCV thread per worker: the pool already keeps every core busy."""
    cv2.setNumThreads(1)


def _pool_context() -> multiprocessing.context.BaseContext:
    """Workers are forked from a fresh single-threaded server, not from this process: forking a process whose
    OpenCV thread pool is running can leave the child waiting on a lock forever."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _run_pool(paths: list[Path], out: Path, settings: ReadSettings, workers: int) -> list[list[PageOutcome]]:
    results: list[list[PageOutcome] | None] = [None] * len(paths)
    with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_init_worker) as pool:
        futures: dict[Future, int] = {pool.submit(read_file, p, out, settings): i for i, p in enumerate(paths)}
        for future in tqdm(as_completed(futures), total=len(futures), desc="read", unit="file"):
            i = futures[future]
            try:
                results[i] = future.result()
            except Exception as exc:  # a worker that died (e.g. out of memory) takes only its file down
                scan = ScanPage(paths[i].stem, str(paths[i]), 1, status=st.ERROR,
                                reason=f"{paths[i]}: worker failed ({type(exc).__name__}: {exc})")
                results[i] = [PageOutcome(page_row(scan, None))]
    return results


def read_all(paths: list[Path], out: Path, settings: ReadSettings) -> list[PageOutcome]:
    """Read every file, in a process pool when there is more than one file and worker; results in input order."""
    dupes = _duplicates(paths)
    todo = [p for p in paths if p not in dupes]
    workers = min(settings.workers or os.cpu_count() or 1, len(todo))
    if workers > 1:
        done = dict(zip(todo, _run_pool(todo, out, settings, workers), strict=True))
    else:
        done = {p: read_file(p, out, settings) for p in tqdm(todo, desc="read", unit="file")}
    return [o for p in paths for o in (_duplicate_outcome(p, dupes[p]) if p in dupes else done[p])]


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    tmp.replace(path)


def _npy_writer(array: np.ndarray):
    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.save(fh, array, allow_pickle=False)
    return write


def write_tables(outcomes: list[PageOutcome], out: Path) -> None:
    """``pages.csv``, ``crops.parquet``, ``digits.npy`` and ``marks.csv``, each written atomically."""
    crops, offset = [], 0
    for o in outcomes:
        crops += [{**c, "digit_row": c["digit_row"] + offset if c["digit_row"] >= 0 else -1} for c in o.crops]
        offset += len(o.digits)
    digits = np.concatenate([o.digits for o in outcomes]) if outcomes else np.zeros((0, MNIST_SIZE, MNIST_SIZE))
    pages = pd.DataFrame([o.page for o in outcomes], columns=PAGE_COLUMNS)
    crop_table = pd.DataFrame(crops, columns=CROP_COLUMNS).astype(
        {"box": "int64", "slot": "int64", "digit_row": "int64", "ink_pixels": "int64", "n_components": "int64"})
    marks = pd.DataFrame([m for o in outcomes for m in o.marks], columns=MARK_COLUMNS)
    _atomic(out / "pages.csv", lambda p: pages.to_csv(p, index=False))
    _atomic(out / "crops.parquet", lambda p: crop_table.to_parquet(p, index=False))
    _atomic(out / "digits.npy", _npy_writer(digits.astype(np.uint8)))
    _atomic(out / "marks.csv", lambda p: marks.to_csv(p, index=False))


def read_batch(paths: Iterable[Path | str], out: Path | str, settings: ReadSettings | None = None) -> Path:
    """Read scans (files or folders, recursively) into the run folder ``out``; returns ``out``.

    Raises:
        InputFileError: an input path does not exist, or there is no scan at all.
    """
    settings = settings or ReadSettings()
    out = Path(out)
    scans = discover_scans(paths)
    out.mkdir(parents=True, exist_ok=True)
    log.info("reading %d file(s) into %s", len(scans), out)
    outcomes = read_all(scans, out, settings)
    write_tables(outcomes, out)
    counts = Counter(o.page["status"] for o in outcomes)
    log.info("read %d page(s): %s", len(outcomes), ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return out
