"""The whole ``convert`` job, top to bottom: load, convert per target, verify, time, inspect, publish atomically,
report (deploykit-report.json and report.html)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from deploykit import __version__
from deploykit.converters import (SUFFIX, ConvertOptions, Workspace, check_coreml_target, check_executorch_backend,
                                  check_executorch_source, parse_targets)
from deploykit.passes.apply import apply_source_passes
from deploykit.quantize.variants import VariantContext
from deploykit.quantize.variants import make as make_variant
from deploykit.core.errors import ConversionError, DeployKitError, UnsupportedOperatorError
from deploykit.core.atomic import move_into_place, staging_directory, write_text_atomic
from deploykit.core.hashing import sha256_path, size_path
from deploykit.image_io.declare import declared_images
from deploykit.core.flexible import carry as carry_flexible
from deploykit.core.flexible import has_flexible
from deploykit.labels.attach import annotate_outputs, attach_labels
from deploykit.pipeline.app_io import with_app_io
from deploykit.image_io.wrap import for_target as pixel_model
from deploykit.core.layouts import annotate
from deploykit.core.noise import capture_output
from deploykit.core.progress import NullProgress
from deploykit.pipeline.tool_versions import tool_versions
from deploykit.core.types import REPORT_FILENAME, Artifact, ConversionReport, SourceModel


def convert(
    source: str | Path,
    *,
    to: str | tuple[str, ...] = ("tflite", "coreml"),
    out: str | Path = "dist",
    inputs=None,
    weights: str | Path | None = None,
    allow_h5: bool = False,
    coreml_target: str = "iOS16",
    name: str | None = None,
    verbose: bool = False,
    progress=None,
    quantize=None,
    calibration: str | Path | None = None,
    calibration_samples: int | None = None,
    int8_io: bool = False,
    keep_float=None,
    per_tensor: bool = False,
    lut_group_size: int | None = None,
    lut_budget: float | None = None,
    passes: str | None = None,
    strict_graph: bool = False,
    verify: bool = True,
    verify_options: dict | None = None,
    allow_flex: bool = False,
    all_or_nothing: bool = False,
    image_inputs=None,
    classifier=None,
    executorch_backend: str = "xnnpack",
) -> ConversionReport:
    """Convert ``source`` to every target in ``to`` and write the artifacts and ``deploykit-report.json`` to ``out``.

    ``quantize`` ("fp16,int8-weights" or "coreml=lut4,tflite=int8") adds one artifact per (target,
    scheme) next to the fp32 one; ``passes`` is "auto" (default), "none" or pass names;
    ``strict_graph`` fails when an artifact keeps a foldable batch norm or an unfused activation.
    Returns the same record as the JSON file.

    One failing target does not take the others down: an artifact that fails to convert is left out
    (each artifact is atomic: staged, then renamed), the record's ``failures`` says what failed and why,
    the artifacts that converted are written, and the first conversion failure is raised after the
    record is written (exit 3). ``all_or_nothing`` restores the strict mode: any failure writes nothing.
    When nothing converted, nothing is written. ``allow_flex`` keeps TFLite artifacts that need
    Select-TF (Flex) ops, which stock LiteRT cannot run (refused by default).

    ``image_inputs`` (``image_io.ImageInputOptions``) makes the named inputs take pixels, with the
    preprocessing inside the artifacts (``deploykit.image_io``); parity then runs on images.
    ``classifier`` (``labels.ClassifierOptions``) gives an output labels: a Core ML classifier, TFLite
    label metadata (``deploykit.labels``).

    ``verify`` (default on) runs the source and every artifact on the same inputs and compares them
    (``deploykit.parity``; ``verify_options`` are passed on: samples, data, mean, std, seed, localize, ...).
    A parity failure still writes the artifacts and the record, which says what failed, then raises
    ParityError (exit 1): the user needs the artifact to investigate, and CI needs the failure.
    """
    from deploykit.loaders import load_source
    from deploykit.passes import parse_passes
    from deploykit.quantize import build_options

    started = time.perf_counter()
    targets = parse_targets(to)
    options = ConvertOptions(coreml_target=check_coreml_target(coreml_target), allow_flex=allow_flex,
                             executorch_backend=check_executorch_backend(executorch_backend))
    qopts = build_options(targets, quantize, calibration, calibration_samples, int8_io, keep_float, per_tensor,
                          lut_group_size, options.coreml_target, lut_budget)
    selection = parse_passes(passes)
    progress = progress or NullProgress()
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        from deploykit.core.errors import UsageError

        raise UsageError(f"--out {out_dir} exists and is not a directory")

    with progress.step(f"Loading {source}"), _quiet(verbose, "loading the model"):
        model = load_source(source, inputs=inputs, weights=weights, allow_h5=allow_h5)
    loaded = model  # as the file holds it, for the inspection: with_app_io may wrap it for pixels and labels
    if "executorch" in targets:
        check_executorch_source(model.framework, model.format)
        if image_inputs:
            from deploykit.core.errors import UsageError

            raise UsageError("--image-input is not made for ExecuTorch programs yet: they take the float tensor "
                             "the PyTorch model takes", hint="convert --to executorch without --image-input")
    model = with_app_io(model, image_inputs, classifier, qopts, verify_options if verify else None)
    stem = _safe_stem(name or model.name)
    calibration_data = _calibration(qopts, model) if qopts.needs_calibration else None
    context = VariantContext(selection, qopts, calibration_data)

    verify_options = dict(verify_options or {})
    if qopts.calibration and not verify_options.get("data"):
        # int8 is calibrated for the calibration data's range; seeded noise would be out of it
        verify_options["data"] = qopts.calibration
    artifacts, failures, errors = [], [], []
    with staging_directory(out_dir) as staging:
        workspace = Workspace(root=staging / "work", progress=progress)
        workspace.root.mkdir()
        if verify:
            workspace.check = _candidate_check(model, verbose, verify_options)
            workspace.samples = _parity_samples(model, verify_options)
        with _quiet(verbose, "analysing the source graph"):
            workspace.products["analysis"] = _analysis(model)
        for target in targets:
            for scheme in qopts.schemes(target):
                filename = f"{stem}.{scheme}{SUFFIX[target]}"
                try:
                    with _quiet(verbose, f"running graph passes for {target}"):
                        prepared, source_records = apply_source_passes(model, target, selection, workspace)
                    prepared = pixel_model(prepared, model.images, target)
                    with progress.step(f"Converting to {target} {scheme}" if scheme != "fp32" else f"Converting to {target}"):
                        artifacts.append(_convert_one(prepared, target, scheme, staging / filename, options, workspace,
                                                      verbose, context, source_records))
                except (ConversionError, UnsupportedOperatorError) as exc:
                    if all_or_nothing:
                        raise
                    errors.append(exc)
                    failures.append(_failure(target, scheme, exc))
                    if scheme == "fp32":
                        break  # every other scheme of this target derives from its fp32 conversion
        if not artifacts:
            raise errors[0]
        if strict_graph:
            _enforce_strict_graph(artifacts)
        parity_reports = []
        if verify:
            from deploykit.pipeline.verify import verify_artifacts

            checkable = [a for a in artifacts if not a.select_tf_ops]
            parity_reports = verify_artifacts(model, checkable, staging, progress=progress, verbose=verbose,
                                              **verify_options)
            summaries = {a.path: r.to_summary() for a, r in zip(checkable, parity_reports)}
            if checkable:
                from deploykit.pipeline.verify_sizes import check_other_sizes

                parity_reports, summaries = check_other_sizes(model, checkable, staging, parity_reports, summaries,
                                                              progress=progress, verbose=verbose, **verify_options)
            artifacts = [replace(a, parity=summaries.get(a.path) or _unchecked_flex(a)) for a in artifacts]
        with progress.step("Measuring host latency"):
            artifacts = [replace(a, latency=_latency(a, staging / a.path)) for a in artifacts]
        with progress.step("Inspecting the source"):
            inspection = _inspection(loaded)
        with progress.step("Writing outputs"):
            for artifact in artifacts:
                move_into_place(staging / artifact.path, out_dir / artifact.path)
            report = ConversionReport(
                source=model.to_json(),
                artifacts=tuple(artifacts),
                tool_versions=_tool_versions(model.framework, targets, artifacts),
                deploykit_version=__version__,
                total_seconds=round(time.perf_counter() - started, 3),
                failures=tuple(failures),
                inspection=inspection,
            )
            write_text_atomic(out_dir / REPORT_FILENAME, json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n")
            # Also when parity failed (raised below): the page is most useful then.
            _write_html(out_dir, report)
    if errors:
        raise _after_partial(errors[0], failures, out_dir)
    _raise_on_parity_failure(parity_reports)
    return report


def _latency(artifact, path: Path) -> dict:
    from deploykit.report.latency import host_latency

    return host_latency(artifact, path)


def _inspection(loaded) -> dict:
    from deploykit.report.source import inspect_source

    return inspect_source(loaded)


def _write_html(out_dir: Path, report: ConversionReport) -> None:
    from deploykit.report.write import write_report

    write_report(out_dir, report.to_json())


def _unchecked_flex(artifact) -> dict:
    """The parity entry of a TFLite artifact kept with --allow-flex: no stock runtime here can run it."""
    ops = ", ".join(artifact.select_tf_ops)
    return {"passed": None, "skipped": f"needs Select-TF ops ({ops}); stock LiteRT cannot run it, so it was not "
                                      "compared with the source (--allow-flex)"}


def _failure(target: str, scheme: str, exc) -> dict:
    """What the record says about an artifact that could not be made."""
    from deploykit.cli.errors import describe

    code, heading, message, hint = describe(exc)
    entry = {"target": target, "variant": scheme, "error": heading, "message": message, "exit_code": code}
    if hint:
        entry["hint"] = hint
    attempts = getattr(exc, "attempts", ())
    if attempts:
        entry["attempts"] = [a.to_json() for a in attempts]
    return entry


def _after_partial(exc, failures, out_dir: Path):
    """The first conversion failure, once the artifacts that did convert are written."""
    failed = ", ".join(f"{f['target']} {f['variant']}" for f in failures)
    written = f"the other artifacts and {REPORT_FILENAME} were written to {out_dir}"
    exc.hint = f"{exc.hint}; {written}" if exc.hint else written
    if len(failures) > 1:
        exc.message = f"{exc.message} (failed: {failed})"
        exc.args = (exc.message,)
    return exc


def _candidate_check(model, verbose: bool, verify_options: dict):
    """The parity check a conversion ladder runs on each candidate (no localization: that is for the end)."""
    from deploykit.pipeline.verify import check_candidate

    options = {k: v for k, v in verify_options.items() if k != "localize"}

    def check(path, target, variant="fp32"):
        return check_candidate(model, Path(path), target, variant, verbose=verbose, **options)

    return check


def _parity_samples(model, verify_options: dict):
    from deploykit.pipeline.verify import artifact_samples

    def samples(path, target, prefer=()):
        return artifact_samples(model, Path(path), target, prefer=prefer, **verify_options)

    return samples


def _describe_failure(output) -> str:
    if output.problem:
        return f"{output.name}: {output.problem}"
    checks = ", ".join(f"{c.metric} {c.value:.3g} ({c.bound} {c.limit:.3g})" for c in output.failed_checks)
    return f"{output.name}: {checks}"


def _raise_on_parity_failure(parity_reports) -> None:
    failed = [r for r in parity_reports if not r]
    if not failed:
        return
    from deploykit.core.errors import ParityError
    from deploykit.pipeline.verify_sizes import at_size

    lines = []
    for r in failed:
        detail = r.problem or "; ".join(_describe_failure(o) for o in r.failures)
        lines.append(f"{Path(r.artifact).name}{at_size(r)} ({r.profile}): {detail}")
    raise ParityError("the artifact drifts from the source: " + " | ".join(lines),
                      hint="the artifacts, deploykit-report.json and report.html were written for inspection; "
                           "rerun `deploykit verify SOURCE ARTIFACT --localize` to find the first diverging layer")


def _convert_one(model: SourceModel, target: str, scheme: str, path: Path, options, workspace, verbose: bool,
                 context: VariantContext, source_records) -> Artifact:
    """One (target, scheme) artifact, inspected from the written file, with its passes, check and size record."""
    started = time.perf_counter()
    with _quiet(verbose, f"converting to {target} {scheme}"):
        made = make_variant(model, target, scheme, path, options, workspace, context)
        carried = attach_labels(made.path, target, model) if target != "executorch" else _pte_labels(model)
        if target == "coreml":
            from deploykit.formats.coreml.reproducible import make_reproducible

            make_reproducible(made.path)
    seconds = time.perf_counter() - started
    inputs, outputs, ops = inspect_artifact(target, made.path, dynamic=has_flexible(model.inputs),
                                            executorch_record=workspace.products.get(("executorch", str(made.path))))
    inputs = carry_flexible(inputs, model.inputs, target)
    inputs, input_notes = annotate(model.inputs, inputs)
    inputs = declared_images(inputs, model.images, target)
    outputs, output_notes = annotate_outputs(model, outputs, target, carried)
    size = size_path(made.path)
    with _quiet(verbose, "checking the artifact's graph"):
        passes, limit = _graph_and_size(model, target, scheme, made, size, workspace, source_records)
    return Artifact(
        target=target,
        variant=scheme,
        path=made.path.name,
        size_bytes=size,
        sha256=sha256_path(made.path),
        inputs=inputs,
        outputs=outputs,
        converter=made.converter,
        conversion_seconds=round(seconds, 3),
        op_histogram=ops,
        layout_changes=input_notes + output_notes,
        deployment_target=options.coreml_target if target == "coreml" else None,
        quantization=made.quantization,
        passes=passes,
        size_limit=limit,
        attempts=tuple(a.to_json() for a in made.attempts),
        select_tf_ops=tuple(_flex_ops(made.path)) if target == "tflite" else (),
        classifier=carried,
    )


def _pte_labels(model) -> dict | None:
    """ExecuTorch programs carry no metadata: labels travel in the bundle's labels.txt and manifest."""
    if model.classifier is None:
        return None
    return {**model.classifier.to_json(), "carried_as": "bundle labels.txt (a .pte holds no metadata)"}


def _flex_ops(path: Path) -> list[str]:
    from deploykit.formats.tflite.flex import flex_ops

    return flex_ops(path)


def _graph_and_size(model, target, scheme, made, size, workspace, source_records):
    """(pass records ending with the artifact check, size against parameters x bits / 8)."""
    from deploykit.passes.apply import converter_records
    from deploykit.passes.check import check_artifact
    from deploykit.quantize.schemes import SCHEMES
    from deploykit.quantize.size import size_limit

    sites, (parameters, stored) = workspace.products["analysis"]
    check = check_artifact(target, made.path, workspace.products.get(("executorch", str(made.path))))
    records = list(source_records) + list(made.passes)
    records += converter_records(sites, records, check, made.converter.split(" (")[0] + " converter")
    records.append(check.to_json())
    return tuple(records), size_limit(size, parameters, stored, SCHEMES[scheme].bits_per_weight)


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


def _tool_versions(framework, targets, artifacts) -> dict:
    """The path's tools plus the quantizers that made variants (k-means palettization uses scikit-learn)."""
    from deploykit.pipeline.tool_versions import version_of

    versions = tool_versions(framework, targets)
    variants = {(a.target, a.variant) for a in artifacts}
    if any(t == "tflite" and v != "fp32" for t, v in variants):
        versions["ai-edge-quantizer"] = version_of("ai-edge-quantizer")
    if any(v.startswith("lut") for _, v in variants):
        versions["scikit-learn"] = version_of("scikit-learn")
    return dict(sorted(versions.items()))


def _analysis(model):
    """The source's batch norms and parameter count, as loaded (before any pass)."""
    from deploykit.passes.fold_batchnorm import batchnorm_sites
    from deploykit.quantize.size import count_parameters

    return batchnorm_sites(model), count_parameters(model)


def _calibration(qopts, model):
    from deploykit.quantize.calibration import load_calibration

    return load_calibration(qopts.calibration, model.inputs, qopts.calibration_samples)


def inspect_artifact(target: str, path: Path, dynamic: bool = False, executorch_record=None):
    """(inputs, outputs, op histogram) of a written artifact, read back from the file itself. ``dynamic``:
    a TFLite dimension resizable at run time is recorded as None (for flexible inputs); otherwise the
    allocated size is (a SavedModel's dynamic batch is 1, as apps run it). An ExecuTorch program's
    histogram counts the Edge ops per place they run ("xnnpack: aten.convolution.default", "portable: ...")."""
    if target == "executorch":
        record = executorch_record
        ops = {**{f"{record.backend}: {op}": n for op, n in record.delegated_ops.items()},
               **{f"portable: {op}": n for op, n in record.portable_ops.items()}}
        return record.inputs, record.outputs, ops
    if target == "tflite":
        from deploykit.formats.tflite import signature as tflite_inspect

        interpreter = tflite_inspect.open_interpreter(str(path))
        ins, outs = tflite_inspect.signature(interpreter, dynamic=dynamic)
        return ins, outs, tflite_inspect.op_histogram(interpreter)
    from deploykit.formats.coreml import spec as coreml_inspect

    spec = coreml_inspect.load_spec(path)
    ins, outs = coreml_inspect.signature(spec)
    return ins, outs, coreml_inspect.op_histogram(spec)


class _quiet:
    """Capture upstream noise; attach it to a deploykit error, or wrap any other crash as a ConversionError."""

    def __init__(self, verbose: bool, doing: str):
        self.verbose, self.doing = verbose, doing

    def __enter__(self):
        self._ctx = capture_output(enabled=not self.verbose)
        self.captured = self._ctx.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb):
        self._ctx.__exit__(exc_type, exc, tb)
        if exc is None or isinstance(exc, KeyboardInterrupt):
            return False
        if isinstance(exc, DeployKitError):
            if isinstance(exc, ConversionError) and not exc.log:
                exc.log = self.captured.text
            return False
        error = ConversionError(f"upstream crash while {self.doing}: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
                                hint="rerun with --verbose to see the converter's log", log=self.captured.text)
        raise error from exc


def _safe_stem(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-.")
    return cleaned or "model"
