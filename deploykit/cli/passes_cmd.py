"""``deploykit passes``: list the registered graph passes, where ``auto`` runs them, and what each does."""

from __future__ import annotations

from typing import Annotated

import typer

from deploykit.cli.options import JsonOutput

HELP = """List the graph passes --passes can name, the stage each works on, the conversion paths where --passes auto runs it (because the converter leaves the pattern there), and its Given/Result pattern. With --all, also the exact rewrites converters apply themselves (the ONNX -> TFLite ladder's remedies, ExecuTorch's fp16 export): records name them, --passes does not select them.

  deploykit passes

  deploykit passes --all

  deploykit passes --doc fold_batchnorm
"""


def register(app: typer.Typer) -> None:
    app.command("passes", help=HELP)(passes)


def passes(
    doc: Annotated[str, typer.Option("--doc", metavar="NAME", help="Print one pass's full description.")] = "",
    every: Annotated[bool, typer.Option("--all", help="Also list the rewrites converters apply themselves.")] = False,
    json_output: JsonOutput = False,
) -> None:
    from rich.console import Console

    from deploykit.cli.output import stdout_json
    from deploykit.core.errors import UsageError
    from deploykit.passes import all_passes

    entries = all_passes(selectable_only=not (every or doc))
    console = Console(highlight=False)  # stdout: this is the command's output, not progress
    if doc:
        chosen = [p for p in entries if p.name == doc]
        if not chosen:
            raise UsageError(f"unknown pass {doc!r}", hint=f"passes: {', '.join(sorted({p.name for p in entries}))}")
        for entry in chosen:
            console.print(f"[bold]{entry.name}[/] ({entry.stage})\n", markup=True)
            console.print(entry.doc + "\n", markup=False)
        return
    rows = [{"name": p.name, "stage": p.stage, "auto": _auto(p), "summary": p.summary} for p in entries]
    if json_output:
        stdout_json(rows)
        return
    from rich.table import Table

    table = Table(title="graph passes (--passes auto | none | NAME,...)", title_justify="left")
    for column in ("name", "stage", "auto runs it on", "what it does"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["stage"], row["auto"], row["summary"])
    console.print(table)


def _auto(entry) -> str:
    from deploykit.passes.registry import SELECTABLE

    if entry.stage not in SELECTABLE:
        return "run by its converter"
    paths = sorted(f"{'any' if f == '*' else f}->{t}" for f, t in entry.needed_for)
    return ", ".join(paths) or "only when named"
