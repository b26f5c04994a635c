"""The command line answers ``--help`` without loading a model: no TensorFlow (nor any other heavy library) is
imported to build the parser, every command has a description and an example that parses, and TensorFlow's
log noise is off unless ``-v``. (No test times ``--help``: timings belong to ``make bench``, not to the suite.)"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys

import pytest

from pipeline import cli

#: Libraries that take seconds to import; none may be needed to list the commands or print their help.
HEAVY = ("tensorflow", "keras", "sklearn", "matplotlib", "scipy", "pandas", "cv2", "jinja2", "ray")
PROBE = ("import json, sys; import pipeline.cli as c; c.build_parser(); "
         "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {names})))")


def test_building_the_parser_imports_no_heavy_library():
    code = PROBE.format(names=repr(set(HEAVY)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_every_command_has_a_description_and_an_example_that_parses():
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 (argparse keeps them only here)
    assert set(commands) == set(cli.COMMAND_TEXT)
    for name, command in commands.items():
        assert command.description, name
        assert command.epilog.startswith("example:\n  python -m pipeline " + name), name
        args = parser.parse_args(shlex.split(command.epilog.split("\n", 1)[1])[3:])
        assert args.command == name


@pytest.mark.parametrize("verbose", [False, True])
def test_tensorflow_noise_is_silenced_unless_verbose(monkeypatch, verbose):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setattr(logging.getLogger("tensorflow"), "level", logging.NOTSET)
    cli.quiet_tensorflow(verbose)
    assert os.environ.get("TF_CPP_MIN_LOG_LEVEL") == (None if verbose else "2")
    assert (logging.getLogger("tensorflow").level == logging.ERROR) != verbose


def test_a_level_the_user_set_is_kept(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    cli.quiet_tensorflow(False)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
