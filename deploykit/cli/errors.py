"""The one table that turns an exception into a message and an exit code."""

from __future__ import annotations

import os
import sys
import traceback

from deploykit.core import errors

DEBUG_VARIABLE = "DEPLOYKIT_DEBUG"

# (exception type, exit code, heading). First match wins, so subclasses come before their bases.
ERROR_TABLE: list[tuple[type[BaseException], int, str]] = [
    (errors.UnsafeInputError, errors.EXIT_USAGE, "unsafe input refused"),
    (errors.InputError, errors.EXIT_USAGE, "bad input"),
    (errors.UsageError, errors.EXIT_USAGE, "usage error"),
    (errors.UnsupportedOperatorError, errors.EXIT_CONVERSION, "unsupported operator"),
    (errors.ConversionError, errors.EXIT_CONVERSION, "conversion failed"),
    (errors.ParityError, errors.EXIT_PARITY, "parity check failed"),
    (errors.IntegrityError, errors.EXIT_INTEGRITY, "verification failed"),
    (errors.DeployKitError, errors.EXIT_CONVERSION, "error"),
    (KeyboardInterrupt, 130, "interrupted"),
    (MemoryError, errors.EXIT_CONVERSION, "out of memory"),
]


def describe(exc: BaseException) -> tuple[int, str, str, str | None]:
    """(exit code, heading, message, hint) for any exception."""
    for exc_type, code, heading in ERROR_TABLE:
        if isinstance(exc, exc_type):
            message = getattr(exc, "message", None) or str(exc) or exc_type.__name__
            return code, heading, message, getattr(exc, "hint", None)
    return (errors.EXIT_CONVERSION, "internal error", f"{type(exc).__name__}: {exc}",
            f"this is a deploykit bug; rerun with {DEBUG_VARIABLE}=1 for the traceback and report it")


def report(exc: BaseException) -> int:
    """Print one readable message to stderr and return the exit code."""
    from rich.console import Console

    code, heading, message, hint = describe(exc)
    console = Console(stderr=True, highlight=False)
    console.print(f"[bold red]{heading}:[/] {message}", markup=True, soft_wrap=True)
    if hint:
        console.print(f"[yellow]hint:[/] {hint}", soft_wrap=True)
    log = getattr(exc, "log", "")
    if log and os.environ.get("DEPLOYKIT_VERBOSE"):
        console.print("[dim]--- upstream log ---[/]")
        console.print(log, markup=False, highlight=False)
    if os.environ.get(DEBUG_VARIABLE):
        traceback.print_exception(exc, file=sys.stderr)
    elif heading == "internal error":
        pass
    return code
