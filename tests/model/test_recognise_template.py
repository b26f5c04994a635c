"""``recognise`` takes its field names from the template the run was read with (``template.yaml`` in the run
folder), not from the packaged acta: a synthetic run of a reference-image template, and a real Lampiran page read
with the shipped template (skipped when the development images are absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.errors import ConfigError
from pipeline.forms.bench import LAMPIRAN, REAL_DIR
from pipeline.forms.template import RUN_TEMPLATE_FILE, load_template, run_template
from pipeline.model.recognise import recognise_run
from pipeline.model.settings import RecogniseSettings
from tests.model.conftest import crops_frame, stub_digit, use_stub_recogniser

RAW = {"name": "my_form", "geometry": "reference_image", "reference": "absent.png", "reference_size": [400, 600],
       "reference_dpi": 50, "registration": "reference_features", "filler_marks": ["x", "dash"],
       "fields": [{"name": "left", "kind": "count", "comb": [100, 100, 190, 150], "split": 3},
                  {"name": "right", "kind": "count", "comb": [100, 160, 190, 210], "split": 3},
                  {"name": "sum", "kind": "count", "comb": [100, 220, 190, 270], "split": 3},
                  {"name": "seen", "kind": "tick", "boxes": [[300, 100, 330, 130]]}],
       "rules": ["left + right == sum"]}


@pytest.fixture
def stub_model(monkeypatch):
    use_stub_recogniser(monkeypatch)


def test_run_template_is_the_recorded_one_else_the_acta(tmp_path):
    assert run_template(tmp_path) == load_template()
    (tmp_path / RUN_TEMPLATE_FILE).write_text(yaml.safe_dump(RAW))
    assert [f.name for f in run_template(tmp_path).fields] == ["left", "right", "sum", "seen"]
    (tmp_path / RUN_TEMPLATE_FILE).write_text("name: broken\ngeometry: reference_image\n")
    with pytest.raises(ConfigError, match=RUN_TEMPLATE_FILE):
        run_template(tmp_path)


def test_the_run_file_name_is_the_readers():
    from pipeline.vision.batch import TEMPLATE_FILE

    assert TEMPLATE_FILE == RUN_TEMPLATE_FILE


def test_recognise_writes_the_recorded_templates_fields(tmp_path, stub_model):
    rows = [(f"s{s}", field, box, 0, "digit", -1) for s in range(2) for field in ("left", "right") for box in range(3)]
    rows = [(*r[:5], i) for i, r in enumerate(rows)]
    np.save(tmp_path / "digits.npy", np.stack([stub_digit(i % 10) for i in range(len(rows))]))
    crops_frame(rows).to_parquet(tmp_path / "crops.parquet")
    (tmp_path / RUN_TEMPLATE_FILE).write_text(yaml.safe_dump(RAW))
    recognise_run(tmp_path, None, RecogniseSettings())
    fields = pd.read_parquet(tmp_path / "fields.parquet")
    assert fields.groupby("sheet_id")["field"].apply(list).tolist() == [["left", "right", "sum"]] * 2
    assert fields.set_index(["sheet_id", "field"]).loc[("s0", "left"), "value"] == 12
    assert fields.loc[fields["field"] == "sum", "needs_review"].all()  # no crops: a field the reader lost


@pytest.mark.skipif(not (REAL_DIR / "ok.jpg").is_file() or load_template(LAMPIRAN).reference is None,
                    reason="the c1_2014 development images are absent")
def test_a_real_lampiran_run_gets_its_own_fields(tmp_path, stub_model):
    from pipeline.vision.batch import read_batch
    from pipeline.vision.settings import ReadSettings

    out = read_batch([REAL_DIR / "ok.jpg"], tmp_path / "run", ReadSettings(workers=1, template=str(LAMPIRAN)))
    recognise_run(out, None, RecogniseSettings())
    fields = pd.read_parquet(out / "fields.parquet")
    assert fields["field"].tolist() == ["pair_1", "pair_2", "valid", "invalid"]
    assert set(fields["sheet_id"]) == {Path("ok.jpg").stem} and (fields["n_crops"] > 0).all()
