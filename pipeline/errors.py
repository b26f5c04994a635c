"""Exception hierarchy with exit codes, so the CLI has one place that turns failures into messages."""

from __future__ import annotations

import errno
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
    output_error = 7


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


class OutputError(TallyAuditError):
    """An output folder cannot be written: another run holds it, it is read-only, the disk is full, ..."""

    exit_code = ExitCode.output_error


#: File-system errors that no other input file can get past: a run that meets one stops with one line instead of
#: failing every remaining file the same way.
FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
#: What to do about a file-system error, by errno.
OS_ERROR_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space, or write to another disk",
    errno.EDQUOT: "the disk quota is used up: free some space, or write elsewhere",
    errno.EROFS: "the file system is read-only: write to another folder",
    errno.EACCES: "permission denied: check the permissions, or write to another folder",
    errno.EPERM: "operation not permitted: check the permissions, or write to another folder",
}


def is_fatal_os_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a file-system error that stops the whole run (:data:`FATAL_ERRNOS`)."""
    return isinstance(exc, OSError) and exc.errno in FATAL_ERRNOS


#: Stands for the path in the message of a file-system error that did not name one (a write to an open file); the
#: command line puts its output folder there (:func:`with_output_folder`).
NO_PATH = "(no path)"


def with_output_folder(message: str, folder: object | None) -> str:
    """``message`` with :data:`NO_PATH` replaced by the output ``folder`` the command was writing, if known."""
    return message if folder is None else message.replace(NO_PATH, f"{folder} (writing the output)", 1)


def os_error_message(exc: OSError) -> str:
    """One line for a file-system error: the path, what went wrong and what to do."""
    where = exc.filename if exc.filename is not None else NO_PATH
    if isinstance(where, bytes):
        where = where.decode("utf-8", "backslashreplace")
    where = str(where).encode("utf-8", "backslashreplace").decode("utf-8")
    advice = OS_ERROR_ADVICE.get(exc.errno, "check the path and the disk")
    return f"{where}: {exc.strerror or exc}; {advice}"


def output_error(exc: OSError) -> OutputError:
    """``exc`` as an :class:`OutputError` with its one-line message."""
    return OutputError(os_error_message(exc))
