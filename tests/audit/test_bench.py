import numpy as np

from pipeline.audit.bench import clean_counts, fabricate, forensic_section
from pipeline.audit.settings import AuditSettings
from tests.audit.conftest import PARTIES


def test_clean_counts_add_up():
    t = clean_counts(7, 20, {})
    assert len(t) == 20 and (t[list(PARTIES) + ["unregistered", "null_votes"]].sum(axis=1) == t["total_votes"]).all()


def test_fabricate_changes_only_last_digits_of_invented_stations():
    t = clean_counts(7, 200, {})
    f = fabricate(t, np.random.default_rng(0), 0.5)
    changed = (f[list(PARTIES)] != t[list(PARTIES)]).any(axis=1)
    assert 0.3 < changed.mean() < 0.6
    assert ((f[list(PARTIES)] // 10) == (t[list(PARTIES)] // 10)).all().all()
    assert (f[list(PARTIES) + ["unregistered", "null_votes"]].sum(axis=1) == f["total_votes"]).all()


def test_forensic_section_reports_rates_with_intervals():
    out = forensic_section({}, 2, 60, AuditSettings())
    for key in ("clean_false_alarm", "clean_false_alarm_uniform_reference", "fabricated_alarm"):
        assert out[key]["batches"] == 2 and len(out[key]["ci"]) == 2


def test_excess_p_value_is_small_only_when_alarms_clearly_exceed_the_level():
    from pipeline.audit.bench import excess_p_value

    assert excess_p_value(22, 400, 0.05) > 0.3  # 5.5% in 400 batches: within Monte-Carlo error of 5%
    assert excess_p_value(40, 400, 0.05) < 0.001  # 10%: the level is exceeded
    assert excess_p_value(0, 0, 0.05) == 1.0


def toy_field_set(rng, sheets=60):
    """Labelled fields of ``sheets`` sheets (4 fields each): a third of the sheets have one field altered in
    style "a" or "b", which push different features up."""
    import pandas as pd

    from pipeline.audit.train import FieldSet

    keys = pd.DataFrame([(f"s{i:03d}", f"f{j}") for i in range(sheets) for j in range(4)],
                        columns=["sheet_id", "field"])
    x = rng.normal(size=(len(keys), 4))
    styles = np.full(len(keys), "none", dtype=object)
    for i in range(sheets):
        if i % 3 == 0:
            styles[4 * i + 1] = "a" if i % 2 else "b"
    x[styles == "a", 0] += 6
    x[styles == "b", 1] += 6
    return FieldSet(keys, x, styles != "none", styles.astype(str))


def test_leave_one_style_out_reports_each_left_out_style():
    from pipeline.audit.bench import detection_figures, leave_one_style_out
    from pipeline.audit.settings import AlterationSettings

    rng = np.random.default_rng(0)
    train, test = toy_field_set(rng), toy_field_set(rng)
    s = AlterationSettings(hidden_units=(4,), max_iter=200, folds=2, novelty_field_fpr=0.01)
    out = leave_one_style_out(train, test, s)
    assert set(out) == {"a", "b"}
    for style, r in out.items():
        assert r["n_fields"] == int((test.styles == style).sum()) and 0 <= r["field_recall"] <= 1
        assert r["n_clean_sheets"] == 40 and 0 <= r["clean_sheets_flagged"] <= 1
        # the other style teaches the network nothing about this one: the novelty score finds it
        assert r["field_recall"] >= 0.8
    figures = detection_figures(test, test.x.max(axis=1), 3.0)
    assert figures["n_sheets"] == 60 and figures["n_altered"] == 20 and figures["recall"] == 1.0
    assert set(figures["per_style"]) == {"a", "b"}


def test_reweight_box_changes_the_stroke_weight_in_one_box_only():
    from pipeline.audit.bench import reweight_box
    from pipeline.audit.features import inner_box
    from tests.audit.test_features import BOXES, pen_field

    img = pen_field(np.random.default_rng(1), "120", (3, 3, 3))
    heavy, light = reweight_box(img, BOXES[1], True), reweight_box(img, BOXES[1], False)
    rows, cols = inner_box(BOXES[1], img.shape)
    outside = np.ones(img.shape, bool)
    outside[rows, cols] = False
    assert (heavy[outside] == img[outside]).all() and (light[outside] == img[outside]).all()
    assert (heavy[rows, cols] < 128).sum() > (img[rows, cols] < 128).sum() > (light[rows, cols] < 128).sum()


def test_target_figures_compare_each_headline_figure_with_its_target():
    from pipeline.audit.bench import BENCH_GROUPS, HELDOUT_TARGET_RECALL, target_figures

    ev = {"n_read_ok": 10, "fields": {"n_fields": 180, "n_untampered": 170, "untampered_exact": 0.995,
                                      "silent_wrong": 0.003, "untampered_silent_wrong": 0.001},
          "arithmetic": {"clean": {"n": 0, "false_inconsistent_rate": None}},
          "alteration": {"n_altered": 4, "precision": 0.95, "recall": 0.92}}
    out = target_figures(ev, HELDOUT_TARGET_RECALL)
    assert out["untampered_exact"]["meets_target"] is True and out["silent_wrong"]["meets_target"] is False
    assert out["false_inconsistent"]["meets_target"] is None  # no clean consistent sheet: not measured
    assert out["altered_recall"]["meets_target"] is True and out["altered_precision"]["meets_target"] is True
    assert target_figures(ev, 0.95)["altered_recall"]["meets_target"] is False
    assert [g.name for g in BENCH_GROUPS] == ["classic", "heldout"]
    assert BENCH_GROUPS[0].seed != BENCH_GROUPS[1].seed and BENCH_GROUPS[1].style_set == "heldout"
    assert BENCH_GROUPS[1].sheets >= 500


def test_alarms_are_counted_in_their_family():
    from pipeline.audit.bench import alarm_level

    assert alarm_level("batch") == "batch"
    assert alarm_level("district 7-6") == "district" and alarm_level("district 1.0-2") == "district"
