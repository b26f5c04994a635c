"""Command-line interface: ``python -m pipeline <command>``.

Thin by design: each stage module exposes ``register(subparsers)``, which adds its sub-commands with
``set_defaults(func=...)``; the handler takes ``(args, config)`` and returns an exit code. This module only
parses, configures logging, loads the optional YAML config and turns :class:`TallyAuditError` into a message
and an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from pathlib import Path

from pipeline import __version__
from pipeline.config import load_config_file
from pipeline.errors import ExitCode, TallyAuditError, os_error_message

log = logging.getLogger("pipeline")

#: Modules that contribute sub-commands, in the order they appear in ``--help`` (the order data flows).
COMMAND_MODULES = (
    "pipeline.forms.cli",
    "pipeline.synth.cli",
    "pipeline.vision.cli",
    "pipeline.model.cli",
    "pipeline.audit.cli",
    "pipeline.report.cli",
    "pipeline.run",
    "pipeline.bench",
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every stage's sub-commands registered."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="tally-audit: read handwritten tally sheets and flag altered or inconsistent counts.")
    parser.add_argument("--version", action="version", version=f"tally-audit {__version__}")
    parser.add_argument("--config", type=Path, help="YAML file with per-stage settings (sections: synth, read, ...)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def stop_on_sigterm(signum: int, frame) -> None:
    """SIGTERM unwinds the run like Ctrl-C does, so that every ``finally`` runs: worker pools are stopped and their
    processes terminated, locks released, temporary files removed. The exit status is 128 + the signal number, as
    a shell reports a process killed by it."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set a handler
        return _run(args)
    previous = signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; failures the user can act on become a message and an exit code."""
    try:
        return int(args.func(args, load_config_file(args.config)) or ExitCode.ok)
    except TallyAuditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except OSError as exc:  # a full disk, a read-only or forbidden folder: one line, not a traceback
        print(f"error: {os_error_message(exc)}", file=sys.stderr)
        return int(ExitCode.output_error)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
