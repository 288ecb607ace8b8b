"""One build job, run in a worker process: ``deploykit convert`` of exactly one (model, target, variant).

The parent turns the config into one ``JobSpec`` per job (a ``ConvertRequest`` and what to measure) and
hands it to the worker, which reads nothing else. A variant's request asks for that variant alone: the fp32
artifact it derives from is made in the job's scratch space and never written (``write_fp32``), so nothing
is converted only to be deleted and the record is written once, listing only this job's artifact.

``OUT/jobs/MODEL/TARGET/VARIANT/`` holds ``dist/`` (the artifact, its ``deploykit-report.json`` and
``report.html``, so ``deploykit bundle`` and ``verify`` work on the folder as on any convert output),
``job.json`` (key, status, timings) and ``log.txt`` (everything the converters printed). The folder is
staged and renamed into place: a job that fails or is interrupted never leaves half an output behind for
the next run to reuse; a failed job leaves its log and job.json, with status "failed".
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from deploykit.orchestration.settings import BuildConfig

JOB_FILE = "job.json"
LOG_FILE = "log.txt"


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs for one job."""

    id: str  # MODEL/TARGET/VARIANT
    key: str  # the content key (orchestration.plan): same key, same outputs
    request: object  # pipeline.request.ConvertRequest (its ``out`` is set by the worker: the staged folder), or None
    folder: Path  # the job's final folder
    validation: Path | None = None  # labelled data for the top-1 accuracy
    refused: str | None = None  # why no request could be made of the settings (the job fails with this message)

    @property
    def model(self) -> str:
        return self.id.split("/")[0]

    @property
    def target(self) -> str:
        return self.id.split("/")[1]

    @property
    def variant(self) -> str:
        return self.id.split("/")[2]


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


def spec_for(config: BuildConfig, job) -> JobSpec:
    """The worker's whole brief for ``job`` (a ``plan.Job``), read from the config once, in the parent."""
    from deploykit.core.errors import DeployKitError, describe

    model = next(m for m in config.models if m.name == job.model)
    folder, measured = job_dir(config.out, job.id), config.resolve(model.validation) if model.validation else None
    try:
        return JobSpec(job.id, job.key, _request(config, model, job.target, job.variant), folder, measured)
    except DeployKitError as exc:  # the other jobs still run; this one reports why it could not
        return JobSpec(job.id, job.key, None, folder, measured,
                       refused=describe(exc)[2] + (f" (hint: {exc.hint})" if exc.hint else ""))


def run_job(spec: JobSpec) -> dict:
    """Convert and measure one job; returns its job.json."""
    from deploykit.core.errors import DeployKitError, ParityError, UsageError, describe
    from deploykit.pipeline.convert import convert

    final = Path(spec.folder)
    staging = final.with_name(final.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log = io.StringIO()
    started = time.perf_counter()
    status, message, report = "ok", None, None
    try:
        if spec.refused is not None:
            raise UsageError(spec.refused)
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            report = convert(replace(spec.request, out=staging / "dist"))
    except ParityError as exc:
        status, message, report = "parity-failed", exc.message, exc.record
    except DeployKitError as exc:
        status, message = "failed", describe(exc)[2] + (f" (hint: {exc.hint})" if exc.hint else "")
    except Exception as exc:  # a worker must report, not die: the build goes on with the other jobs
        status, message = "failed", f"{type(exc).__name__}: {exc}"
    record = {"id": spec.id, "key": spec.key, "model": spec.model, "target": spec.target, "variant": spec.variant,
              "status": status, "message": message, "seconds": round(time.perf_counter() - started, 1)}
    record.update(_artifact(report) if status != "failed" else {"artifact": None})
    if record["artifact"]:
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                record.update(_measure(spec, staging / record["artifact"]))
        except DeployKitError as exc:
            record.update(status="failed", message="measuring: " + describe(exc)[2] + (f" (hint: {exc.hint})" if exc.hint else ""))
    (staging / LOG_FILE).write_text(log.getvalue(), "utf-8")
    (staging / JOB_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", "utf-8")
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    return record


def _request(config: BuildConfig, model, target: str, variant: str):
    """The ``ConvertRequest`` of one job: the model's settings, this target, this variant alone."""
    from deploykit.pipeline.request import VerifyOptions, request

    images = classifier = tolerances = None
    if model.image is not None:
        from deploykit.image_io.spec import ImageInputOptions

        image = model.image
        images = ImageInputOptions(
            names=(image.input,), color=image.color, pixel_range=image.pixel_range, mean=image.mean, std=image.std,
            dtype=image.dtype, resize=image.resize, crop_fraction=image.crop_fraction,
            interpolation=image.interpolation, fill=image.letterbox_fill)
    if model.labels_file is not None:
        from deploykit.labels.spec import ClassifierOptions

        classifier = ClassifierOptions(config.resolve(model.labels_file), model.labels_output)
    if model.tolerances:
        from deploykit.parity.profiles import parse_tolerances

        tolerances = parse_tolerances(list(model.tolerances))
    detector = None
    if model.detector:
        from deploykit.detection.options import DetectorOptions

        given = dict(model.detector)
        detector = DetectorOptions(given.pop("preset"), normalized=given.pop("normalized_boxes", False), **given)
    checks = VerifyOptions(samples=model.samples, tolerances=tolerances,
                           data=str(config.resolve(model.data)) if model.data else None)
    return request(_source(config, model.source), to=target, inputs=list(model.inputs) if model.inputs else None,
                   weights=config.resolve(model.weights) if model.weights else None,
                   coreml_target=model.coreml_target, name=model.name,
                   quantize=None if variant == "fp32" else variant,
                   calibration=config.resolve(model.calibration) if model.calibration else None,
                   verify_options=checks, image_inputs=images, classifier=classifier, all_or_nothing=True,
                   write_fp32=variant == "fp32", detector=detector)


def _measure(spec: JobSpec, artifact: Path) -> dict:
    from deploykit.orchestration.measure import measure

    return measure(artifact, spec.target, spec.validation)


def _source(config: BuildConfig, source: str) -> str:
    entry = config.entry_point_file(source)
    if entry is not None:
        return f"{entry}:{source.rsplit(':', 1)[1]}"
    path = config.resolve(source)
    return str(path) if path.exists() else source  # an installed package.module:factory


def _artifact(report) -> dict:
    """What job.json says of the job's one artifact, from the record convert returned (or its ParityError carried)."""
    if report is None or not report.artifacts:
        return {"artifact": None}
    artifact = report.artifacts[0]
    summary = artifact.parity or {}
    parity = summary.get("passed")
    found = {"artifact": f"dist/{artifact.path}", "sha256": artifact.sha256, "size_bytes": artifact.size_bytes,
             "parity": parity}
    if summary.get("status") == "inconclusive":  # the parity gate neither passes nor fails it (gates.py)
        found["parity_status"] = "inconclusive"
    if getattr(artifact, "compatibility", None) is not None:  # what require_accelerators gates on (gates.py)
        found["compatibility"] = artifact.compatibility
    return found
