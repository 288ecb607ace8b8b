"""Every failure a user can cause, as one exception type each, with one exit code.

Each class owns its exit code and its title; :func:`describe` turns any exception into the
(exit code, title, message, hint) the CLI prints (``deploykit.cli.errors`` only renders it) and a
record's ``failures`` entry keeps. The Python API raises them unchanged. Exit codes are part of the
public contract:

    0  success
    1  parity failure: the artifact does not compute what the source computes
    2  usage error or bad input (missing file, unknown format, unsafe file, bad --input)
    3  conversion failure (unsupported operator, upstream converter crash)
    4  bundle, signature or repository verification failure (tampering, rollback, expiry)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_PARITY = 1
EXIT_USAGE = 2
EXIT_CONVERSION = 3
EXIT_INTEGRITY = 4


class DeployKitError(Exception):
    """Base class. ``hint`` tells the user the next step, when there is one."""

    exit_code = EXIT_CONVERSION
    title = "error"

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(DeployKitError):
    """Flags that contradict each other or are malformed (e.g. a bad ``--input``)."""

    exit_code = EXIT_USAGE
    title = "usage error"


class InputError(DeployKitError):
    """The model file is missing, unreadable or not a format deploykit knows."""

    exit_code = EXIT_USAGE
    title = "bad input"


class UnsafeInputError(InputError):
    """The input could run code or reach outside its directory if loaded (pickles, Lambda layers, escaping paths)."""

    title = "unsafe input refused"


class UnsupportedOperatorError(DeployKitError):
    """A conversion path cannot express an operator of the source model."""

    exit_code = EXIT_CONVERSION
    title = "unsupported operator"


class ConversionError(DeployKitError):
    """The upstream converter failed; its log is attached for --verbose."""

    exit_code = EXIT_CONVERSION
    title = "conversion failed"

    def __init__(self, message: str, hint: str | None = None, log: str = ""):
        super().__init__(message, hint)
        self.log = log


class ParityError(DeployKitError):
    """The converted artifact's outputs drift from the source beyond tolerance. ``record``: the conversion
    record written before the error was raised (``convert`` writes the artifacts and the record first)."""

    exit_code = EXIT_PARITY
    title = "parity check failed"

    def __init__(self, message: str, hint: str | None = None, record=None):
        super().__init__(message, hint)
        self.record = record


class IntegrityError(DeployKitError):
    """A bundle, signature, channel index or repository failed verification."""

    exit_code = EXIT_INTEGRITY
    title = "verification failed"


def first_line(exc: BaseException, limit: int = 400) -> str:
    """An upstream exception's first line: what a deploykit message quotes of it."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]


EXIT_INTERRUPTED = 130
DEBUG_VARIABLE = "DEPLOYKIT_DEBUG"

# Exceptions that are not deploykit's own but that a user can still cause.
FOREIGN: tuple[tuple[type[BaseException], int, str], ...] = (
    (KeyboardInterrupt, EXIT_INTERRUPTED, "interrupted"),
    (MemoryError, EXIT_CONVERSION, "out of memory"),
)
INTERNAL = "internal error"


def describe(exc: BaseException) -> tuple[int, str, str, str | None]:
    """(exit code, title, message, hint) for any exception; anything unforeseen is an internal error."""
    if isinstance(exc, DeployKitError):
        return exc.exit_code, exc.title, exc.message or type(exc).__name__, exc.hint
    for exc_type, code, title in FOREIGN:
        if isinstance(exc, exc_type):
            return code, title, str(exc) or exc_type.__name__, None
    return (EXIT_CONVERSION, INTERNAL, f"{type(exc).__name__}: {exc}",
            f"this is a deploykit bug; rerun with {DEBUG_VARIABLE}=1 for the traceback and report it")
