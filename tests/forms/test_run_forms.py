"""``python -m pipeline run`` and ``make run`` read with several forms: repeated ``--form``, else the config's
``read.templates`` (validated), else ``read.template``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from pipeline import run as run_module
from pipeline.config import build_settings
from pipeline.errors import ConfigError
from pipeline.vision.settings import ReadSettings


def test_read_templates_is_a_checked_list():
    s = build_settings(ReadSettings, "read", {"read": {"templates": ["a.yaml", "b.yaml"]}})
    assert s.templates == ("a.yaml", "b.yaml") and s.forms == ("a.yaml", "b.yaml")
    assert ReadSettings(template="a.yaml").forms == ("a.yaml",) and ReadSettings().forms == ()
    for bad in ("a.yaml", ["a.yaml", ""], ["a.yaml", "a.yaml"], [3]):
        with pytest.raises(ConfigError, match="read.templates"):
            build_settings(ReadSettings, "read", {"read": {"templates": bad}})
    with pytest.raises(ConfigError, match=r"read.template and read.templates"):
        ReadSettings(template="a.yaml", templates=("b.yaml",))


def test_forms_given_on_the_command_line_win_over_the_config():
    config = ReadSettings(templates=("a.yaml", "b.yaml"))
    assert run_module.read_forms([], config) == ("a.yaml", "b.yaml")
    assert run_module.read_forms([Path("c.yaml")], config) == ("c.yaml",)


def test_run_takes_the_form_option_several_times():
    parser = argparse.ArgumentParser()
    run_module.register(parser.add_subparsers())
    args = parser.parse_args(["run", "scans", "--out", "o", "--form", "a.yaml", "--form", "b.yaml"])
    assert args.forms == ["a.yaml", "b.yaml"]
    assert parser.parse_args(["run", "scans", "--out", "o"]).forms == []


def test_run_reads_with_every_form(tmp_path, monkeypatch):
    """The read stage gets every form; the run record names them."""
    seen = {}

    def fake_read(scans, rundir, settings, engine, templates=()):
        seen["templates"], seen["settings"] = templates, settings
        raise SystemExit(0)

    import pipeline.vision as vision
    monkeypatch.setattr(vision, "read_batch", fake_read)
    monkeypatch.setattr(run_module, "check_model", lambda model: None)
    with pytest.raises(SystemExit):
        run_module.run_pipeline([tmp_path], tmp_path / "out", None, tmp_path, {}, tmp_path / "run",
                                no_alteration=True, forms=["a.yaml", "b.yaml"])
    assert seen["templates"] == ("a.yaml", "b.yaml")
    assert seen["settings"].template is None and seen["settings"].templates == ()
