"""Reading a batch of scans into a run folder (docs/DATA.md section 2), in parallel, resumable.

Files are spread over workers by :func:`pipeline.engine.map_items` (a local process pool, or Ray). Each worker
reads whole files (all pages of a PDF), writes the per-sheet images itself (field images, registered page) and
then the file's table rows and 28x28 digits as one part file under ``parts/`` (atomically); it sends back only a
manifest row. A re-run into the same folder skips every file whose part is there and current, so a killed run
resumes where it stopped. The four tables are then streamed from the parts in input order (flat memory) and
renamed into place, with ``manifest.csv``: one row per input file with its sha256, status, stage and error.
A file that cannot be read, or that makes the reader fail, becomes a ``pages.csv`` row with a status and a reason;
the batch goes on.

Several templates (``templates``, ``read --form A.yaml --form B.yaml``): each page is read with the one that
registers best (:func:`pipeline.vision.page.read_page_best`: the matching and its margin rule); ``pages.csv`` names
it in ``page_type`` (for one template too), and the run folder records every template
(:func:`pipeline.forms.runs.record_templates`: ``template.yaml`` for one, ``templates/<name>.yaml`` for several),
which the stages after reading find with :mod:`pipeline.forms.runs`. A part remembers the templates it was read
with (:func:`forms_key`), so reading the folder again with other templates reads every file again.

Sheet ids never merge two pages. Files with the same stem are ``duplicate_id`` (all but the first). A page id
``<stem>-p<N>`` of a multi-page file that is also another file's stem (``collide.pdf`` page 2 and
``collide-p2.jpg``) belongs to that file: the page is ``duplicate_id``, and no evidence of it is written. The merge
checks once more that no id is used twice by pages that were read, and lists the ``duplicate_id`` rows after all
others, so the first row of every sheet id in ``pages.csv`` is the page that holds it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import yaml
from tqdm import tqdm

from pipeline.atomic import temp_path, write_text_atomic
from pipeline.engine import EngineSettings, map_items
from pipeline.engine import parts as pt
from pipeline.engine.lock import folder_lock, remove_scratch
from pipeline.engine.pool import WORKER_DIED
from pipeline.engine.stream import CsvSink, NpyWriter, ParquetSink
from pipeline.errors import is_fatal_os_error
from pipeline.forms.runs import check_names, record_templates
from pipeline.forms.template import Template, load_template, portable_raw
from pipeline.progress import SettledBar
from pipeline.vision import settings as st
from pipeline.vision.loading import ScanPage, discover_scans, load_pages, sheet_stem
from pipeline.vision.normalise import MNIST_SIZE
from pipeline.vision.page import PageRead, read_page_best
from pipeline.vision.settings import ReadSettings

log = logging.getLogger(__name__)

PAGE_COLUMNS = ["sheet_id", "source", "page", "status", "page_type", "reason", "registration_score",
                "rotation_fixed_deg", "flipped", "n_fiducials", "residual_px", "line_agreement", "template_fit",
                "orientation_margin", "unbent_mm", "n_digits", "homography", "displacement", "cpu_s"]
CROP_COLUMNS = ["sheet_id", "field", "box", "slot", "box_status", "digit_row", "x0", "y0", "x1", "y1", "ink_pixels",
                "ink_mean", "n_components", "box_x0", "box_y0", "box_x1", "box_y1", "field_x0", "field_y0", "filler",
                "struck"]
MARK_COLUMNS = ["sheet_id", "field", "option", "ink_ratio", "ticked"]
FIELDS_DIR, REGISTERED_DIR = "fields", "registered"
#: The run's form template, written when it is not the packaged acta.
TEMPLATE_FILE = "template.yaml"
#: Status of a file whose name cannot be a sheet id (it would name a path outside the run folder, e.g. '...png').
UNSAFE_NAME = "unsafe_name"
STAGE_READ, STAGE_NONE = "read", "none"
#: A sheet id that a page of a multi-page file also gets: ``<stem>-p<N>``, N > 1 written without leading zeros.
PAGE_ID = re.compile(r"(?P<stem>.+)-p(?P<page>[1-9][0-9]*)")
#: Page, crop and mark rows buffered before they are appended to their tables while merging the parts: about 100
#: sheets' rows, some 10 MB as Python dicts (50,000 held some 50 MB more at the merge's peak).
MERGE_BUFFER_ROWS = 10_000
#: Field images are mostly paper grain, which deflate cannot shrink: Huffman coding alone is 3x faster and as small.
#: libpng's fast row filters (none, sub, up) instead of trying all five on every row: the 27 field images of a sheet
#: encode in 2/3 of the time (8.8 against 13.0 ms, 200 dpi acta) for 10 % more bytes (337 against 305 kB); the
#: pixels are the same (PNG is lossless).
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY,
              cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FAST_FILTERS]


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
    ``cpu_s`` (filled in by :func:`read_file`) the CPU seconds the page took: decoding, reading and writing;
    ``page_type`` the name of the template the page was read with ("" when it was not read).
    """
    row = {"sheet_id": scan.sheet_id, "source": pt.printable(scan.source), "page": scan.page, "status": scan.status,
           "page_type": "", "reason": pt.printable(scan.reason), "registration_score": 0.0,
           "rotation_fixed_deg": 0.0, "flipped": False,
           "n_fiducials": 0, "residual_px": float("nan"), "line_agreement": 0.0, "template_fit": 0.0,
           "orientation_margin": float("nan"), "unbent_mm": 0.0, "n_digits": 0, "homography": "",
           "displacement": "",
           "cpu_s": 0.0}
    if read is not None:
        row.update(status=read.status, page_type=read.page_type, reason=read.reason, registration_score=read.score,
                   rotation_fixed_deg=read.rotation_fixed_deg, flipped=read.flipped, n_fiducials=read.n_fiducials,
                   residual_px=read.residual_px, line_agreement=read.line_agreement, template_fit=read.template_fit,
                   orientation_margin=read.orientation_margin, unbent_mm=read.unbent_mm,
                   displacement="" if read.displacement is None else read.displacement.to_json(),
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
    if not pt.is_safe_name(read.sheet_id) or not pt.inside(out, folder):
        raise ValueError(f"sheet id {read.sheet_id!r} would write outside {out}")
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in read.field_images.items():
        _write_image(folder / f"{name}.png", image, PNG_PARAMS)
    if read.registered is not None:
        (out / REGISTERED_DIR).mkdir(parents=True, exist_ok=True)
        _write_image(out / REGISTERED_DIR / f"{read.sheet_id}.jpg", read.registered,
                     [cv2.IMWRITE_JPEG_QUALITY, settings.jpeg_quality])


def read_scan_page(scan: ScanPage, out: Path, settings: ReadSettings, template: Template | Sequence[Template]
                   ) -> PageOutcome:
    """Read one decoded page with ``template`` (or the one of several that registers best) and write its evidence;
    a page without an image passes its status through."""
    if scan.image is None:
        return PageOutcome(page_row(scan, None))
    templates = (template,) if isinstance(template, Template) else tuple(template)
    read = read_page_best(scan.image, scan.sheet_id, templates, settings)
    if read.status == st.OK:
        write_evidence(read, out, settings)
    return PageOutcome(page_row(scan, read), [row_dict(c) for c in read.crops], [row_dict(m) for m in read.marks],
                       read.digits)


def row_dict(row) -> dict:
    """A flat dataclass row (:class:`DigitCrop`, :class:`Mark`: str, int, float and bool fields) as a dict of its
    fields, in order: ``dataclasses.asdict`` without its deep copy, which cost more than the rest of the row's
    bookkeeping (the values are immutable, so copying them changes nothing)."""
    return {f.name: getattr(row, f.name) for f in fields(row)}


def taken_outcome(scan: ScanPage, owner: str) -> PageOutcome:
    """The ``duplicate_id`` row of a page whose sheet id is the file ``owner``'s (nothing of it is read)."""
    return PageOutcome(page_row(ScanPage(scan.sheet_id, scan.source, scan.page, status=st.DUPLICATE_ID, reason=(
        f"{scan.source}: page {scan.page} would be sheet '{scan.sheet_id}', which is the id of {owner}; rename "
        "one of them")), None))


def run_forms(settings: ReadSettings, templates: Sequence[str | Path] = ()) -> tuple[Template, ...]:
    """The templates a run reads with: ``templates`` when given, else ``settings.template``, else the packaged
    acta (loaded once per process: :func:`load_template` is cached)."""
    if templates:
        return tuple(load_template(Path(t)) for t in templates)
    return (load_template(settings.template) if settings.template else load_template(),)


def forms_key(settings: ReadSettings, templates: Sequence[str | Path] = ()) -> str:
    """A fingerprint of the templates a run reads with (their names and content), stored in each part: a part read
    with other templates is not current."""
    raws = [portable_raw(t) for t in run_forms(settings, templates)]
    return hashlib.sha256(json.dumps(raws, sort_keys=True, default=str).encode()).hexdigest()


def read_file(path: Path, out: Path, settings: ReadSettings, taken: dict[str, str] | None = None,
              templates: Sequence[str | Path] = ()) -> list[PageOutcome]:
    """Every page of one scan file; never raises: a failure becomes an ``error`` row naming the file.

    ``taken`` maps the sheet ids that other files own (their stems) to those files: a page with such an id gets a
    ``duplicate_id`` row and is not read. ``templates`` (several) reads each page with the one that registers
    best; without them, ``settings.template`` (or the acta) reads every page.
    """
    taken = taken or {}
    if not pt.is_safe_name(sheet_stem(path)):
        return [PageOutcome(page_row(ScanPage(sheet_stem(path), str(path), 1, status=UNSAFE_NAME, reason=(
            f"{path}: the file name {path.name!r} cannot be a sheet id; rename the file")), None))]
    forms = run_forms(settings, templates)
    outcomes: list[PageOutcome] = []
    try:
        pages, start = load_pages(path, settings), time.process_time()
        for scan in pages:  # decoding happens as the generator yields, so it is inside the timing
            outcome = (taken_outcome(scan, taken[scan.sheet_id]) if scan.sheet_id in taken
                       else read_scan_page(scan, out, settings, forms))
            outcome.page["cpu_s"] = round(time.process_time() - start, 4)
            outcomes.append(outcome)
            start = time.process_time()
    except Exception as exc:  # the batch must go on: any failure on this file becomes its status row
        if is_fatal_os_error(exc):  # unless the disk is full or read-only: then no file can be written
            raise
        log.exception("%s: reading failed", path)
        scan = ScanPage(f"{sheet_stem(path)}-p{len(outcomes) + 1}" if outcomes else sheet_stem(path), str(path),
                        len(outcomes) + 1, status=st.ERROR, reason=f"{path}: {type(exc).__name__}: {exc}")
        outcomes.append(PageOutcome(page_row(scan, None)))
    return outcomes


def _duplicates(paths: list[Path]) -> dict[Path, Path]:
    """Files whose stem (the sheet id) was already taken by an earlier file, mapped to that earlier file."""
    first: dict[str, Path] = {}
    dupes = {}
    for p in paths:
        stem = sheet_stem(p)
        if stem in first:
            dupes[p] = first[stem]
        else:
            first[stem] = p
    return dupes


def page_id_clashes(paths: list[Path]) -> dict[Path, dict[str, str]]:
    """For each file whose later pages would get a sheet id that is another file's stem (``collide.pdf`` page 2
    and ``collide-p2.jpg``): those ids, mapped to the (printable) file that owns them. Usually empty.

    ``paths`` hold no two files with one stem (see :func:`_duplicates`). Only such a page id can equal another
    file's id: two page ids ``<a>-p<N>`` and ``<b>-p<M>`` are equal only when a = b and N = M.
    """
    by_stem = {sheet_stem(p): p for p in paths}
    clashes: dict[Path, dict[str, str]] = {}
    for stem, owner in by_stem.items():
        match = PAGE_ID.fullmatch(stem)
        if match and int(match["page"]) > 1 and match["stem"] in by_stem:
            clashes.setdefault(by_stem[match["stem"]], {})[stem] = pt.printable(owner)
    return clashes


def _status_outcome(path: Path, status: str, reason: str) -> PageOutcome:
    return PageOutcome(page_row(ScanPage(sheet_stem(path), str(path), 1, status=status, reason=reason), None))


def run_relative(source: str, out: Path) -> str:
    """``source`` (an input path as the user gave it) relative to the run folder ``out``: what ``pages.csv`` records,
    so that published outputs never carry the absolute layout of the machine that read them."""
    return os.path.relpath(os.path.abspath(source), os.path.abspath(out))


def relative_page(page: dict, out: Path) -> dict:
    """A page row with its ``source``, and that path where its ``reason`` names it, relative to the run folder."""
    shown = run_relative(page["source"], out)
    return {**page, "source": shown, "reason": str(page["reason"]).replace(page["source"], shown)}


def _init_worker() -> None:
    """One OpenCV thread per worker: the pool already keeps every core busy."""
    cv2.setNumThreads(1)


def file_status(pages: list[dict]) -> tuple[str, str]:
    """A file's manifest status and error: ``ok`` when every page is, else its first other status and reason."""
    bad = [p for p in pages if p["status"] != st.OK]
    return (bad[0]["status"], str(bad[0]["reason"])) if bad else (st.OK, "")


def manifest_row(path: Path, meta: dict, part: str) -> pt.ManifestRow:
    """The manifest row of a file that has a part (``meta`` is the part's)."""
    status, error = file_status(meta["pages"])
    return pt.ManifestRow(pt.printable(path), meta["sha256"], meta["size"], status, STAGE_READ, error, part)


def read_to_part(path: Path, out: Path, settings: ReadSettings, clashes: dict[Path, dict[str, str]] | None = None,
                 templates: Sequence[str | Path] = ()) -> tuple[pt.ManifestRow, int]:
    """Read one file and store its rows and digits as its part file; returns its manifest row and digit count.

    The input's fingerprint is taken before it is read, so a file changed meanwhile is read again next time.
    ``clashes`` (:func:`page_id_clashes`) says which of the file's page ids other files own; the part records
    them, so that the file is read again when they change. ``templates``: see :func:`read_file`.
    """
    fp = pt.fingerprint(path)
    taken = (clashes or {}).get(path, {})
    return store_part(path, out, fp, read_file(path, out, settings, taken, templates), taken,
                      forms_key(settings, templates))


def store_part(path: Path, out: Path, fp: pt.Fingerprint, outcomes: list[PageOutcome], taken: dict[str, str],
               forms: str = "") -> tuple[pt.ManifestRow, int]:
    """Write the part file of ``path`` holding ``outcomes`` read with the templates ``forms`` (:func:`forms_key`;
    "" for a file nothing of which was read); returns its manifest row and digit count."""
    part = pt.part_path(out / pt.PARTS_DIR, path)
    digits = np.concatenate([o.digits for o in outcomes]).astype(np.uint8)
    meta = {"source": pt.printable(path), **asdict(fp), "pages": [o.page for o in outcomes],
            "crops": [o.crops for o in outcomes], "marks": [o.marks for o in outcomes],
            "n_digits": [len(o.digits) for o in outcomes], "taken": sorted(taken), "forms": forms}
    pt.write_part(part, meta, {"digits": digits})
    return manifest_row(path, meta, part.name), len(digits)


def worker_died_part(path: Path, out: Path, taken: dict[str, str]) -> tuple[pt.ManifestRow, int]:
    """Record a file that killed the worker reading it (twice, the second time alone) as a part with one
    ``worker_died`` row, so that no later run reads it again, in a worker or in this process, until it changes.

    Only the file's bytes are hashed here; nothing of it is decoded.
    """
    reason = (f"{path}: the process reading this file was killed (out of memory, or by the system) twice; it is "
              "not read again until it changes")
    outcome = PageOutcome(page_row(ScanPage(sheet_stem(path), str(path), 1, status=WORKER_DIED, reason=reason), None))
    return store_part(path, out, pt.fingerprint(path), [outcome], taken)


def _finished(path: Path, out: Path, taken: dict[str, str] | None = None, forms: str | None = None
              ) -> tuple[pt.ManifestRow, int] | None:
    """The manifest row and digit count of a file whose part is there and current (same content, the same page
    ids owned by other files: ``taken``, and read with the same templates: ``forms``, unless ``None``; a file that
    killed its worker stays current whatever the templates), else ``None``."""
    part = pt.part_path(out / pt.PARTS_DIR, path)
    stored = pt.read_part(part, arrays=False)
    if stored is None or stored[0].get("taken", []) != sorted(taken or {}) or not pt.is_current(stored[0], path):
        return None
    if forms is not None and stored[0].get("forms", "") not in (forms, ""):
        return None
    return manifest_row(path, stored[0], part.name), sum(stored[0]["n_digits"])


def _failure_row(path: Path, error: str) -> pt.ManifestRow:
    return pt.ManifestRow(pt.printable(path), "", 0, st.ERROR, STAGE_NONE, pt.printable(f"{path}: {error}"), "")


def read_all(paths: list[Path], out: Path, settings: ReadSettings, engine: EngineSettings,
             templates: Sequence[str | Path] = ()) -> dict[Path, tuple[pt.ManifestRow, int]]:
    """Read every file that has no current part (in parallel); returns each file's manifest row and digit count.

    A file on which the reader failed in an unexpected way gets a row without a part: it is reported now and read
    again by the next run. A file that killed its worker process gets a ``worker_died`` part: it is not read again.
    ``templates``: see :func:`read_file`.
    """
    clashes = page_id_clashes(paths)
    forms = forms_key(settings, templates)
    rows = {p: done for p in tqdm(paths, desc="resume", unit="file", leave=False)
            if (done := _finished(p, out, clashes.get(p), forms)) is not None}
    todo = [p for p in paths if p not in rows]
    if rows:
        log.info("resuming: %d file(s) already read, %d to read", len(rows), len(todo))
    work = partial(read_to_part, out=out, settings=settings, clashes=clashes, templates=tuple(map(str, templates)))
    for result in SettledBar(map_items(work, todo, engine, _init_worker, len(todo)), total=len(todo), desc="read",
                       unit="file"):
        if result.died:
            rows[result.item] = worker_died_part(result.item, out, clashes.get(result.item, {}))
        else:
            rows[result.item] = result.value if result.error is None else (_failure_row(result.item, result.error), 0)
    return rows


class RunTables:
    """Streams pages, crops, marks and digits into temporary files; :meth:`commit` renames them into place.

    Only a bounded buffer of rows is held, whatever the batch size: the rows go to their files every
    ``MERGE_BUFFER_ROWS``, the digits as they come (a memory map of the file would keep them all resident), and
    only the count of each page status is kept for the summary.
    """

    def __init__(self, out: Path, n_digits: int) -> None:
        self.out, self.offset = out, 0
        self.pages: list[dict] = []
        self.crops: list[dict] = []
        self.marks: list[dict] = []
        self.statuses: Counter = Counter()
        self.crop_sink = ParquetSink(out / "crops.parquet")
        self.page_sink = CsvSink(out / "pages.csv", PAGE_COLUMNS)
        self.mark_sink = CsvSink(out / "marks.csv", MARK_COLUMNS)
        self.digits_tmp = temp_path(out / "digits.npy")
        self.digits = NpyWriter(self.digits_tmp, (n_digits, MNIST_SIZE, MNIST_SIZE), np.uint8)

    def add(self, page: dict, crops: list[dict], marks: list[dict], digits: np.ndarray) -> None:
        """Append one page; its crops' ``digit_row`` are shifted to rows of the whole run's ``digits.npy``."""
        self.pages.append(page)
        self.statuses[page["status"]] += 1
        self.crops += [{**c, "digit_row": c["digit_row"] + self.offset if c["digit_row"] >= 0 else -1} for c in crops]
        self.marks += marks
        if len(digits):
            self.digits.write(digits)
        self.offset += len(digits)
        if len(self.pages) + len(self.crops) + len(self.marks) >= MERGE_BUFFER_ROWS:
            self.flush()

    def flush(self, last: bool = False) -> None:
        """Append the buffered page, crop and mark rows to their temporary files (``last``: the final flush,
        which creates the crop table even when it has no row)."""
        if self.crops or (last and self.crop_sink.writer is None):  # a first block with no crop would type no column
            self.crop_sink.write(crop_frame(self.crops))
        self.page_sink.write(pd.DataFrame(self.pages, columns=PAGE_COLUMNS))
        self.mark_sink.write(pd.DataFrame(self.marks, columns=MARK_COLUMNS))
        self.pages, self.crops, self.marks = [], [], []

    def commit(self) -> Counter:
        """Finish every table and rename it into place; returns the number of pages of each status."""
        self.flush(last=True)
        self.digits.close()
        self.crop_sink.commit()
        self.page_sink.commit()
        self.digits_tmp.replace(self.out / "digits.npy")
        self.mark_sink.commit()
        return self.statuses


def crop_frame(rows: list[dict]) -> pd.DataFrame:
    """Crop rows as the ``crops.parquet`` table, with integer columns typed as such."""
    return pd.DataFrame(rows, columns=CROP_COLUMNS).astype(
        {"box": "int64", "slot": "int64", "digit_row": "int64", "ink_pixels": "int64", "n_components": "int64",
         "struck": "bool"})


def merge_parts(paths: list[Path], rows: dict[Path, tuple[pt.ManifestRow, int]], dupes: dict[Path, Path],
                out: Path) -> Counter:
    """Write the four tables from the parts, in input order; idempotent. Returns the number of pages of each
    status."""
    tables = RelativeTables(out, sum(n for _, n in rows.values()))
    used: set[str] = set()
    later: list[dict] = []  # duplicate_id rows, listed after every other row
    for path in tqdm(paths, desc="merge", unit="file", leave=False):
        if path in dupes:
            later.append(_status_outcome(path, st.DUPLICATE_ID, f"{path}: sheet id '{sheet_stem(path)}' is already "
                                                                f"used by {dupes[path]}; rename one of them").page)
            continue
        row, _ = rows[path]
        stored = pt.read_part(out / pt.PARTS_DIR / row.part) if row.part else None
        if stored is None:
            tables.add(_status_outcome(path, row.status if row.status != st.OK else st.ERROR, row.error).page,
                       [], [], np.zeros((0, MNIST_SIZE, MNIST_SIZE)))
            continue
        meta, arrays = stored
        bounds = np.cumsum([0, *meta["n_digits"]])
        for i, page in enumerate(meta["pages"]):
            if page["status"] == st.DUPLICATE_ID:
                later.append(page)
            elif page["sheet_id"] in used:  # never merge two pages into one sheet, whatever made their ids equal
                later.append({**page, "status": st.DUPLICATE_ID, "reason": f"{page['source']}: sheet id "
                              f"'{page['sheet_id']}' is already used by another page; rename one of the files"})
            else:
                used.add(page["sheet_id"])
                tables.add(page, meta["crops"][i], meta["marks"][i], arrays["digits"][bounds[i]:bounds[i + 1]])
    for page in later:
        tables.add(page, [], [], np.zeros((0, MNIST_SIZE, MNIST_SIZE)))
    return tables.commit()


class RelativeTables(RunTables):
    """:class:`RunTables` whose page rows name their input relative to the run folder (:func:`relative_page`)."""

    def add(self, page: dict, crops: list[dict], marks: list[dict], digits: np.ndarray) -> None:
        """Append one page (see :meth:`RunTables.add`)."""
        super().add(relative_page(page, self.out), crops, marks, digits)


def _manifest_rows(paths: list[Path], rows: dict, dupes: dict[Path, Path]) -> list[pt.ManifestRow]:
    return [pt.ManifestRow(pt.printable(p), "", 0, st.DUPLICATE_ID, STAGE_NONE,
                           pt.printable(f"{p}: sheet id already used by {dupes[p]}"), "")
            if p in dupes else rows[p][0] for p in paths]


def record_template(template: Template, out: Path) -> Path:
    """Write the run's form template into the run folder (``template.yaml``) for the stages after reading; runs
    of the packaged acta (no ``read.template``) have none."""
    path = out / TEMPLATE_FILE
    write_text_atomic(path, yaml.safe_dump(portable_raw(template), sort_keys=False, allow_unicode=True))
    return path


def read_batch(paths: Iterable[Path | str], out: Path | str, settings: ReadSettings | None = None,
               engine: EngineSettings | None = None, templates: Sequence[str | Path] = ()) -> Path:
    """Read scans (files or folders, recursively) into the run folder ``out``; returns ``out``.

    Files read by an earlier, interrupted run into the same ``out`` with the same templates are not read again.
    ``engine`` says where the work runs (default: a local process pool); ``settings.workers``, when set, overrides
    its worker count. ``templates``: form template files; with several, each page is read with the one that
    registers best (module docstring); one is the same as ``settings.template``.

    Raises:
        ConfigError: a template cannot be loaded, or two templates share one name.
        InputFileError: an input path does not exist, or there is no scan at all.
        OutputError: another run is writing ``out``, or it cannot be written.
    """
    settings = settings or ReadSettings()
    if len(templates) == 1:  # one template is a plain single-template run: the same settings, parts and outputs
        settings, templates = replace(settings, template=str(templates[0])), ()
    forms = run_forms(settings, templates)
    check_names(forms, [str(t) for t in templates] or [settings.template or "the packaged acta"])
    engine = replace(engine or EngineSettings(), workers=settings.workers or (engine.workers if engine else 0))
    out = Path(out)
    scans = discover_scans(paths)
    with folder_lock(out):
        remove_scratch(out)
        remove_scratch(out / pt.PARTS_DIR)
        log.info("reading %d file(s) into %s", len(scans), out)
        dupes = _duplicates(scans)
        rows = read_all([p for p in scans if p not in dupes], out, settings, engine, templates)
        counts = merge_parts(scans, rows, dupes, out)
        pt.write_manifest(_manifest_rows(scans, rows, dupes), out / pt.MANIFEST_FILE)
        record_templates(forms, out, packaged_default=not templates and not settings.template)
    log.info("read %d page(s): %s", counts.total(), ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return out
