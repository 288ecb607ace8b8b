"""One (target, scheme) artifact, top to bottom: make it, finish it (labels, reproducible bytes), read it back
from the written file, and record what it is: interface with layouts and pixel inputs, passes ending with the
graph check, size against its physical limit."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from deploykit.core.hashing import sha256_path, size_path
from deploykit.core.layouts import annotate
from deploykit.core.types import Artifact, SourceModel
from deploykit.image_io.declare import declared_images
from deploykit.labels.outputs import annotate_outputs
from deploykit.pipeline.quiet import quiet
from deploykit.targets.base import Made, Target, VariantContext


@dataclass(frozen=True)
class Produced:
    """An artifact as its target made and finished it, before anything reads it back."""

    made: Made
    classifier: dict | None
    seconds: float


def produce(model: SourceModel, target: Target, scheme: str, path: Path, options, workspace, verbose: bool,
            context: VariantContext) -> Produced:
    """Make the artifact and finish it: what every variant derived from it (and the app) sees."""
    started = time.perf_counter()
    with quiet(verbose, f"converting to {target.name} {scheme}"):
        made = target.make(model, scheme, path, options, workspace, context)
        carried = target.finish(made.path, model)
    return Produced(made, carried, time.perf_counter() - started)


def describe(model: SourceModel, target: Target, scheme: str, produced: Produced, options, workspace, verbose: bool,
             source_records) -> Artifact:
    """The record of a produced artifact, every figure read back from the written file."""
    made = produced.made
    inputs, outputs, ops = target.interface(made.path, model, workspace)
    inputs, input_notes = annotate(model.inputs, inputs)
    if target.pixel_feed is not None:
        inputs = declared_images(inputs, model.images, target.pixel_feed)
    outputs, output_notes = annotate_outputs(model, outputs, produced.classifier, target.classifier_features)
    size = size_path(made.path)
    with quiet(verbose, "checking the artifact's graph"):
        passes, limit = _graph_and_size(model, target, scheme, made, size, workspace, source_records)
    return Artifact(
        target=target.name,
        variant=scheme,
        path=made.path.name,
        size_bytes=size,
        sha256=sha256_path(made.path),
        inputs=inputs,
        outputs=outputs,
        converter=made.converter,
        conversion_seconds=round(produced.seconds, 3),
        op_histogram=ops,
        layout_changes=input_notes + output_notes,
        deployment_target=target.deployment_target(options),
        quantization=made.quantization,
        passes=passes,
        size_limit=limit,
        attempts=tuple(a.to_json() for a in made.attempts),
        select_tf_ops=target.needs_select_ops(made.path),
        classifier=produced.classifier,
    )


def compatibility_of(target: Target, path: Path, workspace, verbose: bool) -> dict | None:
    """The artifact's ``compatibility`` block (``Target.compatibility``) on the finished file, its detector appended;
    an analysis that fails costs only the block: ``{"unavailable": why}``, the conversion stands."""
    from deploykit.core.noise import capture_output
    from deploykit.runners.latency import why

    try:
        with capture_output(enabled=not verbose):  # the analyzers and delegates log to fds 1 and 2
            return target.compatibility(path, workspace)
    except Exception as exc:  # noqa: BLE001  (any upstream failure: the record says why instead)
        return {"unavailable": f"the {target.title} analysis failed: {why(exc)}"}


def _graph_and_size(model, target: Target, scheme: str, made: Made, size: int, workspace, source_records):
    """(pass records ending with the artifact check, size against parameters x bits / 8)."""
    from deploykit.passes.apply import converter_records
    from deploykit.quantize.schemes import SCHEMES
    from deploykit.quantize.size import size_limit

    sites, (parameters, stored) = workspace.products["analysis"]
    check = target.graph_check(made.path, workspace)
    records = list(source_records) + list(made.passes)
    records += converter_records(sites, records, check, made.converter.split(" (")[0] + " converter")
    records.append(check.to_json())
    return tuple(records), size_limit(size, parameters, stored, SCHEMES[scheme].bits_per_weight)


def source_analysis(model):
    """The source's batch norms and parameter count, as loaded (before any pass)."""
    from deploykit.passes.fold_batchnorm import batchnorm_sites
    from deploykit.quantize.size import count_parameters

    return batchnorm_sites(model), count_parameters(model)
