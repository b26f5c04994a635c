"""Sub-commands of the model stage: ``train``, ``recognise``, ``review``, ``retrain``.

Handlers import the Keras-heavy modules lazily, so registering these commands (which every ``python -m pipeline``
call does) never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipeline import config as cfg
from pipeline.config import build_settings
from pipeline.model.settings import RecogniseSettings, RetrainSettings, ReviewSettings, TrainSettings, tiny

log = logging.getLogger(__name__)

MODEL_REPORTS = cfg.REPORTS_DIR / "model"


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's sub-commands to the top-level parser."""
    p = sub.add_parser("train", help="train the digit CNN on MNIST, calibrate it, save a new current version")
    p.add_argument("--epochs", type=int, help="maximum epochs (early stopping may end sooner)")
    p.add_argument("--tiny", action="store_true",
                   help="small network on a few thousand digits, a smoke run (it becomes current in --out)")
    p.add_argument("--out", type=Path, default=cfg.MODELS_DIR, help="models folder (default: models/)")
    p.add_argument("--reports", type=Path, default=MODEL_REPORTS, help="where metrics and figures go")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("recognise", help="read every digit crop of a run folder; writes digits_read/fields.parquet")
    p.add_argument("rundir", type=Path, help="run folder written by `read` (crops.parquet + digits.npy)")
    p.add_argument("--model", type=Path, default=cfg.CURRENT_MODEL, help="model version folder (default: current)")
    p.add_argument("--batch-size", type=int, help="digits per inference batch")
    p.set_defaults(func=_cmd_recognise)

    p = sub.add_parser("review", help="export a labelling sheet of the least confident reads (CSV + PNG crops)")
    p.add_argument("rundir", type=Path, help="run folder with digits_read.parquet (run `recognise` first)")
    p.add_argument("--out", type=Path, default=Path("labels.csv"), help="CSV to write; crops go to <stem>_crops/")
    p.add_argument("--limit", type=int, help="number of crops in the sheet")
    p.set_defaults(func=_cmd_review)

    p = sub.add_parser("retrain", help="fine-tune the current model on corrected labels; promote only if better")
    p.add_argument("--labels", type=Path, required=True, help="labelling sheet from `review`, labels corrected")
    p.add_argument("--model", type=Path, default=cfg.CURRENT_MODEL, help="model to start from (default: current)")
    p.add_argument("--holdout", type=float, help="share of labelled crops kept out for the old-vs-new comparison")
    p.add_argument("--out", type=Path, default=cfg.MODELS_DIR, help="models folder where the new version goes")
    p.set_defaults(func=_cmd_retrain)


def _cmd_train(args: argparse.Namespace, config: dict) -> int:
    from pipeline.model.train import train

    settings = build_settings(TrainSettings, "train", config, epochs=args.epochs)
    if args.tiny:
        settings = tiny(settings)
    metadata = train(settings, args.out, args.reports)
    m = metadata["metrics"]
    print(f"model {metadata['version']}: MNIST test accuracy {100 * m['test_accuracy']:.2f}%, "
          f"ECE {100 * m['test_ece_before']:.2f}% -> {100 * m['test_ece_after']:.2f}%, "
          f"{metadata['epochs_run']} epochs ({metadata['stop_reason']}), {metadata['train_seconds']:.0f} s")
    return 0


def _cmd_recognise(args: argparse.Namespace, config: dict) -> int:
    from pipeline.engine import EngineSettings
    from pipeline.model.recognise import recognise_run

    settings = build_settings(RecogniseSettings, "recognise", config, batch_size=args.batch_size)
    engine = build_settings(EngineSettings, "engine", config)
    summary = recognise_run(args.rundir, args.model, settings, engine.stream_sheets)
    print(summary)
    return 0


def _cmd_review(args: argparse.Namespace, config: dict) -> int:
    from pipeline.model.review import export_review

    settings = build_settings(ReviewSettings, "review", config, limit=args.limit)
    path, n = export_review(args.rundir, args.out, settings)
    print(f"wrote {n} crops to {path}; correct the 'label' column, then `python -m pipeline retrain --labels {path}`")
    return 0


def _cmd_retrain(args: argparse.Namespace, config: dict) -> int:
    from pipeline.model.retrain import retrain

    settings = build_settings(RetrainSettings, "retrain", config, holdout=args.holdout)
    decision = retrain(args.labels, args.model, args.out, settings)
    print(decision.summary())
    return 0
