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


@pytest.fixture(autouse=True)
def own_meta_path(monkeypatch):
    """Each test starts without the quiet-import hook (an earlier ``main()`` call may have added it) and its own
    hooks are undone after it."""
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if not isinstance(f, cli.QuietImports)])


@pytest.mark.parametrize("verbose", [False, True])
def test_tensorflow_noise_is_silenced_unless_verbose(monkeypatch, verbose):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setattr(logging.getLogger("tensorflow"), "level", logging.NOTSET)
    cli.quiet_tensorflow(verbose)
    assert os.environ.get("TF_CPP_MIN_LOG_LEVEL") == (None if verbose else "2")
    assert (logging.getLogger("tensorflow").level == logging.ERROR) != verbose
    assert any(isinstance(f, cli.QuietImports) for f in sys.meta_path) != verbose


NOISY_MODULE = """import os
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
os.write(2, b"I0000 00:00:1 port.cc:153] oneDNN custom operations are on. You may see slightly different\\n")
os.write(2, b"a real warning stays\\n")
VALUE = 42
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_start_up_lines_written_below_python_are_dropped_unless_verbose(tmp_path, verbose):
    """A module that writes TensorFlow's start-up lines to file descriptor 2 on import (as TensorFlow does, before
    any log level applies), imported in a fresh process after ``quiet_tensorflow``."""
    (tmp_path / "noisy_tf.py").write_text(NOISY_MODULE)
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); from pipeline import cli; "
            f"cli.QUIET_IMPORTS = ('noisy_tf',); cli.quiet_tensorflow({verbose}); "
            "sys.meta_path[:] = [f if not isinstance(f, cli.QuietImports) else cli.QuietImports(('noisy_tf',)) "
            "for f in sys.meta_path]; import noisy_tf; print(noisy_tf.VALUE)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.stdout.strip() == "42"
    assert "a real warning stays" in out.stderr
    assert ("oneDNN" in out.stderr) == verbose and ("absl::InitializeLog" in out.stderr) == verbose


def test_a_level_the_user_set_is_kept(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    cli.quiet_tensorflow(False)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
