"""The parity report on the terminal: one row per output, failing metrics in red, then inputs, notes and localization."""

from __future__ import annotations

from deploykit.parity.conditioning import CHAOTIC, MULTIPLE
from deploykit.parity.report import fmt

# Columns of the terminal table (one metric, or two joined by "/"); every metric is in the JSON report.
COLUMNS = (("max abs", ("max_abs_error",)), ("max rel", ("max_rel_error",)), ("mean abs", ("mean_abs_error",)),
           ("cosine", ("cosine_similarity",)), ("SNR dB", ("snr_db",)), ("top-1/5", ("top1_agreement", "top5_agreement")))
VERDICTS = {"passed": "[green]pass[/]", "failed": "[red]FAIL[/]", "inconclusive": "[yellow]inconclusive[/]"}


def table(report):
    """A rich Table: one row per output; metrics that fail their threshold in red."""
    from rich import box
    from rich.table import Table

    verdict = {"passed": "[green]PASS[/]", "failed": "[bold red]FAIL[/]",
               "inconclusive": "[bold yellow]INCONCLUSIVE[/]"}[report.status]
    title = f"{verdict} {report.artifact} · profile {report.profile}"
    grid = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    grid.add_column("output", overflow="fold")
    for heading, _ in COLUMNS:
        grid.add_column(heading, justify="right", no_wrap=True)
    grid.add_column("verdict")
    for output in report.outputs:
        failed = {c.metric for c in output.failed_checks}
        cells = []
        for _, metrics in COLUMNS:
            parts = [fmt(output.metrics.get(m)) for m in metrics]
            text = "/".join(f"[red]{p}[/]" if m in failed else p for m, p in zip(metrics, parts))
            cells.append("-" if all(p == "-" for p in parts) else text)
        grid.add_row(output.name, *cells, VERDICTS[output.status])
    return grid


def print_report(report, console=None, verbose: bool = False) -> None:
    """The table, then the inputs, runners, notes and localization, on ``console`` (stderr by default)."""
    from deploykit.cli.output import terminal

    console = console or terminal()
    console.print(table(report))
    if report.problem:
        console.print(f"[red]problem:[/] {report.problem}")
    origin = report.inputs
    if origin:
        kind = origin.get("kind")
        if kind == "random":
            what = f"{origin.get('samples')} seeded random sample(s), seed {origin.get('seed')}"
        elif kind == "generated images":
            what = f"{origin.get('samples')} generated test image(s), seed {origin.get('seed')}, fed as pixels"
        else:
            what = f"{origin.get('samples')} sample(s) from {origin.get('path')}" + (
                ", fed as pixels" if origin.get("image_inputs") else "")
        console.print(f"inputs: {what}; runners: {report.runners['source']} vs {report.runners['artifact']}")
    console.print(f"profile {report.profile}: {report.profile_origin}")
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]")
    for output in report.outputs:  # a detector's box-level comparison (parity.detections)
        if output.per_sample:
            m = output.metrics
            console.print(f"{output.name}: {m['matched']:g} box(es) matched, {m['missing']:g} missing, {m['extra']:g} "
                          f"extra, {m['excused']:g} excused over {len(output.per_sample)} picture(s); least IoU "
                          f"{m['min_iou']:.6f}, worst score error {fmt(m['worst_score_error'])}, worst corner error "
                          f"{fmt(m['worst_coordinate_error_px'])} px")
            for sample in output.per_sample if verbose or not output.passed else ():
                for why in sample.get("excused", []) + sample.get("failures", []):
                    console.print(f"[dim]  picture {sample['sample']}: {why}[/]")
    bounded = [o for o in report.outputs if o.value_range]
    if bounded:
        names = ", ".join(f"{o.name} [{o.value_range[0]:g}, {o.value_range[1]:g}]" for o in bounded)
        console.print(f"[dim]errors scaled by the range the source bounds them to: {names}[/]")
    if verbose or not report.passed:
        for output in report.outputs:
            if output.problem:
                console.print(f"[red]✗[/] {output.name}: {output.problem}")
            for check in output.failed_checks:
                limit = fmt(check.limit) if check.effective_limit is None else (
                    f"{fmt(check.effective_limit)} (the source's own noise; profile {fmt(check.limit)})")
                mark = "[yellow]?[/]" if check.inconclusive else "[red]✗[/]"
                console.print(f"{mark} {output.name}: {check.metric} = {fmt(check.value)}, limit "
                              f"{'<=' if check.bound == 'max' else '>='} {limit} [dim]({check.reason})[/]")
    for output in report.outputs:
        if verbose and "source_noise" in output.metrics:
            console.print(f"[dim]{output.name}: the source's own noise on these inputs (1e-7 input change): "
                          f"{fmt(output.metrics['source_noise'])} of the output's scale[/]")
        if output.ill_conditioned:
            seeded = (report.inputs or {}).get("kind") in ("random", "generated images")
            console.print(f"[yellow]ill-conditioned input[/] {output.name}: on sample(s) "
                          f"{', '.join(map(str, output.ill_conditioned))} the source itself moves by up to "
                          f"{fmt(output.metrics.get('source_noise'))} of the output's scale under a 1e-7 input change; "
                          + ("pass --data for a sharper check" if seeded else
                             f"those samples are judged against {MULTIPLE:g} x that noise, and where it exceeds "
                             f"{CHAOTIC:g} they give no verdict"))
    conditioning = (report.inputs or {}).get("conditioning") or {}
    if conditioning.get("why"):
        console.print(f"[dim]inputs: {conditioning['why']}[/]")
    for name, why in ((report.inputs or {}).get("domains") or {}).items():
        console.print(f"[dim]inputs: {name} drawn from {report.inputs['distribution'].get(name)}: {why}[/]")
    loc = report.localization
    if loc is not None:
        colour = "yellow" if loc.status == "found" else "dim"
        console.print(f"[{colour}]localization ({loc.status}):[/] {loc.message}")
        if loc.culprit:
            c = loc.culprit
            metrics = ", ".join(f"{k} {fmt(v)}" for k, v in c["metrics"].items())
            console.print(f"  culprit: {c['source']}, shape {c['shape']}; against the closest artifact tensor "
                          f"{c['closest_artifact_tensor']!r} ({c['closest_artifact_op']}): {metrics}")
