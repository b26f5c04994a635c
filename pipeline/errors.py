"""Exception hierarchy with exit codes, so the CLI has one place that turns failures into messages."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of ``python -m pipeline``."""

    ok = 0
    other_error = 1
    bad_args = 2
    input_file = 3
    missing_data = 4
    model_error = 5
    config_error = 6


class TallyAuditError(Exception):
    """Base class: a failure the user can act on, with a message that says what and where."""

    exit_code = ExitCode.other_error


class InputFileError(TallyAuditError):
    """An input file is missing, unreadable, corrupt or not what it claims to be."""

    exit_code = ExitCode.input_file


class MissingDataError(TallyAuditError):
    """A data set (e.g. MNIST) could not be found or failed validation."""

    exit_code = ExitCode.missing_data


class ModelError(TallyAuditError):
    """A model is missing, corrupt, or refused by safe loading."""

    exit_code = ExitCode.model_error


class ConfigError(TallyAuditError):
    """A configuration file or option is invalid."""

    exit_code = ExitCode.config_error
