"""Bad inputs for the fuzz test and the benchmark: mutated PNG/JPEG/PDF bytes and awkward pages.

Each input is a file in one folder; :func:`write_fuzz_inputs` returns their paths. Reading the folder must give
one manifest row per file, and no file may crash the reader.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

from pipeline.forms import load_template, render_blank

FUZZ_DPI = 100
TRUNCATIONS = (0.02, 0.3, 0.7, 0.98)
BIT_FLIPS = 6
HUGE_SIDE = 100_000
#: A tiny page for the many-pages PDF, so that the file stays small.
TINY_PAGE = 16


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png_header(side: int = HUGE_SIDE) -> bytes:
    """A PNG claiming ``side`` x ``side`` pixels with almost no data: a decompression bomb's header."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        _png_chunk(b"IEND", b"")


def jpeg_pdf(pages: int, side: int = TINY_PAGE) -> bytes:
    """A PDF of ``pages`` small grey JPEG pages, built with the synthetic batch's PDF writer."""
    import tempfile

    from pipeline.synth.pdf import JpegPdf

    jpeg = cv2.imencode(".jpg", np.full((side, side), 200, np.uint8))[1].tobytes()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.pdf"
        with JpegPdf(path) as pdf:
            for _ in range(pages):
                pdf.add_page(jpeg, side, side, 72, True)
        return path.read_bytes()


EMPTY_PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
             b"trailer<</Root 1 0 R>>\n%%EOF\n")


def _flip_bits(data: bytes, rng: np.random.Generator, n: int = 8) -> bytes:
    """``data`` with ``n`` random bits flipped past the first 8 bytes (so the format is still recognised)."""
    arr = np.frombuffer(data, np.uint8).copy()
    where = rng.integers(8, len(arr), n)
    arr[where] ^= (1 << rng.integers(0, 8, n)).astype(np.uint8)
    return arr.tobytes()


def fuzz_inputs(seed: int = 0, max_pdf_pages: int = 4) -> dict[str, bytes]:
    """``{file name: bytes}`` of about 40 bad or awkward inputs (``max_pdf_pages`` sizes the long PDF)."""
    rng = np.random.default_rng(seed)
    page = render_blank(load_template(), FUZZ_DPI)
    png, jpg = cv2.imencode(".png", page)[1].tobytes(), cv2.imencode(".jpg", page)[1].tobytes()
    pdf = jpeg_pdf(2)
    files = {f"trunc_png_{int(f * 100)}.png": png[:int(len(png) * f)] for f in TRUNCATIONS}
    files |= {f"trunc_jpg_{int(f * 100)}.jpg": jpg[:int(len(jpg) * f)] for f in TRUNCATIONS}
    files |= {f"flip_png_{i}.png": _flip_bits(png, rng) for i in range(BIT_FLIPS)}
    files |= {f"flip_jpg_{i}.jpg": _flip_bits(jpg, rng) for i in range(BIT_FLIPS)}
    files |= {"png_as.jpg": png, "jpeg_as.png": jpg, "pdf_as.png": pdf, "png_disguised.pdf": png,
              "text_as.png": b"hello\n",
              "gif_as.png": b"GIF89a" + bytes(64), "random.jpg": rng.bytes(4096),
              "empty_png.png": b"", "empty_pdf.pdf": b"", "huge_header.png": huge_png_header(),
              "pdf_no_pages.pdf": EMPTY_PDF,
              "pdf_garbage.pdf": b"%PDF-1.7\n" + rng.bytes(2048), "pdf_truncated.pdf": pdf[:len(pdf) // 2],
              "pdf_flip.pdf": _flip_bits(pdf, rng, 32), "pdf_many_pages.pdf": jpeg_pdf(2 * max_pdf_pages),
              "blank.png": cv2.imencode(".png", np.full_like(page, 250))[1].tobytes(),
              "upside_down.png": cv2.imencode(".png", cv2.rotate(page, cv2.ROTATE_180))[1].tobytes(),
              "sideways.png": cv2.imencode(".png", cv2.rotate(page, cv2.ROTATE_90_CLOCKWISE))[1].tobytes(),
              "one_pixel.png": cv2.imencode(".png", np.zeros((1, 1), np.uint8))[1].tobytes(),
              "deep16.png": cv2.imencode(".png", page.astype(np.uint16) * 257)[1].tobytes(),
              "...png": png}
    return files


def write_fuzz_inputs(folder: Path, seed: int = 0, max_pdf_pages: int = 4) -> list[Path]:
    """Write :func:`fuzz_inputs` into ``folder`` plus one file with no permissions; returns every path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in fuzz_inputs(seed, max_pdf_pages).items():
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    locked = folder / "no_permission.png"
    locked.write_bytes(b"\x89PNG\r\n\x1a\n")
    locked.chmod(0)  # unreadable for a normal user; root still reads it, and it is a broken PNG either way
    return paths + [locked]
