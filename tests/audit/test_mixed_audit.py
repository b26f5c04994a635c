"""A run read with several templates (issue 15: ``templates/<name>.yaml``, each page's in ``page_type``) is audited
page type by page type, each by its own form; and the alteration detector scores only the sheets of the form it
was trained on."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.audit import alteration
from pipeline.audit.alteration import Detector, not_applicable, save_detector, trained_template
from pipeline.audit.audit import ALTERATION_SKIPPED, BY_PAGE_TYPE, run_audit
from pipeline.audit.features import feature_names
from pipeline.audit.settings import AuditSettings
from pipeline.forms.runs import PAGE_TYPE, TEMPLATES_DIR
from pipeline.forms.template import RUN_TEMPLATE_FILE
from tests.audit.conftest import field_image
from tests.audit.test_form_audit import NO_DETECTOR, PAGE, TALLY, count, sheet, write_form_run

#: A second small form: two pairs, their valid total and the invalid votes, no ids or ticks.
PAIRS = {"name": "pairs", **PAGE,
         "fields": [count("pair_1", "Pair 1", 66, "candidate"), count("pair_2", "Pair 2", 78, "candidate"),
                    count("valid", "all valid", 90, "valid"), count("invalid", "invalid votes", 102, "invalid")],
         "rules": ["pair_1 + pair_2 == valid"]}
PAIR_SHEETS = {"good": {"values": {"pair_1": 190, "pair_2": 159, "valid": 349, "invalid": 4}},
               "janggal": {"values": {"pair_1": 189, "pair_2": 159, "valid": 347, "invalid": 4}}}
TALLY_SHEETS = {"clean": sheet(), "bad_sum": sheet(booth=102, cast=190),
                "dup_a": sheet(region=2, booth=7, alpha=41, cast=181),
                "dup_b": sheet(region=2, booth=7, alpha=42, cast=182)}
#: A page the reader could not tell the form of (docs/DATA.md section 2).
UNCERTAIN = "blurred"


def write_mixed_run(tmp_path) -> object:
    """A run read with the tally form and the pairs form: its pages alternate between them, plus one page of no
    type (``template_uncertain``)."""
    parts = {"tally_form": write_form_run(tmp_path / "a", TALLY, TALLY_SHEETS),
             "pairs": write_form_run(tmp_path / "b", PAIRS, PAIR_SHEETS)}
    run = tmp_path / "mixed"
    (run / TEMPLATES_DIR).mkdir(parents=True)
    for name, raw in (("tally_form", TALLY), ("pairs", PAIRS)):
        (run / TEMPLATES_DIR / f"{name}.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    order = ["clean", "good", "bad_sum", "janggal", "dup_a", UNCERTAIN, "dup_b"]
    kind = {sid: name for name, folder in parts.items() for sid in pd.read_csv(folder / "pages.csv")["sheet_id"]}
    pages = pd.concat([pd.read_csv(f / "pages.csv", dtype=str).assign(**{PAGE_TYPE: n}) for n, f in parts.items()])
    pages = pd.concat([pages, pd.DataFrame([{"sheet_id": UNCERTAIN, "source": "x.png", "page": "1",
                                             "status": "template_uncertain", "reason": "two forms fit",
                                             PAGE_TYPE: ""}])])
    pages.set_index("sheet_id").loc[order].reset_index().to_csv(run / "pages.csv", index=False)
    for name, reader in (("fields.parquet", pd.read_parquet), ("marks.csv", pd.read_csv)):
        table = pd.concat([reader(f / name) for f in parts.values()], ignore_index=True)
        table = table.iloc[table["sheet_id"].map({s: i for i, s in enumerate(order)}).argsort(kind="stable")]
        if name.endswith(".csv"):
            table.to_csv(run / name, index=False)
        else:
            table.to_parquet(run / name, index=False)
    assert set(kind) | {UNCERTAIN} == set(order)
    return run


def test_each_page_type_is_audited_by_its_own_form(tmp_path):
    result = run_audit(write_mixed_run(tmp_path), tmp_path / "out", NO_DETECTOR)
    flags = {(f.sheet_id, f.rule): f for f in result.flags}
    assert flags[("janggal", "rule_1")].verdict == "inconsistent"
    assert flags[("bad_sum", "cast_adds_up")].verdict == "inconsistent"
    assert flags[(UNCERTAIN, "page_not_read")].verdict == "needs_review"
    assert flags[("dup_a", "duplicate_station")].evidence["other_sheets"] == ["dup_b"]
    assert not {sid for sid, _ in flags} & {"good"}
    frame = pd.read_parquet(tmp_path / "out" / "flags.parquet").set_index(["sheet_id", "rule"])
    assert frame.loc[("janggal", "rule_1"), PAGE_TYPE] == "pairs"
    assert frame.loc[("bad_sum", "cast_adds_up"), PAGE_TYPE] == "tally_form"
    assert pd.isna(frame.loc[(UNCERTAIN, "page_not_read"), PAGE_TYPE])


def test_a_mixed_sheet_table_keeps_page_order_and_each_forms_columns(tmp_path):
    result = run_audit(write_mixed_run(tmp_path), tmp_path / "out", NO_DETECTOR)
    sheets = pd.read_parquet(tmp_path / "out" / "sheets.parquet")
    assert PAGE_TYPE in sheets.columns
    assert sheets["sheet_id"].tolist() == ["clean", "good", "bad_sum", "janggal", "dup_a", UNCERTAIN, "dup_b"]
    by_id = sheets.set_index("sheet_id")
    assert by_id.loc["janggal", "valid"] == 347 and pd.isna(by_id.loc["janggal", "alpha"])
    assert by_id.loc["clean", "cast"] == 180 and by_id.loc["clean", PAGE_TYPE] == "tally_form"
    assert by_id.loc["bad_sum", "verdict"] == "inconsistent" and by_id.loc["good", "verdict"] == "ok"
    csv = pd.read_csv(tmp_path / "out" / "sheets.csv")
    assert PAGE_TYPE in csv.columns and len(csv) == len(sheets) == result.n_sheets
    assert pd.read_csv(tmp_path / "out" / "flags.csv").columns[1] == PAGE_TYPE


def test_mixed_forensics_and_cantu_are_keyed_by_page_type(tmp_path):
    result = run_audit(write_mixed_run(tmp_path), tmp_path / "out", NO_DETECTOR)
    forensics = json.loads((tmp_path / "out" / "forensics.json").read_text())
    assert set(forensics) == {BY_PAGE_TYPE} and set(forensics[BY_PAGE_TYPE]) == {"pairs", "tally_form"}
    assert forensics[BY_PAGE_TYPE]["tally_form"]["fields"] == ["alpha", "beta", "gamma"]
    assert forensics[BY_PAGE_TYPE]["pairs"]["fields"] == ["pair_1", "pair_2"]
    cantu = json.loads((tmp_path / "out" / "cantu.json").read_text())
    assert cantu[BY_PAGE_TYPE]["tally_form"]["ruling_party"] == "beta"
    assert "no representative-present ticks" in cantu[BY_PAGE_TYPE]["pairs"]["detected"]["skipped"]
    assert result.forensics == forensics
    assert not list((tmp_path / "out").glob(".audit-*"))


def test_a_run_of_one_template_keeps_its_files_without_page_type(tmp_path):
    rundir = write_form_run(tmp_path / "run", PAIRS, PAIR_SHEETS)
    run_audit(rundir, tmp_path / "out", NO_DETECTOR)
    for stem in ("sheets", "flags"):
        assert PAGE_TYPE not in pd.read_parquet(tmp_path / "out" / f"{stem}.parquet").columns
    assert BY_PAGE_TYPE not in json.loads((tmp_path / "out" / "forensics.json").read_text())


def always_altered(metadata: dict) -> Detector:
    """A detector that scores every field image 1.0 (its one output's bias is large)."""
    n = len(feature_names())
    return Detector(np.zeros(n), np.ones(n), (np.zeros((n, 1)),), (np.array([50.0]),), 0.5, metadata)


def with_images(rundir, sheets, fields) -> None:
    rng = np.random.default_rng(0)
    for sid in sheets:
        folder = rundir / "fields" / sid
        folder.mkdir(parents=True, exist_ok=True)
        for f in fields:
            cv2.imwrite(str(folder / f"{f}.png"), field_image(rng))


def test_a_detector_without_a_template_was_trained_on_the_acta():
    old = always_altered({})
    assert trained_template(old) == alteration.LEGACY_TEMPLATE == "acta1988"
    assert not_applicable(old, "acta1988") is None
    reason = not_applicable(old, "pairs")
    assert "'acta1988'" in reason and "'pairs'" in reason
    assert not_applicable(old, "pairs", force=True) is None
    assert not_applicable(always_altered({alteration.TEMPLATE_KEY: "pairs"}), "pairs") is None


@pytest.mark.parametrize(("metadata", "force", "scored"), [({}, False, False), ({}, True, True),
                                                           ({alteration.TEMPLATE_KEY: "pairs"}, False, True)])
def test_sheets_of_another_form_are_not_scored_unless_forced(tmp_path, metadata, force, scored):
    rundir = write_form_run(tmp_path / "run", PAIRS, PAIR_SHEETS)
    with_images(rundir, PAIR_SHEETS, ("pair_1", "pair_2", "valid", "invalid"))
    model = tmp_path / "detector"
    save_detector(always_altered(metadata), model)
    result = run_audit(rundir, tmp_path / "out", AuditSettings(alteration_model=str(model),
                                                               alteration_any_form=force))
    sheets = result.sheets
    cantu = json.loads((tmp_path / "out" / "cantu.json").read_text())
    if scored:
        assert sheets["altered"].all() and ALTERATION_SKIPPED not in cantu
        assert any(f.rule == alteration.RULE for f in result.flags)
    else:
        assert sheets["alteration_score"].isna().all() and sheets["altered"].isna().all()
        assert sheets["pair_1_alteration"].isna().all()
        assert "trained on 'acta1988'" in cantu[ALTERATION_SKIPPED]
        assert not any(f.rule == alteration.RULE for f in result.flags)
    assert (tmp_path / "run" / RUN_TEMPLATE_FILE).is_file()


def test_the_detector_saved_by_training_names_its_template(tmp_path):
    save_detector(always_altered({alteration.TEMPLATE_KEY: "acta1988"}), tmp_path)
    assert json.loads((tmp_path / alteration.DETECTOR_JSON).read_text())[alteration.TEMPLATE_KEY] == "acta1988"
    assert trained_template(alteration.load_detector(tmp_path)) == "acta1988"
