"""Sub-commands of the audit stage: ``audit`` (flag a read run) and ``train-alteration`` (train the detector)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from pipeline import config as cfg
from pipeline.audit.settings import ALTERATION_DIR, AlterationSettings, AuditSettings


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``audit`` and ``train-alteration`` to the top-level parser."""
    p = sub.add_parser("audit", help="build the sheet table and flag altered or inconsistent sheets")
    p.add_argument("rundir", type=Path, help="run folder of the reader and recogniser (pages.csv, fields.parquet)")
    p.add_argument("--out", type=Path, help="output folder (default data/processed/<run name>)")
    p.add_argument("--truth", type=Path, help="truth.csv of a synthetic batch: also write truth_eval.json")
    p.add_argument("--alteration-model", type=Path, help=f"alteration detector folder (default {ALTERATION_DIR})")
    add_no_alteration_argument(p)
    p.set_defaults(func=_cmd_audit)
    t = sub.add_parser("train-alteration", help="train the visible-alteration detector on a synthetic batch")
    t.add_argument("--sheets", type=int, help="training sheets to generate (default 600)")
    t.add_argument("--seed", type=int, help="generator seed of the training batch (default 1001)")
    t.add_argument("--form", "--template", dest="template", type=Path, metavar="TEMPLATE",
                   help="form template YAML to train for (default: the packaged acta); its own synthetic batch "
                        "(synth --form, the 'train' styles, the training seed) is generated and read, and the "
                        "detector saved with the template's name, where the audit of that form's runs picks it")
    t.add_argument("--batch", type=Path, help="train on this synthetic batch (truth.csv, sheets/, template.yaml) "
                                              "instead of generating one")
    t.add_argument("--run", type=Path, help="run folder --batch is (or gets) read into (default "
                                            "data/interim/<batch folder name>)")
    t.add_argument("--out", type=Path, help=f"detector folder (default {ALTERATION_DIR} for the acta, "
                                            f"{ALTERATION_DIR}/<template name>/ for another form)")
    t.set_defaults(func=_cmd_train)


def add_no_alteration_argument(p: argparse.ArgumentParser) -> None:
    """``--no-alteration``: audit without the alteration detector (otherwise a missing detector is an error)."""
    p.add_argument("--no-alteration", action="store_true",
                   help="audit without the visible-alteration check (no detector needed; the report says so)")


def audit_settings_from_args(args: argparse.Namespace, config: dict) -> AuditSettings:
    """Audit settings: defaults, then the config's ``audit`` section, then ``--alteration-model`` and
    ``--no-alteration``."""
    model = getattr(args, "alteration_model", None)
    settings = cfg.build_settings(AuditSettings, "audit", config, alteration_model=str(model) if model else None)
    return replace(settings, alteration_model=None) if args.no_alteration else settings


def _cmd_audit(args: argparse.Namespace, config: dict) -> int:
    from pipeline.audit.audit import run_audit
    from pipeline.engine import EngineSettings

    settings = audit_settings_from_args(args, config)
    engine = cfg.build_settings(EngineSettings, "engine", config)
    out = args.out or cfg.PROCESSED_DIR / args.rundir.resolve().name
    result = run_audit(args.rundir, out, settings, truth=args.truth, stream_sheets=engine.stream_sheets)
    print(f"wrote {out}: {result.n_sheets} sheets, {result.n_flags} flags; sheet verdicts "
          + ", ".join(f"{k} {v}" for k, v in sorted(result.verdicts.items())))
    return 0


def _cmd_train(args: argparse.Namespace, config: dict) -> int:
    from pipeline.audit.train import default_out, train_alteration
    from pipeline.forms.template import load_template, read_run_template

    settings = cfg.build_settings(AlterationSettings, "alteration", config, sheets=args.sheets, seed=args.seed)
    template = load_template(args.template) if args.template else None
    if template is None and args.batch is not None and (args.batch / "template.yaml").is_file():
        template = read_run_template(args.batch / "template.yaml")
    out = args.out or default_out(template)
    detector = train_alteration(settings, out, config, template, args.batch, args.run)
    cv = detector.metadata["metrics"]["cross_validation"]
    print(f"wrote {out} ({detector.metadata['template']}): threshold {detector.threshold:.3f}; cross-validated "
          f"sheet precision {cv['precision']:.3f} recall {cv['recall']:.3f} ROC AUC {cv['roc_auc']:.3f}")
    return 0
