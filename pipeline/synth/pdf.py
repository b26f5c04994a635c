"""A minimal streaming PDF writer for scanned pages stored as JPEG.

Each page is one full-page image passed through unchanged (``/DCTDecode``), so pages are not re-compressed and
the file is byte-identical for identical input (no dates, no ids). Pages are written as they arrive; only their
offsets are kept in memory.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

POINTS_PER_INCH = 72
HEADER = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
CATALOG, PAGES = 1, 2


class JpegPdf:
    """Write ``path`` page by page: ``with JpegPdf(p) as pdf: pdf.add_page(jpeg, w, h, dpi, grey)``.

    The file appears (atomically) only when the ``with`` block ends without error.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        self._offsets: dict[int, int] = {}
        self._pages: list[int] = []
        self._file = None

    def __enter__(self) -> JpegPdf:
        self._file = self._tmp.open("wb")
        self._file.write(HEADER)
        self._object(CATALOG, f"<< /Type /Catalog /Pages {PAGES} 0 R >>".encode())
        return self

    def _object(self, number: int, body: bytes, stream: bytes | None = None) -> None:
        self._offsets[number] = self._file.tell()
        self._file.write(f"{number} 0 obj\n".encode() + body)
        if stream is not None:
            self._file.write(b"\nstream\n" + stream + b"\nendstream")
        self._file.write(b"\nendobj\n")

    def add_page(self, jpeg: bytes, width: int, height: int, dpi: float, grey: bool) -> None:
        """Append one page showing ``jpeg`` (``width`` x ``height`` pixels) at ``dpi``."""
        image, content, page = (PAGES + 1 + 3 * len(self._pages) + k for k in range(3))
        colour = "/DeviceGray" if grey else "/DeviceRGB"
        self._object(image, (f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} /ColorSpace "
                             f"{colour} /BitsPerComponent 8 /Filter /DCTDecode /Length {len(jpeg)} >>").encode(),
                     jpeg)
        w_pt, h_pt = (f"{v * POINTS_PER_INCH / dpi:.2f}" for v in (width, height))
        draw = f"q {w_pt} 0 0 {h_pt} 0 0 cm /Im0 Do Q".encode()
        self._object(content, f"<< /Length {len(draw)} >>".encode(), draw)
        self._object(page, (f"<< /Type /Page /Parent {PAGES} 0 R /MediaBox [0 0 {w_pt} {h_pt}] /Resources "
                            f"<< /XObject << /Im0 {image} 0 R >> >> /Contents {content} 0 R >>").encode())
        self._pages.append(page)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self._finish()
        finally:
            self._file.close()
        if exc_type is None:
            self._tmp.replace(self.path)
        else:
            self._tmp.unlink(missing_ok=True)

    def _finish(self) -> None:
        kids = " ".join(f"{p} 0 R" for p in self._pages)
        self._object(PAGES, f"<< /Type /Pages /Kids [{kids}] /Count {len(self._pages)} >>".encode())
        xref = self._file.tell()
        size = max(self._offsets) + 1
        rows = ["0000000000 65535 f "] + [f"{self._offsets[n]:010d} 00000 n " for n in range(1, size)]
        self._file.write((f"xref\n0 {size}\n" + "\n".join(rows) + "\n").encode())
        self._file.write(f"trailer\n<< /Size {size} /Root {CATALOG} 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
