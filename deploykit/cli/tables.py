"""Human-readable tables for command results."""

from __future__ import annotations

from pathlib import Path

from deploykit.report.units import human_size


def _shape(spec) -> str:
    from deploykit.core.flexible import flexible_of

    flexible = flexible_of(spec)
    text = flexible.compact() if flexible else "x".join("?" if d is None else str(d) for d in spec.shape)
    dtype = "" if spec.dtype == "float32" else f" {spec.dtype}"
    return f"{spec.name} {text}{dtype}" + (f" {spec.layout}" if spec.layout else "")


def _parity(summary) -> str:
    if not summary:
        return "not checked"
    if "skipped" in summary:
        return "[yellow]not checked[/] (Select-TF ops)"
    if summary.get("status") == "inconclusive":
        verdict = "[yellow]inconclusive[/]"
    else:
        verdict = "[green]pass[/]" if summary.get("passed") else "[red]FAIL[/]"
    sizes = summary.get("sizes")
    at = f" at {sum(e['passed'] for e in sizes)}/{len(sizes)} sizes" if sizes else ""
    return f"{verdict} {summary.get('profile')}{at}"


def print_conversion(report, out_dir: Path) -> None:
    from rich.table import Table

    from deploykit.cli.output import terminal

    table = Table(title=f"{report.source['path']} ({report.source['framework']}) -> {out_dir}/", title_justify="left")
    table.add_column("artifact", no_wrap=True)
    for column in ("size", "inputs", "outputs", "ops", "time", "parity"):
        table.add_column(column)
    for artifact in report.artifacts:
        ops = sum(artifact.op_histogram.values())
        table.add_row(
            artifact.path,
            human_size(artifact.size_bytes),
            "\n".join(_shape(t) for t in artifact.inputs),
            "\n".join(_shape(t) for t in artifact.outputs),
            str(ops),
            f"{artifact.conversion_seconds:.1f} s",
            _parity(artifact.parity),
        )
    console = terminal()
    console.print(table)
    for artifact in report.artifacts:
        for change in artifact.layout_changes:
            console.print(f"[yellow]layout[/] {artifact.path}: {change}")
    for artifact in report.artifacts:
        for line in conditioning_lines(artifact.path, artifact.parity or {}):
            console.print(line)
    for artifact in report.artifacts:
        line = slower_line(artifact.path, artifact.latency or {})
        if line:
            console.print(line)
    console.print(f"record: {Path(out_dir) / 'deploykit-report.json'}")
    if (Path(out_dir) / "report.html").is_file():
        console.print(f"report: {Path(out_dir) / 'report.html'}")


def conditioning_lines(name: str, summary: dict) -> list[str]:
    """Warnings for an artifact whose check met the source's own noise: inconclusive, ill-conditioned samples,
    limits the noise widened, other inputs than the defaults."""
    from deploykit.parity.conditioning import MULTIPLE
    from deploykit.pipeline.outcome import INCONCLUSIVE_HINT

    lines = []
    if summary.get("status") == "inconclusive":
        lines.append(f"[yellow]warning[/] {name}: parity inconclusive ({INCONCLUSIVE_HINT}; --strict-parity makes it fail)")
    for output, entry in (summary.get("outputs") or {}).items():
        ill = entry.get("ill_conditioned_samples")
        if ill:
            lines.append(f"[yellow]ill-conditioned input[/] {name}: {output}: on sample(s) {', '.join(map(str, ill))} the "
                         f"source itself moves by up to {entry.get('source_noise', 0):.2g} of the output's scale under a "
                         "1e-7 input change; pass --data for a sharper check")
        if entry.get("effective_max_rel_error") is not None:
            lines.append(f"[dim]{name}: {output}: max_rel_error judged against {entry['effective_max_rel_error']:.2g}, "
                         f"{MULTIPLE:g} x the source's own noise (wider than the profile's bound)[/]")
    why = (summary.get("input_conditioning") or {}).get("why")
    if why:
        lines.append(f"[dim]{name}: parity inputs: {why}[/]")
    return lines


def slower_line(name: str, latency: dict) -> str | None:
    """The trade-off note of a variant slower than its target's fp32 artifact (pipeline.latency_notes)."""
    from rich.markup import escape

    note = latency.get("slower_than_fp32")
    if not note:
        return None
    how = "estimated" if latency.get("source") == "estimate" else "measured"
    return (f"[yellow]note[/] {name}: {note['ratio']:.2f}x slower than fp32 on this host ({how} {latency['median_ms']:.2f} "
            f"vs {note['fp32_ms']:.2f} ms): {escape(note.get('why') or 'no reason found')}")
