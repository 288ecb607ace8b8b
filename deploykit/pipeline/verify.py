"""``verify``: run a source model and its converted artifact on the same inputs and compare every output.

    report = verify("model.pt2", "dist/model.fp32.tflite")
    if not report: ...                     # falsy when any output fails its profile's thresholds

The steps, top to bottom: load the source (or take the loaded one), pick the tolerance profile,
open both runners, bind tensors across layouts, build the inputs, run every sample through both,
compare, and on failure (with ``localize=True``) find the first diverging layer.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from deploykit.core.errors import UsageError
from deploykit.core.noise import capture_output
from deploykit.core.progress import NullProgress
from deploykit.core.types import Artifact, SourceModel, recorded_entry
from deploykit.loaders.input_domain import input_domains
from deploykit.loaders.output_ranges import bounded_outputs
from deploykit.parity.classifier_outputs import (
    RANGE,
    ClassifierBinding,
    classifier_bindings,
    classifier_of,
    label_problems,
)
from deploykit.parity.compare import Localization, ParityReport, compare_output
from deploykit.parity.image_feeds import image_bindings, images_of, pixel_inputs, source_view
from deploykit.parity.inputs import FLOAT_RANGE, InputSet, clip_range, load_data, random_inputs
from deploykit.parity.layout import SETTLED, bind
from deploykit.parity.profiles import get_profile, profile_for_variant
from deploykit.parity.reference import conditioned
from deploykit.pipeline.request import VerifyOptions
from deploykit.targets import for_path, runner_for
from deploykit.targets import get as get_target


def verify(source, artifact, *, target=None, inputs=None, samples=8, data=None, mean=None, std=None,
           data_layout=None, seed=0, profile=None, tolerances=None, localize=False, progress=None,
           verbose=False) -> ParityReport:
    """Compare ``artifact`` (.tflite / .mlpackage / .pte) with ``source`` (a path, or a loaded SourceModel).

    The keywords are ``VerifyOptions``' fields (:func:`verify_with` takes the object). ``inputs`` fixes dynamic
    input shapes when loading from a path (as in ``convert``). ``profile`` names a tolerance profile (fp32,
    fp16, int8-weights, int8, lut1..lut8); by default it comes from the artifact's entry in a sibling
    deploykit-report.json, else fp32 is assumed. ``tolerances`` overrides thresholds per output (see
    ``deploykit.parity.profiles``).
    """
    checks = VerifyOptions(samples=samples, data=data, mean=mean, std=std, data_layout=data_layout, seed=seed,
                           tolerances=tolerances, localize=localize, profile=profile)
    return verify_with(source, artifact, checks, target=target, inputs=inputs, progress=progress, verbose=verbose)


def verify_with(source, artifact, checks: VerifyOptions, *, target=None, inputs=None, progress=None,
                verbose=False) -> ParityReport:
    """:func:`verify` with the options as one ``VerifyOptions``."""
    progress = progress or NullProgress()
    if not isinstance(source, SourceModel):
        from deploykit.loaders import load_source

        with progress.step(f"Loading {source}"), capture_output(enabled=not verbose):
            source = load_source(source, inputs=inputs)
    path = Path(artifact)
    return _verify(source, path, target or for_path(path).name, recorded_entry(path), checks, progress, verbose)


def verify_artifacts(model: SourceModel, artifacts, artifact_dir, checks: VerifyOptions, *, progress=None,
                     verbose: bool = False) -> list[ParityReport]:
    """The hook ``convert`` calls: verify every artifact just written against the loaded source model."""
    progress = progress or NullProgress()
    reports = []
    for artifact in artifacts:
        path = Path(artifact_dir) / artifact.path
        with progress.step(f"Verifying {artifact.path}"):
            reports.append(_verify(model, path, artifact.target, artifact, checks, progress, verbose))
    return reports


def check_candidate(model: SourceModel, path: Path, target: str, variant: str, checks: VerifyOptions, *,
                    verbose: bool = False) -> ParityReport:
    """Parity of a conversion ladder's candidate (not yet in any record) under ``variant``'s profile."""
    checks = checks if checks.profile is not None else replace(checks, profile=variant)
    return _verify(model, path, target, None, checks, NullProgress(), verbose)


def artifact_samples(model: SourceModel, path: Path, target: str, checks: VerifyOptions, *, limit: int | None = None,
                     prefer=()) -> tuple[list[dict], dict[str, float]]:
    """The parity inputs in ``path``'s own names and layout (all of them, or ``limit``: the samples
    ``prefer`` names first, then the first ones), and the least scale of each artifact output (the
    magnitude of the range the source bounds it to, else 0): what an estimate that compares the
    artifact with a modified copy of itself needs (``quantize.fp16_mixed``).

    The fp16 estimate takes them all: one sample can carry the whole failure (PP-OCR's direction
    classifier, fp16: 1e-4 on seven of eight text lines, 0.0115 on the eighth), and a failing metric's
    worst sample is not always another's (ResNet-50: an estimate on four samples said 0.60 of the
    limits, the check on eight found cosine at 1.2)."""
    from deploykit.runners import runner_for_source

    kind = get_target(target)
    with contextlib.ExitStack() as stack:
        src, art = runner_for_source(model), runner_for(path, kind.name)
        stack.enter_context(src)
        stack.enter_context(art)
        images = images_of(model, None)
        in_bind = image_bindings(bind(model.inputs, art.input_specs, {}), images, art.input_specs, kind.pixel_feed)
        out_bind = bind(model.outputs, art.output_specs, {})
        feeds, redraw = _inputs(model, art, in_bind, checks, images=images)
        if redraw is not None:  # the inputs the parity check settles on (computed once per source: cached)
            feeds = conditioned(src, model, feeds, lambda sample: source_view(sample, model, images), redraw,
                                seed=checks.seed).feeds
    ranges = bounded_outputs(model)
    floors = {b.artifact: max(map(abs, ranges[b.source])) if b.source in ranges else 0.0 for b in out_bind if not b.problem}
    count = len(feeds.samples)
    chosen = list(dict.fromkeys([i for i in prefer if 0 <= i < count] + list(range(count))))[:limit or count]
    return [{b.artifact: b.to_artifact(feeds.samples[i][b.source]) for b in in_bind} for i in chosen], floors


def _verify(model: SourceModel, path: Path, target: str, recorded: Artifact | None, checks: VerifyOptions,
            progress, verbose: bool) -> ParityReport:
    from deploykit.runners import runner_for_source

    started = time.perf_counter()
    kind = get_target(target)
    chosen, origin = _choose_profile(checks.profile, recorded)
    layouts = {t.name: t.layout for t in (recorded.inputs + recorded.outputs)} if recorded else {}
    with capture_output(enabled=not verbose), contextlib.ExitStack() as stack:
        src, art = runner_for_source(model), runner_for(path, kind.name)
        with progress.step(f"Starting {src.name} and {art.name} runners"):
            stack.enter_context(src)
            stack.enter_context(art)
        images = images_of(model, recorded)
        in_bind = image_bindings(bind(model.inputs, art.input_specs, layouts), images, art.input_specs, kind.pixel_feed)
        classifier = classifier_of(model, recorded)
        out_bind = classifier_bindings(bind(model.outputs, art.output_specs, layouts), classifier, model, art.output_specs)
        notes = tuple(art.notes) + ((origin,) if origin.startswith("fp32 assumed") else ())
        runners = {"source": src.name, "artifact": getattr(art, "backend_used", None) or art.name}
        header = dict(source=model.path, framework=model.framework, artifact=str(path), target=target,
                      profile=chosen.name, profile_origin=origin, runners=runners, notes=notes)
        broken = [b.problem for b in in_bind if b.problem]
        if broken:
            return ParityReport(**header, inputs={}, outputs=(), seconds=_since(started),
                                problem="inputs do not match: " + "; ".join(broken))
        feeds, redraw = _inputs(model, art, in_bind, checks, images=images)
        with progress.step(f"Running {len(feeds)} sample(s) through {src.name} and {runners['artifact']}"):
            runs = conditioned(src, model, feeds, lambda sample: source_view(sample, model, images), redraw,
                               seed=checks.seed)
            feeds, refs = runs.feeds, runs.refs
            outs = [art.infer({b.artifact: b.to_artifact(sample[b.source]) for b in in_bind}) for sample in feeds.samples]
        results = []
        ranges = bounded_outputs(model)
        detector = recorded.detector if recorded is not None else None
        if detector:  # box-level parity: the source's raw heads decoded and suppressed against the artifact's boxes
            from deploykit.parity.detections import compare_detections

            results.append(compare_detections(detector, refs, outs, recorded.variant))
        for b in (() if detector else out_bind):
            if b.problem:
                results.append(_missing(b, refs))
                continue
            bounded = RANGE if isinstance(b, ClassifierBinding) else ranges.get(b.source)
            noise = [[b.reference(run[b.source]) for run in sample_runs] for sample_runs in runs.noise]
            results.append(_compared(b, refs, outs, chosen, checks, bounded, noise))
        location = None
        failed = [r for r in results if not r.passed]
        if checks.localize and failed:
            with progress.step("Localizing the first diverging layer"):
                location = _localize(src, art, in_bind, feeds, failed[0].worst_sample, chosen,
                                     lambda sample: source_view(sample, model, images))
    wrong_labels = label_problems(outs, classifier)
    return ParityReport(**header, inputs=feeds.origin, outputs=tuple(results), localization=location,
                        seconds=_since(started), problem="; ".join(wrong_labels) or None)


def _compared(b, refs, outs, profile, checks: VerifyOptions, bounded, noise):
    """One output's comparison. An artifact output whose shape reads the same in both layouts (``b.alternatives``)
    is compared as the same layout first; when that does not match, each channel move is tried, and the first
    that matches is the result (its layout note says so; ``settled_layouts`` carries it into the record)."""

    def compare(binding):
        return compare_output(binding.source, [binding.reference(r[binding.source]) for r in refs],
                              [binding.to_source(o[binding.artifact]) for o in outs], profile, checks.tolerances,
                              artifact_name=binding.artifact, layout=binding.note, value_range=bounded, noise=noise)

    result = compare(b)
    for order in () if result.passed else b.alternatives:
        other = compare(b.reading(order))
        if other.passed:
            return other
    return result


def settled_layouts(artifact: Artifact, report: ParityReport) -> Artifact:
    """``artifact`` with the layouts its parity check settled: an output whose shape reads the same in both
    layouts, which matched the source only with its channel axis moved (``_compared``), is recorded so
    (``layout``, ``layout_changes``), as a shape that differs would have been."""
    moved = {o.artifact_name: o.layout for o in report.outputs if o.layout and o.layout.endswith(SETTLED)}
    if not moved:
        return artifact
    outputs, notes = [], []
    for spec in artifact.outputs:
        if spec.name not in moved:
            outputs.append(spec)
            continue
        rank = len(spec.shape)
        if rank == 4 and spec.layout in ("NCHW", "NHWC"):
            other = "NHWC" if spec.layout == "NCHW" else "NCHW"
            notes.append(f"{spec.name}: {spec.layout} -> {other} (its shape reads the same in both; parity settled it)")
            outputs.append(replace(spec, layout=other))
        else:
            notes.append(f"{spec.name}: channels-first -> channels-last (its shape reads the same in both; parity "
                         "settled it)")
            outputs.append(replace(spec, layout=None))
    return replace(artifact, outputs=tuple(outputs), layout_changes=tuple(artifact.layout_changes) + tuple(notes))


def _choose_profile(profile, recorded: Artifact | None):
    if profile is not None:
        chosen = get_profile(profile)
        return chosen, f"given ({chosen.name})"
    if recorded is not None:
        name = profile_for_variant(recorded.variant, recorded.quantization)
        if name:
            return get_profile(name), f"from deploykit-report.json (variant {recorded.variant!r})"
        return get_profile("fp32"), (f"fp32 assumed: deploykit-report.json records variant {recorded.variant!r}, "
                                     "which maps to no profile; pass --profile")
    return get_profile("fp32"), "fp32 assumed: no deploykit-report.json entry for this artifact and no --profile"


def _inputs(model, art, in_bind, checks: VerifyOptions, images=None):
    """(the parity inputs, and for seeded inputs in the model's domain a ``redraw(fractions)`` that draws them
    from a sub-range of it: ``parity.reference`` tries those when the default is ill-conditioned; else None)."""
    samples, data, seed = checks.samples, checks.data, checks.seed
    if images:
        if checks.mean is not None or checks.std is not None:
            raise UsageError("--mean and --std are the image input's preprocessing here (--image-input); "
                             "they are not given to the parity check separately")
        return pixel_inputs(model, images, samples=samples, data=data, seed=seed), None
    if data is not None:
        return load_data(data, model.inputs, samples=samples, mean=checks.mean, std=checks.std,
                         layout=checks.data_layout), None
    if checks.mean is not None or checks.std is not None or checks.data_layout is not None:
        raise UsageError("--mean, --std and --data-layout describe --data; they mean nothing for random inputs")
    ranges = {}
    quantized = getattr(art, "quantized_io", {})
    for b in in_bind:
        if b.artifact in quantized:
            from deploykit.runners.litert_runner import representable_range

            ranges[b.source] = clip_range(*representable_range(*quantized[b.artifact]))
    domains = input_domains(model)
    feeds = random_inputs(model.inputs, samples=samples, seed=seed, ranges=ranges, domains=domains)
    if ranges:  # a quantized artifact's inputs: the representable range decides, not conditioning
        return feeds, None

    def redraw(fractions):
        narrower = {}
        for spec in model.inputs:
            if np.dtype(spec.dtype).kind == "f":
                low, high = (domains[spec.name].low, domains[spec.name].high) if spec.name in domains else FLOAT_RANGE
                narrower[spec.name] = (low + fractions[0] * (high - low), low + fractions[1] * (high - low))
        kept = {name: d for name, d in domains.items() if name not in narrower}
        return random_inputs(model.inputs, samples=samples, seed=seed, ranges=narrower, domains=kept)

    return feeds, redraw


def _missing(binding, refs):
    from deploykit.parity.compare import OutputResult

    shape = tuple(int(d) for d in refs[0][binding.source].shape)
    return OutputResult(binding.source, binding.artifact, shape, {}, (), {}, problem=binding.problem)


def _localize(src, art, in_bind, feeds: InputSet, sample_index: int, profile, source_feeds) -> Localization:
    from deploykit.core.errors import DeployKitError
    from deploykit.parity.localize import localize

    sample = feeds.samples[sample_index]
    try:
        source_trace = src.trace(source_feeds(sample))
        artifact_trace = art.trace({b.artifact: b.to_artifact(sample[b.source]) for b in in_bind})
    except DeployKitError as exc:
        return Localization("unavailable", exc.message + (f" ({exc.hint})" if exc.hint else ""), sample=sample_index)
    return localize(source_trace, artifact_trace, profile.localize_rel_error, sample=sample_index)


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)
