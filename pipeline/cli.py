"""Command-line interface: ``python -m pipeline <command>``.

Thin by design: each stage module exposes ``register(subparsers)``, which adds its sub-commands with
``set_defaults(func=...)``; the handler takes ``(args, config)`` and returns an exit code. This module only
parses, configures logging, loads the optional YAML config and turns :class:`TallyAuditError` into a message
and an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.machinery
import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from pipeline import __version__
from pipeline.config import load_config_file
from pipeline.errors import ExitCode, TallyAuditError, os_error_message, with_output_folder

log = logging.getLogger("pipeline")

#: Modules that contribute sub-commands, in the order they appear in ``--help`` (the order data flows).
COMMAND_MODULES = (
    "pipeline.forms.cli",
    "pipeline.synth.cli",
    "pipeline.vision.cli",
    "pipeline.model.cli",
    "pipeline.audit.cli",
    "pipeline.audit.table_cli",
    "pipeline.report.cli",
    "pipeline.run",
    "pipeline.bench",
)
#: What each command does and one example, shown by ``python -m pipeline COMMAND --help`` (a stage's own
#: description, where it sets one, is kept).
COMMAND_TEXT = {
    "form": ("Render the blank 1988-style tally sheet (acta) from the form template, to print it or to test the "
             "reader on it.", "python -m pipeline form --out blank.pdf"),
    "template": ("Work with form templates: `template check` registers scans with a template and draws its boxes "
                 "over each page, to check a new form's geometry before reading a batch.",
                 "python -m pipeline template check my_form.yaml scans/ --out template-check"),
    "synth": ("Generate synthetic scanned tally sheets with their ground truth.",
              "python -m pipeline synth --sheets 50 --seed 7 --out data/synthetic/demo"),
    "read": ("Register each scan onto the form (corner squares, perspective, orientation), cut every count into "
             "MNIST-style digits and write the run folder (pages.csv, crops.parquet, digits.npy, field images).",
             "python -m pipeline read data/synthetic/demo --out data/interim/demo"),
    "train": ("Train the digit CNN on MNIST with handwriting augmentation, calibrate its confidence and save it as "
              "a new version under models/ (models/current points to it).", "python -m pipeline train --epochs 5"),
    "recognise": ("Read every digit crop of a run folder with the current model; writes digits_read.parquet and "
                  "fields.parquet (value, confidence and alternative readings of every field).",
                  "python -m pipeline recognise data/interim/demo"),
    "review": ("Export the least confident reads of a run as a CSV plus PNG crops, to correct by hand for "
               "`retrain`.", "python -m pipeline review data/interim/demo --out labels.csv"),
    "retrain": ("Fine-tune the current model on corrected labels mixed with MNIST; the new version becomes current "
                "only if it is better on the crops and no worse on MNIST.",
                "python -m pipeline retrain --labels labels.csv"),
    "audit": ("Build the sheet table and flag sheets whose numbers were altered or do not add up, with the "
              "evidence; adds digit forensics and the Cantú comparison.",
              "python -m pipeline audit data/interim/demo --out data/processed/demo"),
    "train-alteration": ("Train the visible-alteration detector (overwrites, erasures, correction fluid, "
                         "cross-outs) on its own synthetic batch.", "python -m pipeline train-alteration"),
    "audit-table": ("Audit a published results table (one row per polling station) with a column mapping: "
                    "arithmetic, cross-station checks and digit forensics.",
                    "python -m pipeline audit-table results.csv --map mapping.yaml --out data/processed/t"),
    "report": ("Write the static HTML report of an audited batch: what to check first, every sheet with its scan "
               "and evidence, forensics, the model, CSV exports.",
               "python -m pipeline report data/processed/demo --out reports"),
    "run": ("Run the whole pipeline on your scans: read, recognise, audit and (with --report) the HTML report; "
            "prints the one-screen summary.",
            "python -m pipeline run scans/ --out data/processed/scans --report reports"),
    "summary": ("Print the one-screen summary of an audited batch: sheets, verdicts (one per sheet), flags by rule, "
                "time per stage.", "python -m pipeline summary data/processed/demo"),
    "bench": ("Measure the speed and accuracy targets of every stage; writes reports/bench.json.",
              "python -m pipeline bench --only synth"),
}
#: Environment that keeps TensorFlow's C++ start-up messages (oneDNN, CPU features, ...) quiet unless ``-v``.
QUIET_TF_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}
#: Python loggers of TensorFlow and its absl logging, raised to errors unless ``-v``.
QUIET_LOGGERS = ("tensorflow", "absl", "h5py")
#: Modules whose import writes start-up lines straight to file descriptor 2, before any log level applies (TF 2.16+
#: prints its oneDNN notice through absl before absl is initialised, whatever ``TF_CPP_MIN_LOG_LEVEL`` says).
QUIET_IMPORTS = ("tensorflow",)
#: Start-up lines dropped from those imports' output unless ``-v`` (every other line is written back).
TF_NOISE = ("oneDNN custom operations", "All log messages before absl::InitializeLog", "cpu_feature_guard",
            "This TensorFlow binary is optimized", "To enable the following instructions", "Unable to register cu",
            "TF-TRT Warning", "computation_placer", "cuda_executor", "cuda_dnn", "cuda_fft", "cuda_blas")


def is_noise(line: str) -> bool:
    """Whether one line of start-up output is :data:`TF_NOISE`."""
    return any(marker in line for marker in TF_NOISE)


class QuietLoader(importlib.abc.Loader):
    """Runs a module's import with file descriptor 2 going into a temporary file, then writes back every line
    that is not :func:`is_noise`: C++ start-up messages do not pass through Python's ``sys.stderr``."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self.loader.exec_module(module)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                kept = [line for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True)
                        if not is_noise(line)]
                if kept:
                    sys.stderr.write("".join(kept))
                    sys.stderr.flush()


class QuietImports(importlib.abc.MetaPathFinder):
    """Finds the modules of ``names`` as usual, but loads them through :class:`QuietLoader`."""

    def __init__(self, names: tuple[str, ...] = QUIET_IMPORTS):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None and not isinstance(spec.loader, QuietLoader):
            spec.loader = QuietLoader(spec.loader)
        return spec


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every stage's sub-commands registered."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="tally-audit: read handwritten tally sheets and flag altered or inconsistent counts.",
        epilog="example:\n  python -m pipeline run scans/ --out data/processed/scans --report reports\n\n"
               "`python -m pipeline COMMAND --help` describes each command.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tally-audit {__version__}")
    parser.add_argument("--config", type=Path, help="YAML file with per-stage settings (sections: synth, read, ...)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log debug messages, TensorFlow's included")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for name, command in sub.choices.items():
        describe(command, *COMMAND_TEXT.get(name, ("", "")))
    return parser


def describe(parser: argparse.ArgumentParser, description: str, example: str) -> None:
    """Give a sub-command its description (unless it has one) and an example, laid out as written."""
    parser.description = parser.description or description
    if example:
        parser.epilog = f"example:\n  {example}"
        parser.formatter_class = argparse.RawDescriptionHelpFormatter


def quiet_tensorflow(verbose: bool) -> None:
    """Silence TensorFlow's start-up noise unless ``verbose``: set :data:`QUIET_TF_ENV` (before TensorFlow is
    imported, which only commands that run a model do; worker processes inherit it), raise its loggers to
    errors, and import it through :class:`QuietImports`, which drops the lines that bypass both (:data:`TF_NOISE`).
    A value the user set in the environment is kept."""
    if verbose:
        return
    for key, value in QUIET_TF_ENV.items():
        os.environ.setdefault(key, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if not any(isinstance(finder, QuietImports) for finder in sys.meta_path):
        sys.meta_path.insert(0, QuietImports())


def stop_on_sigterm(signum: int, frame) -> None:
    """SIGTERM unwinds the run like Ctrl-C does, so that every ``finally`` runs: worker pools are stopped and their
    processes terminated, locks released, temporary files removed. The exit status is 128 + the signal number, as
    a shell reports a process killed by it."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    args = build_parser().parse_args(argv)
    quiet_tensorflow(args.verbose)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set a handler
        return _run(args)
    previous = signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


#: Arguments that name what a command writes, in the order a failed write is most likely to concern.
OUTPUT_ARGUMENTS = ("out", "interim", "report", "rundir")


def output_folder(args: argparse.Namespace) -> object | None:
    """The folder the command writes (the first of :data:`OUTPUT_ARGUMENTS` it was given), for error messages."""
    return next((getattr(args, name) for name in OUTPUT_ARGUMENTS if getattr(args, name, None)), None)


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; failures the user can act on become a message and an exit code."""
    try:
        return int(args.func(args, load_config_file(args.config)) or ExitCode.ok)
    except TallyAuditError as exc:
        print(f"error: {with_output_folder(str(exc), output_folder(args))}", file=sys.stderr)
        return int(exc.exit_code)
    except OSError as exc:  # a full disk, a read-only or forbidden folder: one line, not a traceback
        print(f"error: {with_output_folder(os_error_message(exc), output_folder(args))}", file=sys.stderr)
        return int(ExitCode.output_error)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
