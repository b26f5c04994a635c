"""Fuzz: mutated images and PDFs, awkward pages and unreadable entries never crash a read and each get a row."""

from __future__ import annotations

import os

import pandas as pd

from pipeline.engine import parts as pt
from pipeline.engine.fuzz import write_fuzz_inputs
from pipeline.vision import read_batch
from pipeline.vision import settings as st
from pipeline.vision.batch import UNSAFE_NAME
from pipeline.vision.loading import NOT_A_FILE
from pipeline.vision.settings import ReadSettings

PAGE_LIMIT = 4
MAX_PIXELS = 5_000_000


def test_every_bad_input_gets_a_status_row_and_nothing_crashes(tmp_path):
    inputs = write_fuzz_inputs(tmp_path / "fuzz", seed=7, max_pdf_pages=PAGE_LIMIT)
    assert len(inputs) >= 40
    run = read_batch([tmp_path / "fuzz"], tmp_path / "run",
                     ReadSettings(workers=2, max_pdf_pages=PAGE_LIMIT, max_pixels=MAX_PIXELS))
    manifest = pd.read_csv(run / pt.MANIFEST_FILE, keep_default_na=False).set_index("path")
    pages = pd.read_csv(run / "pages.csv", keep_default_na=False)
    assert sorted(manifest.index) == sorted(map(pt.printable, inputs))
    assert set(pages["source"]) == {os.path.relpath(p, run) for p in manifest.index}  # relative to the run folder
    assert not (manifest["status"] == st.ERROR).any(), manifest.loc[manifest["status"] == st.ERROR, "error"]
    bad = manifest[manifest["status"] != st.OK]
    assert (bad["error"].str.len() > 0).all(), "a bad input without a reason"
    status = {k.rsplit("/", 1)[1]: v for k, v in manifest["status"].items()}
    assert status["empty_png.png"] == status["empty_pdf.pdf"] == st.EMPTY_FILE
    assert status["huge_header.png"] == st.TOO_LARGE
    assert status["pdf_no_pages.pdf"] in (st.NO_PAGES, st.UNREADABLE)
    assert status["text_as.png"] == status["gif_as.png"] == st.UNREADABLE
    assert status["blank.png"] == st.NOT_A_FORM
    assert status["upside_down.png"] == status["png_as.jpg"] == status["jpeg_as.png"] == st.OK
    assert status["...png"] == UNSAFE_NAME and st.DUPLICATE_ID not in status.values()
    assert status["pdf_image_bomb.pdf"] == st.TOO_LARGE
    assert status["latin1_\\xe9\\xff.png"] == status["collide-p2.png"] == st.OK
    assert status["dangling_link.png"] == status["dev_zero_link.png"] == NOT_A_FILE
    collide = pages[pages["sheet_id"] == "collide-p2"]
    assert collide["status"].tolist() == [st.OK, st.DUPLICATE_ID], "a page id that is another file's name merged"
    assert collide["source"].str.endswith("collide.pdf").tolist() == [False, True]
    long_pdf = pages[pages["source"].str.endswith("pdf_many_pages.pdf")]
    assert len(long_pdf) == PAGE_LIMIT + 1 and long_pdf["status"].iloc[-1] == st.PAGE_LIMIT
