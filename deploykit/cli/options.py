"""Option definitions shared by several commands."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show upstream converter logs (TensorFlow, coremltools, onnx2tf).")]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print the machine-readable record to stdout instead of tables.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
InputShapes = Annotated[
    Optional[list[str]],
    typer.Option("--input", "-i", metavar="[NAME=]1x3x224x224",
                  help="Fix an input's shape (repeat per input; the name may be left out for a single input). "
                       "A dynamic batch dimension defaults to 1."),
]


def parse_floats(text: str | None, flag: str):
    from deploykit.errors import UsageError

    if text is None:
        return None
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise UsageError(f"{flag} takes numbers separated by commas, got {text!r}") from None
    if not values:
        raise UsageError(f"{flag} is empty")
    return values[0] if len(values) == 1 else values
