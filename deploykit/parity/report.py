"""Writing parity reports: JSON (``ParityReport.to_json``) and JUnit XML for CI (the terminal table is the CLI's).

JUnit layout: one ``<testsuite>`` per artifact, one ``<testcase>`` per output (classname
``deploykit.verify.<artifact file>``); a failing output carries a ``<failure>`` whose message names
the failed metrics and whose text lists every check with its value, limit and reason; an inconclusive
output (``OutputResult.status``) is ``<skipped>`` with the same text, so CI shows it without failing; a
pair that could not be compared at all is one ``<testcase>`` with an ``<error>``.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

from deploykit.core.atomic import write_text_atomic


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


def to_json(reports) -> dict:
    """``{"schema", "passed", "reports": [ParityReport.to_json(), ...]}``: the same shape for one artifact or many."""
    status = "failed" if any(r.status == "failed" for r in reports) else (
        "inconclusive" if any(r.status == "inconclusive" for r in reports) else "passed")
    return {"schema": "deploykit.verify/1", "passed": all(r.passed for r in reports), "status": status,
            "reports": [r.to_json() for r in reports]}


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
                lines = [f"{c.metric} = {fmt(c.value)} (limit {'<=' if c.bound == 'max' else '>='} {_limit(c)}): "
                         f"{'pass' if c.passed else 'FAIL'} - {c.reason}" for c in output.checks]
                if output.status == "inconclusive":
                    skipped = ET.SubElement(case, "skipped", message=f"{output.name}: inconclusive (the source's own "
                                                                       "noise on these inputs exceeds the tolerance)")
                    skipped.text = "\n".join(lines)
                elif not output.passed:
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


def _limit(check) -> str:
    if check.effective_limit is None:
        return fmt(check.limit)
    return f"{fmt(check.effective_limit)}, from the source's own noise {fmt(check.noise)}; profile {fmt(check.limit)}"


def _localization(report) -> list[str]:
    loc = report.localization
    return [] if loc is None else [f"localization ({loc.status}): {loc.message}"]
