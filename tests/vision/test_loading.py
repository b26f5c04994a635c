"""Bad input: every kind of unreadable file becomes a status and a reason, never an exception or a huge decode."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.errors import InputFileError
from pipeline.vision import settings as st
from pipeline.vision.loading import discover_scans, load_pages
from pipeline.vision.settings import ReadSettings


def pdf_bytes(objects: list[str]) -> bytes:
    """A minimal, valid PDF with the given objects (object 1 is the catalogue)."""
    out, offsets = b"%PDF-1.4\n", []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    return out + f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's calling card)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
def page_png(tmp_path) -> bytes:
    ok, data = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (400, 300), dtype=np.uint8))
    return data.tobytes()


def only_page(path: Path, settings=None):
    pages = list(load_pages(path, settings or ReadSettings()))
    assert len(pages) == 1
    return pages[0]


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    page = only_page(path)
    assert (page.status, page.sheet_id, page.image) == (st.EMPTY_FILE, "empty", None)
    assert str(path) in page.reason and "empty" in page.reason


@pytest.mark.parametrize("ext, cut", [(".png", 0.5), (".jpg", 0.5), (".png", 0.05)])
def test_truncated_image(tmp_path, filled, ext, cut):
    page, _ = filled
    data = cv2.imencode(ext, page)[1].tobytes()
    path = tmp_path / f"cut{ext}"
    path.write_bytes(data[: int(len(data) * cut)])
    result = only_page(path)
    assert result.status == st.UNREADABLE and str(path) in result.reason


def test_corrupt_bytes_with_an_image_name(tmp_path):
    path = tmp_path / "garbage.jpg"
    path.write_bytes(b"this is not an image at all" * 100)
    assert only_page(path).status == st.UNREADABLE


def test_huge_image_header_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(60_000, 60_000))
    page = only_page(path)
    assert page.status == st.TOO_LARGE
    assert "60000x60000" in page.reason and "max_pixels" in page.reason


def test_pixel_limit_is_a_setting(tmp_path, page_png):
    path = tmp_path / "page.png"
    path.write_bytes(page_png)
    assert only_page(path, ReadSettings(max_pixels=1000)).status == st.TOO_LARGE
    assert only_page(path).status == st.OK


def test_pdf_with_no_pages(tmp_path):
    path = tmp_path / "nothing.pdf"
    path.write_bytes(pdf_bytes(["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [] /Count 0 >>"]))
    page = only_page(path)
    assert page.status == st.NO_PAGES and "no pages" in page.reason


def test_corrupt_pdf(tmp_path):
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\n" + b"\x00garbage" * 50)
    assert only_page(path).status == st.UNREADABLE


def test_huge_pdf_page_is_refused_before_rendering(tmp_path):
    path = tmp_path / "poster.pdf"
    path.write_bytes(pdf_bytes(["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 14000 14000] >>"]))
    page = only_page(path)
    assert page.status == st.TOO_LARGE and "page 1" in page.reason


def test_multi_page_pdf_and_tiff_pages_get_their_own_ids(tmp_path, filled):
    page, _ = filled
    images = [Image.fromarray(page), Image.fromarray(255 - page)]
    images[0].save(tmp_path / "batch.pdf", "PDF", resolution=200.0, save_all=True, append_images=images[1:])
    cv2.imwritemulti(str(tmp_path / "batch.tif"), [page, 255 - page])
    for name in ("batch.pdf", "batch.tif"):
        pages = list(load_pages(tmp_path / name, ReadSettings()))
        assert [(p.sheet_id, p.page, p.status) for p in pages] == [("batch", 1, st.OK), ("batch-p2", 2, st.OK)]
        assert abs(pages[0].image.shape[0] - page.shape[0]) <= 2  # rendered back at the reading dpi


def test_pages_past_the_limit_are_one_row(tmp_path, filled):
    page, _ = filled
    frames = [Image.fromarray(page)] * 3
    frames[0].save(tmp_path / "long.pdf", "PDF", resolution=200.0, save_all=True, append_images=frames[1:])
    pages = list(load_pages(tmp_path / "long.pdf", ReadSettings(max_pdf_pages=2)))
    assert [p.status for p in pages] == [st.OK, st.OK, st.PAGE_LIMIT]
    assert "pages 3-3 not read" in pages[-1].reason


def test_colour_and_16_bit_scans_become_grey(tmp_path):
    colour = np.zeros((50, 40, 3), np.uint8)
    colour[..., 2] = 200  # red in BGR
    cv2.imwrite(str(tmp_path / "colour.png"), colour)
    deep = (np.arange(50 * 40).reshape(50, 40) * 30).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    grey = only_page(tmp_path / "colour.png").image
    assert grey.ndim == 2 and 50 < grey.mean() < 70  # red is dark-ish in luminance
    assert only_page(tmp_path / "deep.png").image.max() == 255


def test_discover_scans_walks_folders_and_names_what_is_missing(tmp_path, page_png):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/one.png", "a/b/two.PDF", "a/notes.txt", "three.jpg"):
        (tmp_path / name).write_bytes(page_png)
    found = discover_scans([tmp_path / "a", tmp_path / "three.jpg"])
    assert [p.name for p in found] == ["two.PDF", "one.png", "three.jpg"]
    with pytest.raises(InputFileError, match="nope"):
        discover_scans([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no scans found"):
        discover_scans([tmp_path / "empty"])


def test_formats_outside_the_scan_formats_are_refused(tmp_path):
    path = tmp_path / "scan.png"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(path, format="GIF")  # a GIF behind a scan's name
    assert only_page(path).status == st.UNREADABLE


def test_an_image_embedded_in_a_pdf_is_bounded_before_it_is_decoded(tmp_path):
    import resource

    from pipeline.engine.fuzz import BOMB_IMAGE_SIDE, image_bomb_pdf
    from pipeline.vision.loading import load_pages

    path = tmp_path / "bomb.pdf"
    path.write_bytes(image_bomb_pdf())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pages = list(load_pages(path, ReadSettings()))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert [p.status for p in pages] == [st.TOO_LARGE]
    assert f"{BOMB_IMAGE_SIDE}x{BOMB_IMAGE_SIDE}" in pages[0].reason and "embedded image" in pages[0].reason
    assert grown_mb < 200, f"decoding the bomb took {grown_mb:.0f} MB"
