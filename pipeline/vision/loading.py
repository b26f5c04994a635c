"""Find scan files and decode their pages safely.

Every page's pixel count is checked from the file header before anything is decoded (decompression bombs), and so
is every image embedded in a PDF page, before the page is rendered with PDFium at the reading resolution. Only
regular files are opened (never a device, a pipe or a dangling link), and any file that cannot be read becomes a
:class:`ScanPage` with a status and a reason instead of an exception, so one bad file never stops a batch.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
from PIL import Image

from pipeline.engine.parts import name_to_id, printable
from pipeline.errors import InputFileError
from pipeline.vision import settings as st
from pipeline.vision.settings import ReadSettings

log = logging.getLogger(__name__)

POINTS_PER_INCH = 72.0
#: Image formats PIL may decode; others (EPS would start Ghostscript, ...) are refused as unreadable.
IMAGE_FORMATS = ("PNG", "JPEG", "TIFF", "BMP")
#: PIL modes holding more than 8 bits per pixel; they are rescaled by their maximum instead of clipped.
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I", "F")
#: Status of an input that is not a regular file: a dangling link, a device (``/dev/zero``), a pipe, a socket.
NOT_A_FILE = "not_a_file"
#: Nesting of form XObjects searched for embedded images (PDFium's own default).
PDF_OBJECT_DEPTH = 15


class PageInputError(InputFileError):
    """A file or page that cannot be read; ``status`` is the ``pages.csv`` status it becomes."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ScanPage:
    """One page of one input file: its grey image, or the status saying why there is none."""

    sheet_id: str
    source: str
    page: int
    image: np.ndarray | None = field(default=None, repr=False)
    status: str = st.OK
    reason: str = ""


def discover_scans(inputs: Iterable[Path | str]) -> list[Path]:
    """Expand files and folders (recursively) into scan files, folders' files sorted by path.

    Anything in a folder with a scan's extension that is not a folder is found, links that lead nowhere and
    devices included, so that each becomes a row that says what it is instead of being skipped silently.

    Raises:
        InputFileError: an input does not exist, or no scan file was found at all.
    """
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if not p.is_dir() and p.suffix.lower() in st.SCAN_EXTENSIONS)
        elif item.is_symlink() or item.exists():
            found.append(item)
        else:
            raise InputFileError(f"{printable(item)}: no such file or folder")
    if not found:
        raise InputFileError("no scans found in " + ", ".join(map(printable, inputs))
                             + f" (looked for {' '.join(st.SCAN_EXTENSIONS)})")
    return found


def sheet_stem(path: Path) -> str:
    """The sheet id of a file's first page: its stem, with bytes that are not UTF-8 as ``~XX``."""
    return name_to_id(Path(path).stem)


def sheet_id_for(path: Path, page: int) -> str:
    """The join key of a page: the file's :func:`sheet_stem`, plus ``-p<N>`` for page N > 1 of a multi-page file."""
    return sheet_stem(path) if page == 1 else f"{sheet_stem(path)}-p{page}"


def not_a_file_reason(path: Path) -> str | None:
    """Why ``path`` must not be opened (a dangling link, a device, a pipe, ...), or ``None`` for a regular file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if Path(path).is_symlink():
            return f"{path}: a symbolic link to {os.readlink(path)}, which does not exist"
        return f"{path}: no such file"
    except OSError as exc:
        return f"{path}: cannot be looked at ({exc.strerror})"
    if stat.S_ISREG(mode):
        return None
    kind = ("a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")
    via = f" (through the link {path} -> {os.readlink(path)})" if Path(path).is_symlink() else ""
    return f"{path}: {kind}{via}, not a regular file; only regular files are read"


def check_pixels(path: Path, width: float, height: float, limit: int) -> None:
    """Raise ``too_large`` when a ``width`` x ``height`` page exceeds ``limit`` pixels."""
    if width * height > limit:
        raise PageInputError(st.TOO_LARGE, f"{path}: page is {int(width)}x{int(height)} pixels, over the limit of "
                                           f"{limit:,} (max_pixels)")


def to_grey(im: Image.Image) -> np.ndarray:
    """A decoded PIL image as uint8 grey; deep images are scaled by their maximum rather than clipped.

    JPEGs are decoded straight to grey (PIL's draft mode), which halves the decoding time of colour scans. A page
    already grey is taken as it is (``convert`` to its own mode would only copy it).
    """
    if im.format == "JPEG":
        im.draft("L", im.size)
    if im.mode in WIDE_MODES:
        arr = np.asarray(im, dtype=np.float32)
        top = float(arr.max()) or 1.0
        return np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8)
    return np.asarray(im if im.mode == "L" else im.convert("L"))


def _open_image(path: Path) -> Image.Image:
    """Open ``path`` reading only its header. Our own pixel limit is checked per page before decoding, so PIL's
    bomb check (which raises on open, with a less useful message) is switched off for the call."""
    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None
        return Image.open(path, formats=IMAGE_FORMATS)
    except (OSError, SyntaxError, ValueError) as exc:
        raise PageInputError(st.UNREADABLE, f"{path}: not a readable image ({exc})") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _image_page(im: Image.Image, path: Path, index: int, settings: ReadSettings) -> ScanPage:
    sheet_id = sheet_id_for(path, index + 1)
    try:
        im.seek(index)
        check_pixels(path, *im.size, settings.max_pixels)
        return ScanPage(sheet_id, str(path), index + 1, to_grey(im))
    except PageInputError as exc:
        return ScanPage(sheet_id, str(path), index + 1, status=exc.status, reason=str(exc))
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # PIL reports corrupt data with all of these
        return ScanPage(sheet_id, str(path), index + 1, status=st.UNREADABLE,
                        reason=f"{path}: not a readable image ({exc})")


def _image_pages(path: Path, settings: ReadSettings) -> Iterator[ScanPage]:
    with _open_image(path) as im:
        n_pages = getattr(im, "n_frames", 1)
        for index in range(min(n_pages, settings.max_pdf_pages)):
            yield _image_page(im, path, index, settings)
        yield from _page_limit_rows(path, n_pages, settings)


def _open_pdf(path: Path) -> pdfium.PdfDocument:
    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium.raw.FPDF_ERR_SUCCESS:  # PDFium refuses page-less documents
            raise PageInputError(st.NO_PAGES, f"{path}: the PDF has no pages") from exc
        raise PageInputError(st.UNREADABLE, f"{path}: not a readable PDF ({exc})") from exc
    if len(pdf) == 0:
        pdf.close()
        raise PageInputError(st.NO_PAGES, f"{path}: the PDF has no pages")
    return pdf


def _pdf_page(pdf: pdfium.PdfDocument, path: Path, index: int, settings: ReadSettings) -> ScanPage:
    sheet_id = sheet_id_for(path, index + 1)
    scale = settings.dpi / POINTS_PER_INCH
    try:
        page = pdf[index]
        width, height = page.get_size()
        check_pixels(path, width * scale, height * scale, settings.max_pixels)
        check_embedded_images(page, path, settings.max_pixels)
        image = page.render(scale=scale, grayscale=True).to_numpy()
    except PageInputError as exc:
        return ScanPage(sheet_id, str(path), index + 1, status=exc.status, reason=f"{exc} (page {index + 1})")
    except pdfium.PdfiumError as exc:
        return ScanPage(sheet_id, str(path), index + 1, status=st.UNREADABLE,
                        reason=f"{path}: page {index + 1} cannot be rendered ({exc})")
    return ScanPage(sheet_id, str(path), index + 1, np.ascontiguousarray(image.reshape(image.shape[:2])))


def check_embedded_images(page: pdfium.PdfPage, path: Path, limit: int) -> None:
    """Raise ``too_large`` when an image embedded in ``page`` (in forms too) holds more than ``limit`` pixels.

    Rendering decodes every image at its own size, whatever the page size, so a small page can hide a bomb; the
    sizes come from the images' dictionaries, before anything is decoded.
    """
    for obj in page.get_objects(filter=[pdfium.raw.FPDF_PAGEOBJ_IMAGE], max_depth=PDF_OBJECT_DEPTH):
        try:
            width, height = obj.get_px_size()
        except pdfium.PdfiumError:
            continue  # no size recorded: PDFium will fail to render it, which is reported as unreadable
        if width * height > limit:
            raise PageInputError(st.TOO_LARGE, f"{path}: an embedded image is {width}x{height} pixels, over the "
                                               f"limit of {limit:,} (max_pixels)")


def _pdf_pages(path: Path, settings: ReadSettings) -> Iterator[ScanPage]:
    pdf = _open_pdf(path)
    try:
        for index in range(min(len(pdf), settings.max_pdf_pages)):
            yield _pdf_page(pdf, path, index, settings)
        yield from _page_limit_rows(path, len(pdf), settings)
    finally:
        pdf.close()


def _page_limit_rows(path: Path, n_pages: int, settings: ReadSettings) -> Iterator[ScanPage]:
    """One row standing for every page past the page limit, so that skipping them is visible."""
    limit = settings.max_pdf_pages
    if n_pages > limit:
        yield ScanPage(sheet_id_for(path, limit + 1), str(path), limit + 1, status=st.PAGE_LIMIT,
                       reason=f"{path}: pages {limit + 1}-{n_pages} not read (max_pdf_pages is {limit})")


def load_pages(path: Path, settings: ReadSettings) -> Iterator[ScanPage]:
    """Yield the pages of one scan file; a file that cannot be read yields one row with its status and reason."""
    path = Path(path)
    reason = not_a_file_reason(path)
    if reason is not None:
        yield ScanPage(sheet_id_for(path, 1), str(path), 1, status=NOT_A_FILE, reason=reason)
        return
    try:
        if path.stat().st_size == 0:
            raise PageInputError(st.EMPTY_FILE, f"{path}: the file is empty")
        with path.open("rb") as fh:
            is_pdf = fh.read(5) == b"%PDF-"
        yield from (_pdf_pages if is_pdf else _image_pages)(path, settings)
    except PageInputError as exc:
        log.warning("%s", exc)
        yield ScanPage(sheet_id_for(path, 1), str(path), 1, status=exc.status, reason=str(exc))
    except OSError as exc:
        yield ScanPage(sheet_id_for(path, 1), str(path), 1, status=st.UNREADABLE, reason=f"{path}: {exc}")
