"""Writing ``report.html``: beside ``deploykit-report.json`` (convert) or ``deploykit-build.json`` (build).

The page is written to a temporary name and renamed into place (``core.atomic``), so a reader never sees
half a page, and an interrupted run leaves the previous page whole.
"""

from __future__ import annotations

import json
from pathlib import Path

from deploykit.report import REPORT_HTML


def write_report(out_dir: str | Path, record: dict, *, inspection: dict | None = None,
                 measurements: dict | None = None) -> Path:
    """Render ``record`` (a ``deploykit-report.json`` dict) to ``out_dir/report.html``. ``inspection``
    defaults to the record's own."""
    from deploykit.core.atomic import write_text_atomic
    from deploykit.report.html import render_report

    path = Path(out_dir) / REPORT_HTML
    page = render_report(record, inspection=inspection if inspection is not None else record.get("inspection"),
                         measurements=measurements)
    write_text_atomic(path, page)
    return path


def write_build_report(out: str | Path, build: dict, job_folder) -> Path:
    """Render a build record to ``out/report.html``: per model, the artifacts of all its jobs (each from the
    ``deploykit-report.json`` in its job folder, ``job_folder(out, job_id)``) with the accuracy and latency the
    build measured."""
    from deploykit.core.atomic import write_text_atomic
    from deploykit.report.html import render_build_report

    out = Path(out)
    models: dict[str, list] = {}
    for job in build.get("jobs", []):
        models.setdefault(job["model"], []).append(job)
    pages = [_model_page(out, jobs, job_folder) for jobs in models.values()]
    path = out / REPORT_HTML
    write_text_atomic(path, render_build_report(build, [p for p in pages if p is not None]))
    return path


def _model_page(out: Path, jobs: list[dict], job_dir):
    """(combined record, inspection, measurements) of one model's jobs; artifact paths relative to ``out``."""
    from deploykit.core.types import REPORT_FILENAME

    combined, artifacts, failures, measurements = None, [], [], {}
    for job in jobs:
        folder = job_dir(out, job["id"])
        if job.get("status") == "failed" or not job.get("artifact"):
            failures.append({"target": job["target"], "variant": job["variant"], "error": "job failed",
                             "message": job.get("message") or ""})
            continue
        try:
            record = json.loads((folder / "dist" / REPORT_FILENAME).read_text("utf-8"))
        except (OSError, ValueError):
            failures.append({"target": job["target"], "variant": job["variant"], "error": "no record",
                             "message": f"{folder / 'dist' / REPORT_FILENAME} is missing or unreadable"})
            continue
        combined = combined or record
        for artifact in record.get("artifacts", []):
            if artifact["variant"] != job["variant"]:
                continue
            relative = (folder / "dist" / artifact["path"]).relative_to(out).as_posix()
            artifacts.append({**artifact, "path": relative})
            measurements[relative] = {"latency": _latency(artifact, job, out / relative),
                                      "accuracy": job.get("accuracy")}
    if combined is None and not failures:
        return None
    combined = dict(combined or {"source": {"name": jobs[0]["model"]}})
    combined.update(artifacts=artifacts, failures=failures,
                    total_seconds=round(sum(float(j.get("seconds") or 0) for j in jobs), 1))
    return combined, combined.get("inspection"), measurements


def _latency(artifact: dict, job: dict, path: Path) -> dict | None:
    """The build's own measurement when the target's runtime made it (more runs than convert's: LiteRT for
    TFLite), else the record's figure; a Core ML job never shows the numpy evaluator's time the build records
    for its latency gate, which says how fast numpy is, not Core ML. A record from before records carried
    latency gets the target's figure now."""
    from deploykit.targets import get

    target = get(artifact["target"])
    measured = job.get("latency")
    if target.build_latency_runner is not None:
        if measured and measured.get("runner") == target.build_latency_runner:
            return {"source": target.build_latency_runner, "median_ms": measured["median_ms"], "runs": measured.get("runs")}
        return artifact.get("latency")
    if artifact.get("latency"):
        return artifact["latency"]
    from deploykit.core.types import Artifact

    return target.latency(Artifact.from_json(artifact), path)
