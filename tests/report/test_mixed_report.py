"""The report of a run read with several templates (``read --form A --form B``): every sheet is drawn with its own
page's template (labels, rules written out, evidence), on a page of its own and in ``sheets/view.html``'s data; the
index has a page type column and the rules of every form; the forensics and Cantú parts show one section per page
type. A run of one form keeps its report (no page type column, its one form's rules)."""

from __future__ import annotations

import html
import json
import re

import pandas as pd
import pytest

from pipeline.audit.audit import run_audit
from pipeline.report import ReportSettings, build_report
from pipeline.report.formview import run_forms
from tests.audit.test_form_audit import NO_DETECTOR, write_form_run
from tests.audit.test_mixed_audit import PAIR_SHEETS, PAIRS, UNCERTAIN, write_mixed_run

#: Words only the pairs form's page, or only the tally form's, has.
PAIRS_WORDS = ("Pair 1", "all valid", "pair_1 + pair_2 == valid")
TALLY_WORDS = ("Alpha Party", "Ballots cast", "Spoilt ballots")
ACTA_WORDS = ("VOTACION TOTAL", "votes_add_up")


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

