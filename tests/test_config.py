from __future__ import annotations

from dataclasses import dataclass

import pytest

from pipeline.config import build_settings, load_config_file
from pipeline.errors import ConfigError


@dataclass(frozen=True)
class Demo:
    sheets: int = 10
    dpi: int = 200


def test_defaults_then_file_then_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("synth: {sheets: 5, dpi: 150}\n")
    cfg = load_config_file(path)
    assert build_settings(Demo, "synth", cfg, dpi=300, sheets=None) == Demo(sheets=5, dpi=300)


def test_unknown_key_is_rejected():
    with pytest.raises(ConfigError, match="typo"):
        build_settings(Demo, "demo", {"demo": {"typo": 1}})


def test_malformed_file_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="c.yaml"):
        load_config_file(path)


@pytest.mark.parametrize("text, message", [
    ("read: {dpi: high}", "read.dpi must be a number, not 'high'"),
    ("read: {dpi: null}", "read.dpi must be a number, not None"),
    ("read: {writer_normalisation: 'no'}", "read.writer_normalisation must be true or false"),
    ("read: {writer_normalisation: 1}", "read.writer_normalisation must be true or false"),
    ("engine: {workers: two}", "engine.workers must be a whole number"),
    ("engine: {stream_sheets: 2.5}", "engine.stream_sheets must be a whole number, not 2.5"),
    ("engine: {workers: -1}", "engine.workers must lie in [0, inf]"),
    ("recognise: {batch_size: 0}", "recognise.batch_size must lie in [1, inf]"),
    ("report: {table_chunk_rows: 0}", "report.table_chunk_rows must lie in [1, inf]"),
    ("report: {page_size: -3}", "report.page_size must lie in [1, inf]"),
    ("retrain: {holdout: 1.5}", "retrain.holdout must lie in (0, 1)"),
    ("synth: {dpi_choices: [150, x]}", "synth.dpi_choices must be a list of"),
])
def test_values_of_the_wrong_type_or_range_are_config_errors(tmp_path, text, message):
    from pipeline.engine.settings import EngineSettings
    from pipeline.model.settings import RecogniseSettings, RetrainSettings
    from pipeline.report.build import ReportSettings
    from pipeline.synth.settings import SynthSettings
    from pipeline.vision.settings import ReadSettings

    classes = {"read": ReadSettings, "engine": EngineSettings, "recognise": RecogniseSettings,
               "report": ReportSettings, "retrain": RetrainSettings, "synth": SynthSettings}
    path = tmp_path / "c.yaml"
    path.write_text(text + "\n")
    config = load_config_file(path)
    section = next(iter(config))
    with pytest.raises(ConfigError) as info:
        build_settings(classes[section], section, config)
    assert message in str(info.value)


def test_right_values_pass_and_ints_are_numbers(tmp_path):
    from pipeline.vision.settings import ReadSettings

    path = tmp_path / "c.yaml"
    path.write_text("read: {dpi: 300, writer_normalisation: false, workers: null}\n")
    settings = build_settings(ReadSettings, "read", load_config_file(path))
    assert settings.dpi == 300 and settings.writer_normalisation is False and settings.workers is None


def test_an_unknown_section_is_rejected(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("raed: {dpi: 300}\n")
    with pytest.raises(ConfigError, match="unknown section.*raed"):
        load_config_file(path)


def test_a_binary_config_file_is_a_config_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError, match="c.yaml"):
        load_config_file(path)


@pytest.mark.parametrize("argv", [["review", "run", "--limit", "-10"], ["retrain", "--labels", "l.csv", "--holdout",
                                                                       "1.5"],
                                  ["retrain", "--labels", "l.csv", "--holdout", "0"],
                                  ["retrain", "--labels", "l.csv", "--holdout", "-0.2"]])
def test_bad_command_line_numbers_are_config_errors(tmp_path, argv, capsys):
    from pipeline.cli import main
    from pipeline.errors import ExitCode

    assert main(argv) == ExitCode.config_error
    err = capsys.readouterr().err
    assert "review.limit" in err or "retrain.holdout" in err
