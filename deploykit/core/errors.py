"""Every failure a user can cause, as one exception type each, with one exit code.

The CLI maps these to a message and an exit code in one place (``deploykit.cli.errors``);
the Python API raises them unchanged. Exit codes are part of the public contract:

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
    """The converted artifact's outputs drift from the source beyond tolerance."""

    exit_code = EXIT_PARITY
    title = "parity check failed"


class IntegrityError(DeployKitError):
    """A bundle, signature, channel index or repository failed verification."""

    exit_code = EXIT_INTEGRITY
    title = "verification failed"
