"""Sheet-page pieces: overlay geometry and colours, scan copies (resized, size-checked), bad images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.errors import InputFileError
from pipeline.report.sheetpages import Confidence, image_size, numeric_overlay, percent_box, place_scan, shrink_copy


def test_percent_box_is_relative_to_the_page(template):
    box = percent_box(template.frame, template)
    assert box["left"] == pytest.approx(100 * 8 / 210) and box["width"] == pytest.approx(100 * 194 / 210)
    assert box["top"] == pytest.approx(100 * 8 / 297) and box["height"] == pytest.approx(100 * 281 / 297)


@pytest.mark.parametrize(("confidence", "css"), [(0.95, "conf-high"), (0.9, "conf-high"), (0.7, "conf-mid"),
                                                 (0.59, "conf-low"), (None, "conf-none"), (float("nan"), "conf-none")])
def test_confidence_colours(confidence, css):
    assert Confidence(high=0.9, low=0.6).css_class(confidence) == css


def test_numeric_overlay_prefers_the_recogniser_text(template):
    pan = template.field("pan")
    read = {"text": "1?3", "value": None, "confidence": 0.4, "needs_review": True,
            "alternatives": "[[103, 0.4], [113, 0.3]]"}
    entry = numeric_overlay(pan, read, {"pan": 103, "pan_conf": 0.4}, {"pan"}, template, Confidence(0.9, 0.6))
    assert (entry["text"], entry["conf_class"], entry["flagged"], entry["needs_review"]) == ("1?3", "conf-low",
                                                                                             True, True)
    assert entry["alternatives"] == "103 (0.40), 113 (0.30)"
    from_table = numeric_overlay(pan, None, {"pan": 57, "pan_conf": 0.99}, set(), template, Confidence(0.9, 0.6))
    assert (from_table["text"], from_table["conf_class"], from_table["flagged"]) == ("57", "conf-high", False)


def test_wide_scans_are_shrunk_narrow_ones_copied(tmp_path):
    wide, narrow = tmp_path / "wide.png", tmp_path / "narrow.jpg"
    cv2.imwrite(str(wide), np.full((400, 300), 128, np.uint8))
    cv2.imwrite(str(narrow), np.full((40, 30), 128, np.uint8))
    small = shrink_copy(wide, tmp_path / "out" / "a", 150, 80)
    assert small.suffix == ".jpg" and cv2.imread(str(small)).shape[:2] == (200, 150)
    same = shrink_copy(narrow, tmp_path / "out" / "b", 150, 80)
    assert same.name == "b.jpg" and same.read_bytes() == narrow.read_bytes()


def test_huge_or_broken_images_are_refused_before_decoding(tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("1", (8000, 6000)).save(huge)
    with pytest.raises(InputFileError, match="huge.png: 8000x6000 pixels is more than"):
        image_size(huge)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(InputFileError, match="broken.jpg: not a readable image"):
        image_size(broken)
    assert place_scan(broken, tmp_path / "r", "s", copy=True, max_width=100, quality=80) is None
