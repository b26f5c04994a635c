"""``pipeline.forms.runs``: the templates a run folder was read with and each page's template, for single- and
several-template runs, and runs written before ``page_type`` existed."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from pipeline.errors import ConfigError, InputFileError
from pipeline.forms.runs import (
    TEMPLATES_DIR,
    check_names,
    page_templates,
    record_templates,
    run_templates,
)
from pipeline.forms.template import RUN_TEMPLATE_FILE, load_template, parse_template, run_template


def raw(name: str, field: str = "") -> dict:
    return {"name": name, "geometry": "reference_image", "reference": "absent.png", "reference_size": [400, 600],
            "reference_dpi": 50, "registration": "reference_features",
            "fields": [{"name": field or f"{name}_total", "kind": "count", "comb": [100, 100, 190, 150], "split": 3}]}


def pages(folder, rows, with_type=True):
    frame = pd.DataFrame(rows, columns=["sheet_id", "status", "page_type"])
    (frame if with_type else frame.drop(columns="page_type")).to_csv(folder / "pages.csv", index=False)


def test_a_run_without_templates_is_the_acta_and_its_pages_need_no_page_type(tmp_path):
    assert list(run_templates(tmp_path)) == [load_template().name]
    pages(tmp_path, [("s1", "ok", ""), ("s2", "not_a_form", "")], with_type=False)
    assert page_templates(tmp_path) == {"s1": load_template().name}


def test_several_recorded_templates_and_each_pages_type(tmp_path):
    written = record_templates([parse_template(raw("alpha")), parse_template(raw("beta"))], tmp_path)
    assert sorted(p.name for p in written) == ["alpha.yaml", "beta.yaml"]
    assert not (tmp_path / RUN_TEMPLATE_FILE).exists()
    assert sorted(run_templates(tmp_path)) == ["alpha", "beta"]
    pages(tmp_path, [("s1", "ok", "beta"), ("s2", "template_uncertain", ""), ("s3", "ok", "alpha"),
                     ("s1", "duplicate_id", "")])
    assert page_templates(tmp_path) == {"s1": "beta", "s3": "alpha"}


def test_a_page_of_an_unrecorded_template_or_a_run_of_both_layouts_is_refused(tmp_path):
    record_templates([parse_template(raw("alpha")), parse_template(raw("beta"))], tmp_path)
    pages(tmp_path, [("s1", "ok", "gamma")])
    with pytest.raises(ConfigError, match="gamma"):
        page_templates(tmp_path)
    pages(tmp_path, [("s1", "ok", "")], with_type=False)
    with pytest.raises(ConfigError, match="no page_type column"):
        page_templates(tmp_path)
    (tmp_path / RUN_TEMPLATE_FILE).write_text(yaml.safe_dump(raw("alpha")))
    with pytest.raises(ConfigError, match="both"):
        run_templates(tmp_path)


def test_a_template_file_named_otherwise_than_its_template_is_refused(tmp_path):
    (tmp_path / TEMPLATES_DIR).mkdir()
    (tmp_path / TEMPLATES_DIR / "alpha.yaml").write_text(yaml.safe_dump(raw("beta")))
    with pytest.raises(ConfigError, match="alpha.yaml"):
        run_templates(tmp_path)


def test_recording_one_template_removes_what_a_reading_of_several_left(tmp_path):
    record_templates([parse_template(raw("alpha")), parse_template(raw("beta"))], tmp_path)
    record_templates([parse_template(raw("alpha"))], tmp_path)
    assert (tmp_path / RUN_TEMPLATE_FILE).is_file() and not (tmp_path / TEMPLATES_DIR).exists()
    record_templates([load_template()], tmp_path, packaged_default=True)
    assert not (tmp_path / RUN_TEMPLATE_FILE).exists()


def test_missing_pages_and_clashing_names_are_named(tmp_path):
    record_templates([parse_template(raw("alpha")), parse_template(raw("beta"))], tmp_path)
    with pytest.raises(InputFileError, match="pages.csv"):
        page_templates(tmp_path)
    with pytest.raises(ConfigError, match="a.yaml and b.yaml are both named 'alpha'"):
        check_names([parse_template(raw("alpha"))] * 2, ["b.yaml", "a.yaml"])
    with pytest.raises(ConfigError, match="cannot name a file"):
        check_names([parse_template(raw("../up", "total"))], ["c.yaml"])


def test_run_template_refuses_a_run_of_several_templates_instead_of_answering_the_acta(tmp_path):
    record_templates([parse_template(raw("alpha")), parse_template(raw("beta"))], tmp_path)
    with pytest.raises(ConfigError, match=rf"{tmp_path / TEMPLATES_DIR}.*2 templates \(alpha, beta\)"):
        run_template(tmp_path)


def test_run_template_answers_the_one_template_recorded_in_templates(tmp_path):
    (tmp_path / TEMPLATES_DIR).mkdir()
    (tmp_path / TEMPLATES_DIR / "alpha.yaml").write_text(yaml.safe_dump(raw("alpha")))
    assert run_template(tmp_path).name == "alpha"
    assert list(run_templates(tmp_path)) == ["alpha"]
    (tmp_path / RUN_TEMPLATE_FILE).write_text(yaml.safe_dump(raw("alpha")))
    with pytest.raises(ConfigError, match="both"):
        run_template(tmp_path)
