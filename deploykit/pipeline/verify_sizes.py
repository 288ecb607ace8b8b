"""Parity at every size a flexible input accepts (``deploykit.core.flexible``), after the default size's check.

``convert`` first checks each artifact at the default shape (the one the conversion ladder and the
quantizers are checked at), then here at every other enumerated size, or a range's middle and high
end. Each size is a full parity run, with the same profile and sample count. Inputs other than
seeded noise follow when they can: an image folder is resized to each size; an ``.npy`` / ``.npz``
file holds one size only, so the other sizes run on seeded inputs (the record's ``inputs`` says so).

The artifact's parity summary gains ``sizes``, one entry per size checked (the default first), and
passes only if every size passes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from deploykit.core.flexible import has_flexible, sizes_to_check


def check_other_sizes(model, artifacts, artifact_dir, reports: list, summaries: dict, checks, *, progress=None,
                      verbose: bool = False):
    """(every parity report, summaries with their ``sizes``) for a model with flexible inputs; unchanged otherwise.
    ``checks`` is the job's ``VerifyOptions``."""
    if not has_flexible(model.inputs):
        return reports, summaries
    from deploykit.pipeline.verify import verify_artifacts

    runs = sizes_to_check(model.inputs)
    checks = _options_for_other_sizes(checks)
    reports = list(reports)
    sized = {a.path: [_entry(model.inputs, [tuple(s.shape) for s in model.inputs], r)]
             for a, r in zip(artifacts, reports)}
    for shapes in runs:
        resized = replace(model, inputs=tuple(replace(s, shape=tuple(shape)) for s, shape in zip(model.inputs, shapes)))
        for artifact, report in zip(artifacts, verify_artifacts(resized, artifacts, artifact_dir, checks, progress=progress,
                                                                       verbose=verbose)):
            report = replace(report, inputs={**report.inputs, "shapes": _shapes(model.inputs, shapes)})
            reports.append(report)
            sized[artifact.path].append(_entry(model.inputs, shapes, report))
    merged = {}
    for path, summary in summaries.items():
        entries = sized.get(path, [])
        merged[path] = {**summary, "passed": bool(summary.get("passed")) and all(e["passed"] for e in entries),
                        "sizes": entries}
    return reports, merged


def at_size(report) -> str:
    """`` at 1x3x48x48`` for a report of a size other than the default, else ''."""
    shapes = (report.inputs or {}).get("shapes")
    if not shapes:
        return ""
    return " at " + ", ".join(f"{name}={'x'.join(map(str, shape))}" for name, shape in shapes.items())


def _options_for_other_sizes(checks):
    """An image folder is resized to each size; an ``.npy`` / ``.npz`` file holds one size: seeded inputs then."""
    if checks.data is not None and not Path(checks.data).is_dir():
        return replace(checks, data=None, mean=None, std=None, data_layout=None)
    return checks


def _shapes(inputs, shapes) -> dict:
    return {spec.name: list(shape) for spec, shape in zip(inputs, shapes) if spec.flexible}


def _entry(inputs, shapes, report) -> dict:
    summary = report.to_summary()
    entry = {"shapes": _shapes(inputs, shapes), "passed": report.passed, "inputs": summary.get("inputs"),
             "outputs": {name: {k: v for k, v in metrics.items() if k != "value_range"}
                         for name, metrics in summary.get("outputs", {}).items()}}
    if report.problem:
        entry["problem"] = report.problem
    return entry
