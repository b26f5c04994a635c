import pytest

from pipeline.config import build_settings
from pipeline.errors import ConfigError
from pipeline.synth import SynthSettings


def test_defaults_match_the_issue():
    s = SynthSettings()
    assert (s.dpi, s.image_format, s.registered_voters) == (200, "jpg", (200, 750))
    assert s.altered_rate_absent > s.altered_rate_present
    assert 0 < s.upside_down_rate <= 0.05 and s.keep_fiducials and not s.marks_over_boxes


def test_yaml_lists_become_tuples_so_settings_stay_hashable():
    s = build_settings(SynthSettings, "synth", {"synth": {"jpeg_quality": [60, 80], "dpi_choices": [150, 300]}})
    assert s.jpeg_quality == (60, 80) and s.resolutions() == (150, 300)
    hash(s)


def test_manifest_leaves_out_the_worker_count():
    assert "workers" not in SynthSettings().for_manifest()
    assert SynthSettings(workers=1).for_manifest() == SynthSettings(workers=2).for_manifest()


@pytest.mark.parametrize("bad", [
    {"sheets": 0}, {"image_format": "gif"}, {"dpi": 50}, {"dpi": 2000}, {"jpeg_quality": (90, 80)},
    {"altered_rate_absent": 1.5}, {"alteration_weights": (0, 0, 0, 0)}, {"alteration_weights": (1, 1)},
    {"registered_voters": (200, 995)}, {"seed": -1}, {"rotation_deg": 90}, {"rep_present": (0.5,)},
    {"digit_height": (0.9, 1.2)}, {"workers": -1}, {"stroke_scale": (0.1, 1.0)},
])
def test_bad_settings_are_rejected_naming_the_setting(bad):
    name = next(iter(bad))
    with pytest.raises(ConfigError, match=name.split("_")[0]):
        SynthSettings(**bad)


def test_unknown_setting_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown setting"):
        build_settings(SynthSettings, "synth", {"synth": {"sheets": 3, "colour": "red"}})
