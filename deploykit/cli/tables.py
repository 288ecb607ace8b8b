"""Human-readable tables for command results."""

from __future__ import annotations

from pathlib import Path


def _shape(spec) -> str:
    text = "x".join(str(d) for d in spec.shape)
    return f"{spec.name} {text} {spec.dtype}" + (f" {spec.layout}" if spec.layout else "")


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def print_conversion(report, out_dir: Path) -> None:
    from rich.table import Table

    from deploykit.cli.output import terminal

    table = Table(title=f"{report.source['path']} ({report.source['framework']}) -> {out_dir}/", title_justify="left")
    table.add_column("artifact", no_wrap=True)
    for column in ("size", "inputs", "outputs", "ops", "time"):
        table.add_column(column)
    for artifact in report.artifacts:
        ops = sum(artifact.op_histogram.values())
        top = ", ".join(f"{k} {v}" for k, v in sorted(artifact.op_histogram.items(), key=lambda kv: -kv[1])[:2])
        table.add_row(
            artifact.path,
            human_size(artifact.size_bytes),
            "\n".join(_shape(t) for t in artifact.inputs),
            "\n".join(_shape(t) for t in artifact.outputs),
            f"{ops} ({top})",
            f"{artifact.conversion_seconds:.1f} s",
        )
    console = terminal()
    console.print(table)
    for artifact in report.artifacts:
        for change in artifact.layout_changes:
            console.print(f"[yellow]layout[/] {artifact.path}: {change}")
    console.print(f"record: {Path(out_dir) / 'deploykit-report.json'}")
