"""The whole-pipeline command: every output folder is locked (so known writable) before any work starts."""

from __future__ import annotations

import subprocess
import sys

from pipeline.cli import main
from pipeline.errors import ExitCode
from tests.engine.test_lock import HOLD


def test_run_into_a_folder_another_run_holds_stops_before_reading(tmp_path, capsys, monkeypatch):
    import pipeline.run as run_module

    monkeypatch.setattr(run_module, "check_model", lambda model: None)
    out = tmp_path / "processed"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        (tmp_path / "s.png").write_bytes(b"")
        code = main(["run", str(tmp_path / "s.png"), "--out", str(out), "--interim", str(tmp_path / "interim"),
                     "--no-alteration"])
    finally:
        proc.kill()
        proc.wait()
    assert code == ExitCode.output_error
    assert f"{out}: another run" in capsys.readouterr().err
    assert not (tmp_path / "interim" / "pages.csv").exists()


def test_run_without_an_alteration_detector_stops_before_reading(tmp_path, capsys, monkeypatch):
    import pipeline.run as run_module

    monkeypatch.setattr(run_module, "check_model", lambda model: None)
    (tmp_path / "s.png").write_bytes(b"")
    config = tmp_path / "c.yaml"
    config.write_text(f"audit: {{alteration_model: '{tmp_path / 'none'}'}}\n")
    code = main(["--config", str(config), "run", str(tmp_path / "s.png"), "--out", str(tmp_path / "processed"),
                 "--interim", str(tmp_path / "interim")])
    assert code == ExitCode.model_error and "--no-alteration" in capsys.readouterr().err
    assert not (tmp_path / "interim" / "pages.csv").exists()
