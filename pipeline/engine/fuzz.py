"""Bad inputs for the fuzz test and the benchmark: mutated PNG/JPEG/PDF bytes, awkward pages and awkward entries.

Each input is a file in one folder; :func:`write_fuzz_inputs` returns their paths. Reading the folder must give
one manifest row per file, and no file may crash the reader. Besides the files of :func:`fuzz_inputs` the folder
holds entries that are not plain files or plain names: a name that is not UTF-8, a link to nothing, a link to
``/dev/zero``, a file without read permission, and a page id that is another file's name (``collide.pdf`` page 2
and ``collide-p2.png``).
"""

from __future__ import annotations

import os
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
#: Side (pixels) an image embedded in an A4 PDF page claims: 40000 x 40000 is 1.6 Gpx, 1.6 GB of grey once decoded.
BOMB_IMAGE_SIDE = 40_000
#: A device that never ends: reading it as a file would never stop.
DEV_ZERO = "/dev/zero"
#: An A4 page in PDF points.
A4_POINTS = (595, 842)


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


def image_bomb_pdf(side: int = BOMB_IMAGE_SIDE) -> bytes:
    """A one-page A4 PDF whose page draws one grey image claiming ``side`` x ``side`` pixels (its Flate data is a
    few zeros): the page is small, the image would take ``side``\u00b2 bytes once decoded."""
    width, height = A4_POINTS
    data = zlib.compress(b"\0" * 1024)
    content = f"q {width} 0 0 {height} 0 0 cm /Im0 Do Q".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] /Resources << /XObject << /Im0 5 0 R "
               f">> >> /Contents 4 0 R >>".encode(),
               f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream",
               f"<< /Type /XObject /Subtype /Image /Width {side} /Height {side} /ColorSpace /DeviceGray "
               f"/BitsPerComponent 8 /Filter /FlateDecode /Length {len(data)} >>\nstream\n".encode() + data
               + b"\nendstream"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer << /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


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
              "pdf_image_bomb.pdf": image_bomb_pdf(),
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
    return paths + [locked] + write_awkward_entries(folder)


def write_awkward_entries(folder: Path) -> list[Path]:
    """Entries that are hard by their name or type rather than their bytes (see the module docstring); returns
    their paths."""
    page = render_blank(load_template(), FUZZ_DPI)
    png = cv2.imencode(".png", page)[1].tobytes()
    latin1 = folder / os.fsdecode(b"latin1_\xe9\xff.png")  # a name written by a Latin-1 system
    latin1.write_bytes(png)
    dangling, zero = folder / "dangling_link.png", folder / "dev_zero_link.png"
    for link, target in ((dangling, folder / "nothing_here.png"), (zero, Path(DEV_ZERO))):
        link.unlink(missing_ok=True)  # the folder may hold them from an earlier bench
        link.symlink_to(target)
    (folder / "collide.pdf").write_bytes(jpeg_pdf(2))
    (folder / "collide-p2.png").write_bytes(png)
    return [latin1, dangling, zero, folder / "collide.pdf", folder / "collide-p2.png"]
