"""The whole ``convert`` job, top to bottom: load, make each (target, scheme) artifact, verify, time, inspect,
publish atomically, report (deploykit-report.json and report.html).

One failing target does not take the others down: an artifact that fails to convert is left out (each
artifact is atomic: staged, then renamed), the record's ``failures`` says what failed and why, the artifacts
that converted are written, and the first conversion failure is raised after the record is written (exit 3).
``all_or_nothing`` restores the strict mode: any failure writes nothing. When nothing converted, nothing is
written. A parity failure still writes the artifacts and the record, which says what failed, then raises
ParityError (exit 1): the user needs the artifact to investigate, and CI needs the failure.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from deploykit.converters import Workspace
from deploykit.core.atomic import move_into_place, staging_directory, write_text_atomic
from deploykit.core.errors import ConversionError, UnsupportedOperatorError, UsageError
from deploykit.core.progress import NullProgress
from deploykit.core.types import REPORT_FILENAME, ConversionReport
from deploykit.core.version import __version__
from deploykit.image_io.wrap import with_pixel_inputs
from deploykit.passes.apply import apply_source_passes
from deploykit.pipeline.app_io import with_app_io
from deploykit.pipeline.artifact import compatibility_of, describe, produce, source_analysis
from deploykit.pipeline.detector_step import plan_detector, with_detector
from deploykit.pipeline.latency_notes import with_latency_notes
from deploykit.pipeline.outcome import after_partial, failure, raise_on_parity_failure, unchecked_flex
from deploykit.pipeline.quiet import quiet
from deploykit.pipeline.request import ConvertRequest, VerifyOptions
from deploykit.pipeline.tool_versions import record_versions
from deploykit.targets import get as target_named
from deploykit.targets.base import VariantContext


def convert(request: ConvertRequest, progress=None) -> ConversionReport:
    """Convert ``request.source`` to every target and variant it asks for; returns the record written to
    ``request.out`` beside the artifacts (``deploykit-report.json``)."""
    from deploykit.loaders import load_source

    started = time.perf_counter()
    progress = progress or NullProgress()
    out_dir, verbose = Path(request.out), request.verbose
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} exists and is not a directory")
    with progress.step(f"Loading {request.source}"), quiet(verbose, "loading the model"):
        model = load_source(request.source, inputs=request.inputs, weights=request.weights, allow_h5=request.allow_h5)
    loaded = model  # as the file holds it, for the inspection: with_app_io may wrap it for pixels and labels
    targets = [target_named(name) for name in request.targets]
    for target in targets:
        target.check_source(model)
        target.check_images(request.images)
    detector = plan_detector(request, model, targets)  # labels go to the detector, not a classifier
    model = with_app_io(model, request.images, None if detector else request.classifier, request.quantize,
                        request.verify)
    stem = _safe_stem(request.name or model.name)
    calibration = _calibration(request.quantize, model) if request.quantize.needs_calibration else None
    context = VariantContext(request.passes, request.quantize, calibration)
    checks = _verify_options(request)
    artifacts, failures, errors = [], [], []
    with staging_directory(out_dir) as staging:
        workspace = Workspace(root=staging / "work", progress=progress)
        workspace.root.mkdir()
        if checks is not None:
            workspace.check = _candidate_check(model, verbose, checks.for_candidates())
            workspace.samples = _parity_samples(model, checks)
            workspace.validation = _validation_samples(model, checks, request.quantize)
        with quiet(verbose, "analysing the source graph"):
            workspace.products["analysis"] = source_analysis(model)
        for target in targets:
            for scheme in request.schemes(target.name):
                if not request.written(scheme) and not target.derives_from_fp32:
                    continue  # a variant of this target is its own export: no fp32 base to make
                try:
                    with quiet(verbose, f"running graph passes for {target.name}"):
                        prepared, source_records = apply_source_passes(model, target.name, request.passes, workspace)
                    prepared = with_pixel_inputs(prepared, model.images, target.pixel_feed)
                    step = f"Converting to {target.name} {scheme}" if scheme != "fp32" else f"Converting to {target.name}"
                    with progress.step(step if request.written(scheme) else f"{step} (the variants' base)"):
                        produced = produce(prepared, target, scheme, staging / f"{stem}.{scheme}{target.suffix}",
                                           request.convert, workspace, verbose, context)
                        if request.written(scheme):
                            artifacts.append(describe(prepared, target, scheme, produced, request.convert, workspace,
                                                      verbose, source_records))
                except (ConversionError, UnsupportedOperatorError) as exc:
                    if request.all_or_nothing:
                        raise
                    errors.append(exc)
                    failures.append(failure(target.name, scheme, exc))
                    if scheme == "fp32":
                        break  # every other scheme of this target derives from its fp32 conversion
        if not artifacts:
            if errors:
                raise errors[0]
            raise UsageError("nothing to write: every variant asked for is an intermediate")
        if detector is not None:
            with progress.step(f"Appending the {detector.options.preset} decode and NMS"), \
                    quiet(verbose, "appending the detector's post-process"):
                artifacts = [with_detector(a, target_named(a.target), staging, model, workspace, detector)
                             for a in artifacts]
        if request.strict_graph:
            _enforce_strict_graph(artifacts)
        parity_reports = []
        if checks is not None:
            artifacts, parity_reports = _verified(model, artifacts, staging, checks, progress, verbose)
        if checks is not None and checks.localize and detector is None:  # a detector's outputs are boxes now
            artifacts = [_localized(a, staging, workspace, progress) for a in artifacts]
        with progress.step("Measuring host latency"):
            artifacts = [replace(a, latency=target_named(a.target).latency(a, staging / a.path)) for a in artifacts]
            artifacts = with_latency_notes(artifacts, staging, target_named)  # variants slower than fp32, and why
        with progress.step("Checking accelerator compatibility"):
            artifacts = [replace(a, compatibility=compatibility_of(target_named(a.target), staging / a.path, workspace,
                                                                   verbose)) for a in artifacts]
        with progress.step("Inspecting the source"):
            inspection = _inspection(loaded)
        with progress.step("Writing outputs"):
            for artifact in artifacts:
                move_into_place(staging / artifact.path, out_dir / artifact.path)
            report = ConversionReport(
                source=model.to_json(),
                artifacts=tuple(artifacts),
                tool_versions=record_versions(model.framework, request.targets, artifacts),
                deploykit_version=__version__,
                total_seconds=round(time.perf_counter() - started, 3),
                failures=tuple(failures),
                inspection=inspection,
            )
            write_text_atomic(out_dir / REPORT_FILENAME, json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n")
            # Also when parity failed (raised below): the page is most useful then.
            _write_html(out_dir, report)
    if errors:
        raise after_partial(errors[0], failures, out_dir)
    raise_on_parity_failure(parity_reports, report, strict=checks is not None and checks.strict)
    return report


def _verified(model, artifacts, staging: Path, checks: VerifyOptions, progress, verbose: bool):
    """(artifacts with their parity summaries, the parity reports): every artifact a stock runtime can run,
    against the source, at its default size and at every other size a flexible input accepts."""
    from deploykit.pipeline.verify import settled_layouts, verify_artifacts
    from deploykit.pipeline.verify_sizes import check_other_sizes

    checkable = [a for a in artifacts if not a.select_tf_ops]
    reports = verify_artifacts(model, checkable, staging, checks, progress=progress, verbose=verbose)
    settled = {a.path: settled_layouts(a, r) for a, r in zip(checkable, reports)}  # outputs whose shape read both ways
    artifacts = [settled.get(a.path, a) for a in artifacts]
    checkable = [settled[a.path] for a in checkable]
    summaries = {a.path: r.to_summary() for a, r in zip(checkable, reports)}
    if checkable:
        reports, summaries = check_other_sizes(model, checkable, staging, reports, summaries, checks,
                                               progress=progress, verbose=verbose)
    return [replace(a, parity=summaries.get(a.path) or unchecked_flex(a)) for a in artifacts], reports


def _localized(artifact, staging: Path, workspace, progress):
    """``--localize`` on a compressed variant: each layer's share of its error (quantize.layerwise.localize), in the
    record's ``quantization.localized`` and the report's contributions plot."""
    reference = target_named(artifact.target).layerwise_reference(workspace)
    if artifact.variant == "fp32" or reference is None or workspace.samples is None:
        return artifact
    from deploykit.quantize.layerwise.localize import localize_variant

    with progress.step(f"Localizing the error of {artifact.path} layer by layer"):
        feeds, _ = workspace.samples(reference, artifact.target)
        found = localize_variant(artifact.target, Path(reference), staging / artifact.path, feeds)
    return replace(artifact, quantization={**artifact.quantization, "localized": found})


def _verify_options(request: ConvertRequest) -> VerifyOptions | None:
    """The parity options this job checks with. int8 is calibrated for the calibration data's range, and seeded
    noise would be out of it: without ``--data`` the calibration data is what parity runs on."""
    checks = request.verify
    if checks is not None and request.quantize.calibration and not checks.data:
        checks = replace(checks, data=request.quantize.calibration)
    return checks


def _candidate_check(model, verbose: bool, checks: VerifyOptions):
    """The parity check a conversion ladder runs on each candidate (not yet in any record)."""
    from deploykit.pipeline.verify import check_candidate

    def check(path, target, variant="fp32"):
        return check_candidate(model, Path(path), target, variant, checks, verbose=verbose)

    return check


def _parity_samples(model, checks: VerifyOptions):
    from deploykit.pipeline.verify import artifact_samples

    def samples(path, target, prefer=()):
        return artifact_samples(model, Path(path), target, checks, prefer=prefer)

    return samples


def _validation_samples(model, checks: VerifyOptions, quantize):
    """What ``--quantize auto`` judges its budget on: ``--validation``, else the calibration data, else the parity
    inputs; every sample of a file (not the parity check's 8), in the artifact's layout, with its outputs there."""
    from deploykit.pipeline.verify import artifact_samples
    from deploykit.quantize.layerwise.layers import open_layers
    from deploykit.quantize.layerwise.metric import Validation, read_labels

    data = (quantize.auto.validation if quantize.auto else None) or quantize.calibration or checks.data
    options = replace(checks, data=data, samples=0) if data else checks

    def validation(path, target, outputs_of=None):
        feeds, _ = artifact_samples(model, Path(path), target, options)
        reference = open_layers(target, Path(outputs_of or path)).run({}, feeds)
        return Validation(tuple(feeds), tuple(reference), read_labels(data) if data else None,
                          source=str(data) if data else f"{len(feeds)} seeded parity inputs")

    return validation


def _inspection(loaded) -> dict:
    from deploykit.report.source import inspect_source

    return inspect_source(loaded)


def _write_html(out_dir: Path, report: ConversionReport) -> None:
    from deploykit.report.write import write_report

    write_report(out_dir, report.to_json())


def _enforce_strict_graph(artifacts) -> None:
    problems = []
    for artifact in artifacts:
        check = artifact.passes[-1]
        for item in check["unfolded_batchnorms"]:
            problems.append(f"{artifact.path}: unfolded batchnorm: {item}")
        for item in check["unfused_activations"]:
            problems.append(f"{artifact.path}: unfused activation: {item}")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ConversionError(f"--strict-graph: {len(problems)} problem(s): {shown}",
                              hint="run with --passes auto (the default) or name the passes with --passes; "
                                   "`deploykit passes` lists them")


def _calibration(qopts, model):
    from deploykit.quantize.calibration import load_calibration

    return load_calibration(qopts.calibration, model.inputs, qopts.calibration_samples)


def _safe_stem(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-.")
    return cleaned or "model"
