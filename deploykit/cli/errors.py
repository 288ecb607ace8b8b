"""Render any exception as one readable message and return its exit code (``core.errors.describe`` decides both)."""

from __future__ import annotations

import os
import sys
import traceback

from deploykit.core.errors import DEBUG_VARIABLE, describe


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
    return code
