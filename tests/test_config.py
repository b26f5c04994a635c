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
    path.write_text("demo: {sheets: 5, dpi: 150}\n")
    cfg = load_config_file(path)
    assert build_settings(Demo, "demo", cfg, dpi=300, sheets=None) == Demo(sheets=5, dpi=300)


def test_unknown_key_is_rejected():
    with pytest.raises(ConfigError, match="typo"):
        build_settings(Demo, "demo", {"demo": {"typo": 1}})


def test_malformed_file_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="c.yaml"):
        load_config_file(path)
