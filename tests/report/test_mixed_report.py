"""The report of a run read with several templates (``read --form A --form B``): every sheet is drawn with its own
page's template (labels, rules written out, evidence), on a page of its own and in ``sheets/view.html``'s data; the
index has a page type column and the rules of every form; the forensics and Cantú parts show one section per page
type. A run of one form keeps its report (no page type column, its one form's rules)."""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from pipeline.audit.audit import run_audit
from pipeline.report import ReportSettings, build_report, figures
from pipeline.report.build import page_type_anchor, truth_context
from pipeline.report.formview import run_forms
from tests.audit.test_form_audit import NO_DETECTOR, write_form_run
from tests.audit.test_mixed_audit import PAIR_SHEETS, PAIRS, UNCERTAIN, write_mixed_run
from tests.report.conftest import write_models

#: Words only the pairs form's page, or only the tally form's, has.
PAIRS_WORDS = ("Pair 1", "all valid", "pair_1 + pair_2 == valid")
TALLY_WORDS = ("Alpha Party", "Ballots cast", "Spoilt ballots")
ACTA_WORDS = ("VOTACION TOTAL", "votes_add_up")
#: A digit test both page types' forensics run.
TEST = "last_digit_uniform"
#: Each page type's part of truth_eval.json in :func:`mixed_truth` (docs/DATA.md section 4).
TRUTH_EVAL = {"pairs": {"n_truth": 2, "reading": {"all_fields": 0.75, "sheets_all_correct": 0.5,
                                                  "per_field": {"pair_1": 1.0, "pair_2": 0.5}}},
              "tally_form": {"n_truth": 4, "arithmetic": {"inconsistent_all": {"n": 1, "flagged_rate": 1.0}},
                             "reading": {"all_fields": 0.9, "sheets_all_correct": 0.25, "per_field": {"alpha": 0.8}}}}
#: The digits read in :func:`mixed_truth`: (sheet, field, digits read, digits written).
DIGITS = [("good", "pair_1", "190", "190"), ("janggal", "pair_1", "189", "189"),
          ("clean", "alpha", "40", "41"), ("bad_sum", "alpha", "40", "50")]


def build(tmp_path, rundir, name: str, static_pages: int) -> tuple:
    """The audit of ``rundir`` and its report in ``tmp_path/name`` (no models: no model figures)."""
    processed = tmp_path / f"audit-{name}"
    if not processed.is_dir():
        run_audit(rundir, processed, NO_DETECTOR)
    out = tmp_path / name
    build_report(processed, out, rundir, models_dir=tmp_path / "no-models",
                 settings=ReportSettings(static_pages=static_pages, workers=1))
    return processed, out


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A mixed run (tally form and pairs form, one page of no type), its report with every flagged sheet on a page
    of its own, and one with every sheet in ``sheets/view.html``'s data."""
    tmp = tmp_path_factory.mktemp("mixed")
    rundir = write_mixed_run(tmp)
    processed, pages = build(tmp, rundir, "pages", 100)
    _, view = build(tmp, rundir, "view", 0)
    return rundir, processed, pages, view


def write_digits(rundir, truth_dir) -> None:
    """:data:`DIGITS` as the recogniser writes them (``digits_read.parquet``, ``digits.npy``) and as the generator
    wrote them (``boxes.csv``, beside a ``truth.csv``)."""
    reads, boxes = [], []
    for sid, field, read, written in DIGITS:
        for box, (r, w) in enumerate(zip(read, written, strict=True)):
            reads.append({"sheet_id": sid, "field": field, "box": box, "slot": 0, "label": int(r),
                          "confidence": 0.9 + 0.01 * len(reads), "digit_row": len(reads)})
            boxes.append({"sheet_id": sid, "field": field, "box": box, "digit": int(w)})
    pd.DataFrame(reads).to_parquet(rundir / "digits_read.parquet")
    np.save(rundir / "digits.npy", np.zeros((len(reads), 28, 28), np.uint8))
    truth_dir.mkdir(parents=True)
    pd.DataFrame(boxes).to_csv(truth_dir / "boxes.csv", index=False)
    pd.DataFrame({"sheet_id": sorted({d[0] for d in DIGITS})}).to_csv(truth_dir / "truth.csv", index=False)


@pytest.fixture(scope="module")
def mixed_truth(tmp_path_factory):
    """The report of a mixed run built with ground truth (each page type's ``truth_eval.json`` part, the digits
    written) and a current model, whose teaching figures are drawn by stand-ins (no TensorFlow); returns the
    report folder and the feature-map captions drawn."""
    tmp = tmp_path_factory.mktemp("mixed-truth")
    rundir = write_mixed_run(tmp)
    processed = tmp / "audit"
    run_audit(rundir, processed, NO_DETECTOR)
    (processed / "truth_eval.json").write_text(json.dumps({"by_page_type": TRUTH_EVAL}))
    write_digits(rundir, tmp / "truth")
    write_models(tmp / "models")
    captions = []

    def feature_maps_png(model, digit, caption, path):
        captions.append(caption)
        path.write_bytes(b"png")
        return [{"name": "conv0_relu", "shape": (28, 28, 4), "pooling": False}]

    def filters_png(model, path):
        path.write_bytes(b"png")
        return {"layer": "conv0", "n_filters": 4, "size": 3}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("pipeline.model.recogniser.load_keras_model", lambda path: "a model")
        patch.setattr("pipeline.model.plots.feature_maps_png", feature_maps_png)
        patch.setattr("pipeline.model.plots.filters_png", filters_png)
        patch.setattr("pipeline.report.build.training_digits", lambda: None)
        out = tmp / "report"
        build_report(processed, out, rundir, truth=tmp / "truth" / "truth.csv", models_dir=tmp / "models",
                     settings=ReportSettings(static_pages=100, workers=1))
    return out, captions


def text(path) -> str:
    return html.unescape(path.read_text(encoding="utf-8"))


def details(out) -> dict:
    """Every sheet's record in ``data/detail-NNN.js``, by its slug."""
    records = {}
    for path in sorted((out / "data").glob("detail-*.js")):
        payload = re.match(r"window\.tallySheet\.receive\(\d+, (.*)\);\n$", path.read_text(), re.S).group(1)
        records.update(json.loads(payload))
    return records


def view_config(out) -> dict:
    page = (out / "sheets" / "view.html").read_text(encoding="utf-8")
    return json.loads(html.unescape(re.search(r'data-config="([^"]*)"', page).group(1)))


def test_run_forms_gives_each_page_its_template(mixed):
    rundir = mixed[0]
    forms = run_forms(rundir)
    assert forms.mixed and set(forms.templates) == {"pairs", "tally_form"}
    assert forms.type_of("janggal") == "pairs" and forms.type_of("bad_sum") == "tally_form"
    assert forms.template("good").name == "pairs" and forms.form("clean").name == "tally_form"
    assert forms.type_of(UNCERTAIN) == forms.default  # a page of no type: the first form, as the audit takes it


def test_each_sheet_page_is_drawn_with_its_own_form(mixed):
    _, _, out, _ = mixed
    janggal, bad_sum = text(out / "sheets" / "janggal.html"), text(out / "sheets" / "bad_sum.html")
    assert all(w in janggal for w in PAIRS_WORDS) and not any(w in janggal for w in (*TALLY_WORDS, *ACTA_WORDS))
    assert all(w in bad_sum for w in TALLY_WORDS) and not any(w in bad_sum for w in ("Pair 1", *ACTA_WORDS))
    # the pairs form's rule, failed on janggal, is written out with its numbers: 189 + 159 = 348 against 347
    assert "348 against 347" in janggal
    assert "<dt>page type</dt><dd>pairs</dd>" in janggal and "<dt>page type</dt><dd>tally_form</dd>" in bad_sum


def test_the_view_page_draws_each_sheet_with_its_own_form(mixed):
    _, _, _, out = mixed
    config = view_config(out)
    assert set(config["forms"]) == {"pairs", "tally_form"}
    assert [f["label"] for f in config["forms"]["pairs"]["fields"]] == ["Pair 1", "Pair 2", "all valid",
                                                                       "invalid votes"]
    records = details(out)
    good, janggal, clean = records["good"], records["janggal"], records["clean"]
    assert good["form"] == janggal["form"] == "pairs" and clean["form"] == "tally_form"
    assert len(good["f"]) == len(config["forms"]["pairs"]["fields"])
    assert len(clean["f"]) == len(config["forms"]["tally_form"]["fields"])
    assert len(clean["t"]) == len(config["forms"]["tally_form"]["ticks"]) and good["t"] == []
    assert ["page type", "pairs"] in good["meta"]
    # the pairs rule holds on good and is written out in the pairs form's words
    assert any("190 + 159 = 349" in line for line in good["passed"])
    flag = next(f for f in janggal["flags"] if f["rule"] == "rule_1")
    assert "348 against 347" in flag["plain"] and ["rule", "pair_1 + pair_2 == valid"] in flag["ev"][0]
    assert not any("VOTACION" in json.dumps(r) for r in records.values())


def test_the_index_shows_the_page_type_and_every_forms_rules(mixed):
    _, _, out, _ = mixed
    index = (out / "index.html").read_text(encoding="utf-8")
    columns = json.loads(html.unescape(re.search(r'data-columns="([^"]*)"', index).group(1)))
    keys = [c["key"] for c in columns]
    assert "page_type" in keys and keys.index("page_type") == keys.index("reading") + 1
    assert {"cast", "valid"} <= set(keys) and keys[-1] == "min_conf"  # each form's count column, then the tail
    assert 'id="filter-page_type"' in index
    plain = html.unescape(index)
    assert "The rules of <code>pairs</code>" in plain and "The rules of <code>tally_form</code>" in plain
    assert "pair_1 + pair_2 == valid" in plain and "sum(candidate) + spoilt == cast" in plain
    rows = pd.read_csv(out / "data" / "sheets.csv").set_index("sheet_id")
    assert rows.loc["janggal", "page_type"] == "pairs" and rows.loc["janggal", "verdict"] == "inconsistent"
    chunk = (out / "data" / "sheets-000.js").read_text()
    assert '"pairs"' in chunk and '"tally_form"' in chunk


def test_forensics_and_cantu_have_one_section_per_page_type(mixed):
    _, _, out, _ = mixed
    forensics = html.unescape((out / "forensics.html").read_text(encoding="utf-8"))
    for name in ("pairs", "tally_form"):
        assert f'data-page-type="{name}"' in forensics and f"Page type <code>{name}</code>" in forensics
    assert forensics.count('class="test-card') >= 2
    assert "No digit tests ran (forensics.json missing" not in forensics.split('id="tests-1"')[0]
    index = html.unescape((out / "index.html").read_text(encoding="utf-8"))
    cantu = index[index.index('id="cantu"'):]
    assert 'id="cantu-1" data-page-type="pairs"' in cantu and 'data-page-type="tally_form"' in cantu
    assert "no representative-present ticks" in cantu
    assert "cantu.json missing or empty" not in cantu


def test_a_run_of_one_form_has_no_page_type(tmp_path):
    rundir = write_form_run(tmp_path / "run", PAIRS, PAIR_SHEETS)
    _, out = build(tmp_path, rundir, "single", 100)
    index = (out / "index.html").read_text(encoding="utf-8")
    columns = json.loads(html.unescape(re.search(r'data-columns="([^"]*)"', index).group(1)))
    assert "page_type" not in [c["key"] for c in columns] and "filter-page_type" not in index
    assert 'id="form-rules"' in index and "The rules of" not in index
    assert "forms" not in view_config(out)
    page = text(out / "sheets" / "janggal.html")
    assert "Pair 1" in page and "page type" not in page
    assert not run_forms(rundir).mixed and run_forms(rundir).default == "pairs"



class _Ids(HTMLParser):
    """Every ``id`` of a page and every in-page link (``href="#..."``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        for key, value in attrs:
            if key == "id":
                self.ids.append(value)
            elif key == "href" and value and value.startswith("#") and len(value) > 1:
                self.links.append(value[1:])


def page_ids(path) -> _Ids:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_every_html_id_of_a_two_form_report_is_unique_and_every_anchor_resolves(mixed, mixed_truth):
    pages = [p for out in (mixed[2], mixed[3], mixed_truth[0]) for p in sorted(out.rglob("*.html"))]
    assert len(pages) > 5
    for path in pages:
        found = page_ids(path)
        repeated = sorted(i for i, n in Counter(found.ids).items() if n > 1)
        assert not repeated, f"{path.name} repeats ids {repeated}"
        assert set(found.links) <= set(found.ids), f"{path.name}: links to missing {set(found.links) - set(found.ids)}"
    forensics = page_ids(mixed[2] / "forensics.html")
    # one card of each digit test per page type, each id prefixed by its page type's slug, and linked to
    for name in ("pairs", "tally_form"):
        cards = [i for i in forensics.ids if i.startswith(f"{name}-test-")]
        assert cards and set(cards) <= set(forensics.links)
    assert f"pairs-test-{TEST}" in forensics.ids and f"tally_form-test-{TEST}" in forensics.ids


def test_the_page_type_anchor_is_a_slug():
    assert page_type_anchor("pairs") == "pairs-"
    odd = page_type_anchor('C1 "Lampiran" <b>')
    assert re.fullmatch(r"[A-Za-z0-9._-]+", odd) and odd != page_type_anchor('C1 "Lampiran" <i>')


def section(page: str, anchor: str) -> str:
    """The ``<section>`` of ``page`` with id ``anchor`` (to its end)."""
    start = page.index(f'id="{anchor}"')
    return page[start:page.index("</section>", start)]


def test_the_truth_panel_is_computed_per_page_type(mixed_truth):
    out, _ = mixed_truth
    forensics = text(out / "forensics.html")
    pairs, tally = section(forensics, "pairs-accuracy"), section(forensics, "tally_form-accuracy")
    assert "Page type <code>pairs</code>" in pairs and "Page type <code>tally_form</code>" in tally
    # each page type's own figures: fields right, sheets right, and its own digits (pairs all right, tally 2 of 4)
    assert "75.00%" in pairs and "50.00%" in pairs and "100.00%" in pairs and "(6)" in pairs
    assert "90.00%" in tally and "25.00%" in tally and "50.00%" in tally and "(4)" in tally
    assert "reading.per_field.alpha" in tally
    assert "tally" not in pairs.split("</h3>")[1] and "pair_1" not in tally
    assert 'src="figures/accuracy_pairs.png"' in pairs and (out / "figures" / "accuracy_pairs.png").is_file()
    assert 'src="figures/accuracy_tally_form.png"' in tally
    assert "80.00%" in forensics  # the digits of every page type: 8 of 10
    assert "by_page_type." not in forensics  # no flattened whole-run keys
    index = text(out / "index.html")
    assert "75.0% of fields read exactly" in section(index.replace("</dl>", "</section>"), "pairs-truth-summary")
    tally_summary = section(index.replace("</dl>", "</section>"), "tally_form-truth-summary")
    assert "90.0% of fields read exactly" in tally_summary and "inconsistent sheets" in tally_summary


def test_each_page_types_accuracy_figure_names_its_own_forms_fields(mixed_truth, monkeypatch, tmp_path):
    drawn = []
    monkeypatch.setattr(figures, "accuracy_figure", lambda per_field: drawn.append(per_field) or None)
    forms = run_forms(mixed_truth[0].parent / "mixed")
    pairs = pd.DataFrame({"sheet_id": ["good", "clean", "clean"], "truth": [1, 4, 1], "label": [1, 4, 0],
                          "confidence": [0.9] * 3})
    view = truth_context({"by_page_type": TRUTH_EVAL}, pairs, forms, tmp_path, ReportSettings())
    assert [list(s.index) for s in drawn] == [["Pair 1", "Pair 2"], ["Alpha Party"]]
    assert [(t["name"], t["digit_accuracy"], t["digits_n"], t["fields_right"]) for t in view["by_type"]] == [
        ("pairs", 1.0, 1, 0.75), ("tally_form", 0.5, 2, 0.9)]
    assert view["fields_right"] is None and view["details"] == {}
    assert truth_context({}, None, forms, tmp_path, ReportSettings()) is None


def test_the_model_page_shows_a_sample_digit_of_every_page_type(mixed_truth):
    out, captions = mixed_truth
    assert len(captions) == 2
    assert "field Pair 1" in captions[0] and "from sheet janggal" in captions[0]
    assert "field Alpha Party" in captions[1] and "from sheet bad_sum" in captions[1]
    model = text(out / "model.html")
    pairs, tally = section(model, "pairs-feature-maps"), section(model, "tally_form-feature-maps")
    assert "Page type <code>pairs</code>" in pairs and "Pair 1" in pairs and "Alpha" not in pairs
    assert "Alpha Party" in tally and 'src="figures/model_feature_maps_tally_form.png"' in tally
    info = json.loads((out / "figures" / "model_cnn.json").read_text())
    assert [s["page_type"] for s in info["samples"]] == ["pairs", "tally_form"] and info["forms"] == [
        "pairs", "tally_form"]
