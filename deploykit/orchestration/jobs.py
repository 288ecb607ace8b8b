"""One build job, run in a worker process: ``deploykit convert`` of one (model, target, variant) into its folder.

``OUT/jobs/MODEL/TARGET/VARIANT/`` holds the artifact, a ``deploykit-report.json`` listing only it (so
``deploykit bundle`` and ``verify`` work on the folder as on any convert output), ``job.json`` (key,
status, timings) and ``log.txt`` (everything the converters printed). The folder is staged and renamed
into place: a job that fails or is interrupted never leaves half an output behind for the next run to
reuse; a failed job leaves its log and job.json, with status "failed".
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
from pathlib import Path

from deploykit.orchestration.config import BuildConfig, load_config

JOB_FILE = "job.json"
LOG_FILE = "log.txt"


def job_dir(out: Path, job_id: str) -> Path:
    return Path(out) / "jobs" / job_id


def previous(out: Path, job) -> dict | None:
    """The record of an earlier run of ``job`` whose outputs are still there and whose key is the same."""
    folder = job_dir(out, job.id)
    try:
        record = json.loads((folder / JOB_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("key") != job.key or record.get("status") not in ("ok", "parity-failed"):
        return None
    if not record.get("artifact") or not (folder / record["artifact"]).exists():
        return None
    return record


def run_job(config_path: str, job_id: str, key: str) -> dict:
    """Convert one job; returns its job.json. Runs in a worker: everything it needs is re-read from the config."""
    from deploykit.core.errors import DeployKitError, ParityError
    from deploykit.cli.errors import describe

    config = load_config(config_path)
    model_name, target, variant = job_id.split("/")
    model = next(m for m in config.models if m.name == model_name)
    final = job_dir(config.out, job_id)
    staging = final.with_name(final.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log = io.StringIO()
    started = time.perf_counter()
    status, message = "ok", None
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            _convert(config, model, target, variant, staging / "dist")
    except ParityError as exc:
        status, message = "parity-failed", exc.message
    except DeployKitError as exc:
        status, message = "failed", describe(exc)[2] + (f" (hint: {exc.hint})" if exc.hint else "")
    except Exception as exc:  # a worker must report, not die: the build goes on with the other jobs
        status, message = "failed", f"{type(exc).__name__}: {exc}"
    record = {"id": job_id, "key": key, "model": model_name, "target": target, "variant": variant, "status": status,
              "message": message, "seconds": round(time.perf_counter() - started, 1)}
    record.update(_keep_variant(staging, variant) if status != "failed" else {"artifact": None})
    if record["artifact"]:
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                record.update(_measure(config, model, target, staging / record["artifact"]))
        except DeployKitError as exc:
            record.update(status="failed", message="measuring: " + describe(exc)[2] + (f" (hint: {exc.hint})" if exc.hint else ""))
    (staging / LOG_FILE).write_text(log.getvalue(), "utf-8")
    (staging / JOB_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", "utf-8")
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    return record


def _convert(config: BuildConfig, model, target: str, variant: str, out: Path) -> None:
    from deploykit.pipeline.convert import convert

    settings = model.settings
    images = classifier = None
    if "image" in settings:
        from deploykit.image_io.spec import ImageInputOptions

        image = settings["image"]
        images = ImageInputOptions(
            names=(image["input"],), color=image.get("color", "RGB"), pixel_range=image.get("pixel_range", "0-1"),
            mean=_floats(image.get("mean")), std=_floats(image.get("std")), dtype=image.get("dtype", "uint8"),
            resize=image.get("resize", "stretch"), crop_fraction=image.get("crop_fraction", 1.0),
            interpolation=image.get("interpolation", "bilinear"), fill=image.get("letterbox_fill", 0))
    if "labels" in settings:
        from deploykit.labels.spec import ClassifierOptions

        classifier = ClassifierOptions(config.resolve(settings["labels"]["file"]), settings["labels"].get("output"))
    verify_options = {"samples": settings.get("samples", 8)}
    if "tolerances" in settings:
        from deploykit.parity.profiles import parse_tolerances

        verify_options["tolerances"] = parse_tolerances(settings["tolerances"])
    if "data" in settings:
        verify_options["data"] = str(config.resolve(settings["data"]))
    convert(_source(config, model.source), to=target, out=out, inputs=settings.get("inputs"),
            weights=config.resolve(settings["weights"]) if "weights" in settings else None,
            coreml_target=settings.get("coreml_target", "iOS16"), name=model.name,
            quantize=None if variant == "fp32" else variant,
            calibration=config.resolve(settings["calibration"]) if "calibration" in settings else None,
            verify_options=verify_options, image_inputs=images, classifier=classifier, all_or_nothing=True)


def _measure(config: BuildConfig, model, target: str, artifact: Path) -> dict:
    from deploykit.orchestration.measure import measure

    validation = model.settings.get("validation")
    return measure(artifact, target, config.resolve(validation) if validation else None)


def _floats(value):
    return tuple(value) if isinstance(value, list) else value


def _source(config: BuildConfig, source: str) -> str:
    entry = config.entry_point_file(source)
    if entry is not None:
        return f"{entry}:{source.rsplit(':', 1)[1]}"
    path = config.resolve(source)
    return str(path) if path.exists() else source  # an installed package.module:factory


def _keep_variant(staging: Path, variant: str) -> dict:
    """Only this job's artifact stays (a variant's convert also makes the fp32 one), with a record listing only it."""
    from deploykit.report import REPORT_HTML
    from deploykit.report.write import write_report
    from deploykit.core.types import REPORT_FILENAME

    dist = staging / "dist"
    report = json.loads((dist / REPORT_FILENAME).read_text("utf-8"))
    mine = [a for a in report["artifacts"] if a["variant"] == variant]
    for artifact in report["artifacts"]:
        if artifact["variant"] != variant:
            path = dist / artifact["path"]
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    report["artifacts"] = mine
    (dist / REPORT_FILENAME).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", "utf-8")
    if (dist / REPORT_HTML).exists():  # convert's page shows the fp32 artifact too: this folder's page, only its own
        write_report(dist, report)
    if not mine:
        return {"artifact": None}
    artifact = mine[0]
    return {"artifact": f"dist/{artifact['path']}", "sha256": artifact["sha256"], "size_bytes": artifact["size_bytes"],
            "parity": (artifact.get("parity") or {}).get("passed")}
