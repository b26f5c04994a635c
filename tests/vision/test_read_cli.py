"""``python -m pipeline read`` takes its forms as ``run`` does: ``--form`` (repeated), else the config's
``read.templates``, else its ``read.template``."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest

from pipeline.vision import batch, cli

LAMPIRAN = "pipeline/forms/templates/c1_2014_lampiran.yaml"
CERTIFICATE = "pipeline/forms/templates/c1_2014_certificate.yaml"


@pytest.fixture
def read_calls(monkeypatch) -> list[dict]:
    """The calls of ``read_batch``, which writes a one-page ``pages.csv`` and reads nothing."""
    calls: list[dict] = []

    def fake(paths, out, settings=None, engine=None, templates=()):
        calls.append({"settings": settings, "templates": tuple(templates)})
        out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame([{"sheet_id": "p1", "status": "ok", "reason": "", "page_type": ""}]).to_csv(
            out / "pages.csv", index=False)
        return out

    monkeypatch.setattr(batch, "read_batch", fake)
    return calls


def read(tmp_path, config: dict, *forms: str) -> int:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["read", str(tmp_path / "scan.png"), "--out", str(tmp_path / "run"),
                              *(a for f in forms for a in ("--form", f))])
    return args.func(args, config)


def test_read_takes_config_read_templates_without_form(tmp_path, read_calls):
    assert read(tmp_path, {"read": {"templates": [LAMPIRAN, CERTIFICATE]}}) == 0
    (call,) = read_calls
    assert call["templates"] == (LAMPIRAN, CERTIFICATE)
    assert call["settings"].template is None and call["settings"].templates == ()


def test_read_takes_one_config_template_as_a_single_template_run(tmp_path, read_calls):
    read(tmp_path, {"read": {"templates": [LAMPIRAN]}})
    assert read_calls[0]["templates"] == () and read_calls[0]["settings"].template == LAMPIRAN
    read(tmp_path, {"read": {"template": CERTIFICATE}})
    assert read_calls[1]["templates"] == () and read_calls[1]["settings"].template == CERTIFICATE


def test_form_wins_over_config_read_templates(tmp_path, read_calls):
    read(tmp_path, {"read": {"templates": [LAMPIRAN, CERTIFICATE]}}, CERTIFICATE)
    assert read_calls[0]["templates"] == () and read_calls[0]["settings"].template == CERTIFICATE
    read(tmp_path, {"read": {"template": LAMPIRAN}}, LAMPIRAN, CERTIFICATE)
    assert read_calls[1]["templates"] == (LAMPIRAN, CERTIFICATE) and read_calls[1]["settings"].template is None


def test_no_form_anywhere_reads_the_packaged_acta(tmp_path, read_calls):
    read(tmp_path, {})
    assert read_calls[0]["templates"] == () and read_calls[0]["settings"].template is None
