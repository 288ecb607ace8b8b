"""Writing parity reports: a rich table for the terminal, JSON (``ParityReport.to_json``), JUnit XML for CI.

JUnit layout: one ``<testsuite>`` per artifact, one ``<testcase>`` per output (classname
``deploykit.verify.<artifact file>``); a failing output carries a ``<failure>`` whose message names
the failed metrics and whose text lists every check with its value, limit and reason; a pair that
could not be compared at all is one ``<testcase>`` with an ``<error>``.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

from deploykit.core.atomic import write_text_atomic

# Columns of the terminal table (one metric, or two joined by "/"); every metric is in the JSON report.
COLUMNS = (("max abs", ("max_abs_error",)), ("max rel", ("max_rel_error",)), ("mean abs", ("mean_abs_error",)),
           ("cosine", ("cosine_similarity",)), ("SNR dB", ("snr_db",)), ("top-1/5", ("top1_agreement", "top5_agreement")))


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, float):
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.6g}" if 0.999 < abs(value) < 1 else f"{value:.4g}"
        return f"{value:.2e}"
    return str(value)


def table(report):
    """A rich Table: one row per output; metrics that fail their threshold in red."""
    from rich import box
    from rich.table import Table

    verdict = "[green]PASS[/]" if report.passed else "[bold red]FAIL[/]"
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
        grid.add_row(output.name, *cells, "[green]pass[/]" if output.passed else "[red]FAIL[/]")
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
    bounded = [o for o in report.outputs if o.value_range]
    if bounded:
        names = ", ".join(f"{o.name} [{o.value_range[0]:g}, {o.value_range[1]:g}]" for o in bounded)
        console.print(f"[dim]errors scaled by the range the source bounds them to: {names}[/]")
    if verbose or not report.passed:
        for output in report.outputs:
            if output.problem:
                console.print(f"[red]✗[/] {output.name}: {output.problem}")
            for check in output.failed_checks:
                console.print(f"[red]✗[/] {output.name}: {check.metric} = {fmt(check.value)}, limit "
                              f"{'<=' if check.bound == 'max' else '>='} {fmt(check.limit)} [dim]({check.reason})[/]")
    loc = report.localization
    if loc is not None:
        colour = "yellow" if loc.status == "found" else "dim"
        console.print(f"[{colour}]localization ({loc.status}):[/] {loc.message}")
        if loc.culprit:
            c = loc.culprit
            metrics = ", ".join(f"{k} {fmt(v)}" for k, v in c["metrics"].items())
            console.print(f"  culprit: {c['source']}, shape {c['shape']}; against the closest artifact tensor "
                          f"{c['closest_artifact_tensor']!r} ({c['closest_artifact_op']}): {metrics}")


def to_json(reports) -> dict:
    """``{"schema", "passed", "reports": [ParityReport.to_json(), ...]}``: the same shape for one artifact or many."""
    return {"schema": "deploykit.verify/1", "passed": all(r.passed for r in reports), "reports": [r.to_json() for r in reports]}


def write_json(reports, path) -> None:
    write_text_atomic(Path(path), json.dumps(to_json(reports), indent=2, sort_keys=True, allow_nan=False) + "\n")


def junit_xml(reports) -> str:
    suites = ET.Element("testsuites", name="deploykit verify")
    total = failed = errors = 0
    for report in reports:
        artifact = Path(report.artifact).name
        suite = ET.SubElement(suites, "testsuite", name=f"verify {artifact}", time=f"{report.seconds:.3f}")
        props = ET.SubElement(suite, "properties")
        for key, value in (("source", report.source), ("artifact", report.artifact), ("target", report.target),
                           ("profile", report.profile), ("profile_origin", report.profile_origin),
                           ("source_runner", report.runners.get("source", "")),
                           ("artifact_runner", report.runners.get("artifact", ""))):
            ET.SubElement(props, "property", name=key, value=str(value))
        cases = 0
        if report.problem or not report.outputs:
            case = ET.SubElement(suite, "testcase", name="signature", classname=f"deploykit.verify.{artifact}")
            ET.SubElement(case, "error", message=report.problem or "no outputs compared", type="ParityError")
            cases, suite_errors, suite_failed = 1, 1, 0
        else:
            suite_errors, suite_failed = 0, 0
            for output in report.outputs:
                cases += 1
                case = ET.SubElement(suite, "testcase", name=output.name, classname=f"deploykit.verify.{artifact}")
                lines = [f"{c.metric} = {fmt(c.value)} (limit {'<=' if c.bound == 'max' else '>='} {fmt(c.limit)}): "
                         f"{'pass' if c.passed else 'FAIL'} - {c.reason}" for c in output.checks]
                if not output.passed:
                    suite_failed += 1
                    names = ", ".join(c.metric for c in output.failed_checks) or output.problem or "failed"
                    failure = ET.SubElement(case, "failure", message=f"{output.name}: {names}", type="ParityError")
                    failure.text = "\n".join(([output.problem] if output.problem else []) + lines + _localization(report))
                else:
                    ET.SubElement(case, "system-out").text = "\n".join(lines)
        suite.set("tests", str(cases))
        suite.set("failures", str(suite_failed))
        suite.set("errors", str(suite_errors))
        total, failed, errors = total + cases, failed + suite_failed, errors + suite_errors
    suites.set("tests", str(total))
    suites.set("failures", str(failed))
    suites.set("errors", str(errors))
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(reports, path) -> None:
    write_text_atomic(Path(path), junit_xml(reports))


def _localization(report) -> list[str]:
    loc = report.localization
    return [] if loc is None else [f"localization ({loc.status}): {loc.message}"]
