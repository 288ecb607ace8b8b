"""Terminal output shared by commands: a console that survives upstream fd capture, progress, JSON mode."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Any

_TERMINAL = None


def terminal():
    """A rich Console on a duplicate of the original stderr, so progress still shows while fds 1/2 are captured."""
    global _TERMINAL
    if _TERMINAL is None:
        from rich.console import Console

        stream = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
        _TERMINAL = Console(file=stream, highlight=False, force_terminal=None)
    return _TERMINAL


def stdout_json(data: Any) -> None:
    """Write JSON to the real stdout (also when stdout is a pipe)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    sys.stdout.flush()


def emit(data: dict, json_output: bool, lines: list[str]) -> None:
    """A command's result: ``data`` as JSON on stdout with --json, else ``lines`` for a reader."""
    if json_output:
        stdout_json(data)
    else:
        import typer

        for line in lines:
            typer.echo(line)


class StepProgress:
    """One line per step: a spinner while it runs, then a check mark and its duration."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet

    @contextlib.contextmanager
    def step(self, description: str):
        if self.quiet:
            yield
            return
        console = terminal()
        started = time.perf_counter()
        status = console.status(f"{description} ...", spinner="dots") if console.is_terminal else contextlib.nullcontext()
        try:
            with status:
                yield
        except BaseException:
            console.print(f"[red]✗[/] {description}")
            raise
        console.print(f"[green]✓[/] {description} [dim]({time.perf_counter() - started:.1f} s)[/]")
