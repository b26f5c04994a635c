"""The wide generator's style groups: a disjoint train/heldout split, each batch drawing only from its group,
leave-one-style-out, the truth columns, determinism, and the classic generator left as it was."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ConfigError
from pipeline.forms import load_template
from pipeline.synth import SynthSettings, generate_batch, plan_sheet, render_sheet
from pipeline.synth.damage import sample_damage
from pipeline.synth.sheet import sheet_pens
from pipeline.synth.styles import (
    ALL_STYLES,
    CLASSIC,
    CLASSIC_TAMPER,
    DAMAGE_STYLES,
    GROUPS,
    HELDOUT,
    PEN_COLOURS,
    TAMPER_STYLES,
    TRAIN,
    WRITER_STYLES,
)
from tests.synth.common import FAST, TAMPERED, folder_hashes
from tests.synth.test_batch import COUNTS

N_PLANS = 300
N_DRAWS = 200
WIDE_BATCH = {**FAST, **TAMPERED, "style_set": "all", "quarter_turn_rate": 0.5}


@pytest.fixture(scope="module")
def wide_batch(tmp_path_factory, digits):
    return generate_batch(SynthSettings(sheets=6, seed=21, **WIDE_BATCH), tmp_path_factory.mktemp("wide") / "b",
                          digits)


@pytest.fixture(scope="module")
def wide_truth(wide_batch):
    return pd.read_csv(wide_batch / "truth.csv", keep_default_na=False)


def styles_drawn(settings: SynthSettings) -> set[str]:
    """Every style name the settings produce over many cheap draws (plans, pens, damage)."""
    counts = tuple(f.name for f in load_template().fields_of_kind("count"))
    seen: set[str] = set()
    for i in range(1, N_PLANS + 1):
        seen |= {f.style for f in plan_sheet(i, settings).fields.values()} - {"none", "fabricated"}
    for i in range(N_DRAWS):
        rng = np.random.default_rng(i)
        seen |= set(sample_damage(rng, settings).styles)
        pens = sheet_pens(rng, settings, counts)
        seen |= {pens.pens.honest.colour, pens.pens.altering.colour, pens.record["hand"],
                 pens.record["honest_pen_variation"]} - {"none", "classic"}
        seen |= {p.honest.colour for p in pens.fields.values()}
    return seen


def test_train_and_heldout_are_disjoint_and_cover_every_family():
    assert not TRAIN & HELDOUT
    assert TRAIN | HELDOUT == ALL_STYLES and CLASSIC <= TRAIN
    for family in (set(TAMPER_STYLES), set(WRITER_STYLES), set(DAMAGE_STYLES)):
        assert family & TRAIN and family & HELDOUT
    for group in (TRAIN, HELDOUT):  # each group can alter by overwrite, fluid and crossout
        assert {"overwrite", "fluid", "crossout"} <= {TAMPER_STYLES[s] for s in group if s in TAMPER_STYLES}
    assert set(GROUPS["all"]) == ALL_STYLES


@pytest.mark.parametrize("style_set", ["train", "heldout", "all"])
def test_a_style_set_draws_only_from_its_group(style_set):
    seen = styles_drawn(SynthSettings(style_set=style_set, **TAMPERED, field_pen_rate=0.6))
    assert seen <= GROUPS[style_set], seen - GROUPS[style_set]
    assert {s for s in seen if s in TAMPER_STYLES} == {s for s in GROUPS[style_set] if s in TAMPER_STYLES}
    assert {s for s in seen if s in DAMAGE_STYLES} == {s for s in GROUPS[style_set] if s in DAMAGE_STYLES}


def test_classic_draws_only_the_four_classic_styles():
    seen = styles_drawn(SynthSettings(**TAMPERED))
    assert seen <= CLASSIC | {"blue", "black"}
    assert {s for s in seen if s in TAMPER_STYLES} == set(CLASSIC_TAMPER.values())


def test_excluded_styles_are_never_drawn_and_the_rest_stay_put():
    base = SynthSettings(style_set="all", **TAMPERED)
    without = SynthSettings(style_set="all", **TAMPERED, exclude_styles=("hatching", "curl", "red"))
    seen = styles_drawn(without)
    assert not {"hatching", "curl", "red"} & seen and "scribble" in seen and "banding" in seen
    a, b = plan_sheet(3, base), plan_sheet(3, without)
    assert a.station == b.station  # the stations and which fields are changed do not depend on the styles


def test_visible_style_matches_its_kind_and_honest_fields_have_none(wide_truth):
    for f in COUNTS:
        for kind, style in zip(wide_truth[f"{f}_alteration"], wide_truth[f"{f}_style"], strict=True):
            if kind in ("none", "fabricated"):
                assert style == kind
            else:
                assert TAMPER_STYLES[style] == kind


def test_truth_and_manifest_record_the_styles(wide_batch, wide_truth):
    cols = list(wide_truth.columns)
    for f in COUNTS:  # the style column sits right after the kind column
        assert cols.index(f"{f}_style") == cols.index(f"{f}_alteration") + 1
    new = {"style_set", "alteration_styles", "scan_damage", "bleed_mm", "banding_depth", "shadow_depth", "curl_mm",
           "photocopy", "faded", "quarter_turns", "pen_colour", "altering_pen_colour", "pen_stroke_scale",
           "pen_slant_deg", "honest_pen_variation", "honest_pen_fields", "hand"}
    assert new <= set(cols)
    assert (wide_truth["style_set"] == "all").all() and set(wide_truth["pen_colour"]) <= set(PEN_COLOURS)
    for row in wide_truth.itertuples():
        styles = {getattr(row, f"{f}_style") for f in COUNTS} - {"none", "fabricated"}
        assert set(filter(None, row.alteration_styles.split(";"))) == styles
        assert set(filter(None, row.scan_damage.split(";"))) <= set(DAMAGE_STYLES)
    boxes = pd.read_csv(wide_batch / "boxes.csv")
    assert set(boxes.loc[boxes["altered"], "style"]) <= set(TAMPER_STYLES)
    import json
    manifest = json.loads((wide_batch / "manifest.json").read_text())
    assert manifest["styles"]["style_set"] == "all" and set(manifest["styles"]["active"]) == ALL_STYLES


def test_wide_boxes_still_spell_what_is_written(wide_truth, wide_batch, mnist):
    boxes = pd.read_csv(wide_batch / "boxes.csv")
    written = boxes[boxes["digit"] >= 0].sort_values("box").groupby(["sheet_id", "field"])["digit"]
    spelled = written.apply(lambda d: int("".join(map(str, d))))
    for row in wide_truth.itertuples():
        for f in COUNTS:
            value = getattr(row, f"{f}_written")
            assert (value == "" and (row.sheet_id, f) not in spelled) or spelled[(row.sheet_id, f)] == int(value)
    drawn = boxes[boxes["mnist_index"] >= 0]
    assert (mnist.y_test[drawn["mnist_index"].to_numpy()] == drawn["digit"].to_numpy()).all()


def test_wide_batches_are_byte_identical_for_the_same_seed(tmp_path, digits):
    settings = SynthSettings(sheets=2, seed=8, **{**WIDE_BATCH, "style_set": "heldout"})
    one = folder_hashes(generate_batch(settings, tmp_path / "one", digits))
    two = folder_hashes(generate_batch(SynthSettings(sheets=2, seed=8, **{**WIDE_BATCH, "style_set": "heldout",
                                                                          "workers": 2}), tmp_path / "two", digits))
    assert one == two
    a, b = render_sheet(2, settings, digits), render_sheet(2, settings, digits)
    assert np.array_equal(a.image, b.image) and a.truth == b.truth


def test_cli_takes_the_style_set(tmp_path):
    from pipeline.cli import main
    out = tmp_path / "cli"
    assert main(["synth", "--sheets", "1", "--seed", "3", "--out", str(out), "--dpi", "72", "--workers", "1",
                 "--style-set", "heldout"]) == 0
    assert (pd.read_csv(out / "truth.csv")["style_set"] == "heldout").all()


def test_classic_sheets_do_not_depend_on_the_wide_settings(digits):
    """The wide generator's settings and streams leave ``classic`` sheets exactly as they were."""
    plain = render_sheet(2, SynthSettings(**FAST, **TAMPERED), digits)
    tuned = render_sheet(2, SynthSettings(**FAST, **TAMPERED, bleed_rate=1.0, curl_rate=1.0, field_pen_rate=1.0,
                                          pen_colours=("red",)), digits)
    assert np.array_equal(plain.image, tuned.image)
    assert plain.truth["style_set"] == "classic" and plain.truth["scan_damage"] == ""
    assert {plain.truth[f"{f}_style"] for f in COUNTS} <= {"none", "fabricated", *CLASSIC_TAMPER.values()}


@pytest.mark.parametrize("bad", [
    {"style_set": "test"}, {"exclude_styles": ("nonsense",)},
    {"exclude_styles": tuple(TAMPER_STYLES)}, {"pen_colours": ("purple",)}, {"pen_colours": ()},
    {"style_set": "heldout", "pen_colours": ("black", "blue")}, {"curl_mm": (1.0, 40.0)},
    {"strong_perspective": (0.02, 0.2)}, {"bleed_rate": 2.0}, {"quarter_turn_rate": -0.1},
    {"heavy_bleed_mm": (0.3, 0.1)}, {"wide_stroke_scale": (0.1, 1.0)},
])
def test_bad_style_settings_are_rejected_naming_the_setting(bad):
    name = next(iter(bad)) if len(bad) == 1 else "pen_colours"
    with pytest.raises(ConfigError, match=name.split("_")[0]):
        SynthSettings(**bad)
