import itertools

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.forms import Rect, load_template, render_blank
from pipeline.forms.template import parse_template


def all_boxes(template):
    return [(f.name, b) for f in template.fields for b in f.boxes]


def test_every_box_lies_inside_the_frame(template):
    fr = template.frame
    for name, b in all_boxes(template):
        assert fr.x < b.x and b.x + b.w < fr.x + fr.w, name
        assert fr.y < b.y and b.y + b.h < fr.y + fr.h, name


def test_no_two_boxes_overlap(template):
    rects = all_boxes(template) + [("fiducial", r) for r in template.fiducials]
    for (n1, a), (n2, b) in itertools.combinations(rects, 2):
        assert not a.overlaps(b), f"{n1} overlaps {n2}"


def test_form_has_the_1988_acta_fields(template):
    assert template.parties == ("pan", "pri", "pps", "parm", "pfcrn", "pms", "pdm", "prt")
    for name in ("state", "district", "section", "station", "station_type", "unregistered", "null_votes",
                 "total_votes", "ballots_received", "ballots_left_over", "registered_voters"):
        template.field(name)
    ticks = template.fields_of_kind("tick")
    assert {f.party_of for f in ticks} == set(template.parties)
    assert all(len(f.boxes) == 3 for f in template.fields_of_kind("count"))
    assert template.field("station_type").options == ("B", "C", "E")


def test_unknown_field_names_the_known_ones(template):
    with pytest.raises(KeyError, match="pan"):
        template.field("nope")


def test_rect_to_px_scales_with_dpi():
    assert Rect(25.4, 0, 25.4, 10).to_px(100) == (100, 0, 200, 39)


def test_bad_kind_is_a_config_error(template):
    raw = dict(template.raw, fields=[{"name": "x", "kind": "bogus", "x": 1, "y": 1}])
    with pytest.raises(ConfigError, match="bogus"):
        parse_template(raw)


@pytest.mark.parametrize("dpi", [150, 200, 300])
def test_blank_form_draws_boxes_where_the_template_says(template, dpi):
    img = render_blank(template, dpi)
    assert img.shape == template.size_px(dpi)[::-1] and img.dtype == np.uint8
    x0, y0, x1, y1 = template.field("pan").boxes[0].to_px(dpi)
    assert img[y0 + 2: y1 - 2, x0: x0 + 2].mean() < 128  # left edge is printed
    assert img[y0 + 4: y1 - 4, x0 + 4: x1 - 4].min() == 255  # inside is blank
    for fid in template.fiducials:
        fx0, fy0, fx1, fy1 = fid.to_px(dpi)
        assert img[fy0 + 1: fy1 - 1, fx0 + 1: fx1 - 1].max() == 0


@pytest.mark.parametrize("suffix", [".png", ".pdf"])
def test_form_command_writes_a_file(tmp_path, suffix):
    out = tmp_path / f"blank{suffix}"
    assert main(["form", "--out", str(out), "--dpi", "100"]) == 0
    assert out.stat().st_size > 1000


def test_load_template_is_cached():
    assert load_template() is load_template()
