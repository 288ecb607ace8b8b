"""``deploykit verify``: parse flags, call deploykit.pipeline.verify, print the table, write reports, exit 1 on drift."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from deploykit.cli.options import (
    AllowH5,
    Data,
    InputShapes,
    JsonOutput,
    Localize,
    Mean,
    Quiet,
    Samples,
    Seed,
    Std,
    StrictParity,
    Verbose,
    Weights,
)
from deploykit.core.errors import UsageError

HELP = """Check that converted artifacts compute what the source model computes.

Runs SOURCE and each ARTIFACT (.tflite, .mlpackage, .pte, or an output folder of [bold]deploykit convert[/]) on the same inputs and compares every output (a detector artifact: its boxes, docs/detection.md): max abs / relative error, mean abs error, cosine similarity, SNR, top-1/top-5 agreement for classifier outputs, NaN/Inf. Thresholds come from the artifact's precision profile (fp32, fp16, int8-weights, int8, int16x8, int4, lut1..lut8, the sparse ones), read from deploykit-report.json beside the artifact, else fp32. Core ML runs with MLModel.predict on macOS and with deploykit's numpy evaluator elsewhere; ExecuTorch programs run with the ExecuTorch runtime in a child process.

Inputs: 8 seeded random samples (--samples, --seed), float values uniform on [-1, 1) unless the model states its domain (a Keras Rescaling or Normalization first layer: e.g. 0-255 pixels; token ids of an embedding: [0, vocabulary)), or real data with --data: a .npy / .npz file, or a folder of images scaled to [0, 1] then (x - mean) / std.

The verdict knows the source's own precision: per output and sample, the source is run again on its input moved by 1e-7 (relative; and in float64 for PyTorch), and the limit is the profile's bound or 10 x that noise, whichever is looser. Samples where the source's own noise exceeds the bound are marked ill-conditioned; when seeded inputs are, narrower seeded ranges are tried. Samples where the noise is beyond 1e-3 carry no verdict either way; a check with only such samples is inconclusive: a warning and exit 0, exit 1 with --strict-parity.

Exit codes: 0 every output within tolerance (or inconclusive), 1 parity failure, 2 bad input or flags. Details: docs/verify.md.

[bold]Examples[/]

  deploykit verify model.pt2 dist/model.fp32.tflite

  deploykit verify model.keras dist/ --report parity.json --junit parity.xml

  deploykit verify model.onnx dist/model.fp32.mlpackage --data calib/ --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225

  deploykit verify model.pt2 dist/model.fp16.mlpackage --profile fp16 --tolerance logits:snr_db=30 --localize
"""


def register(app: typer.Typer) -> None:
    app.command("verify", help=HELP, no_args_is_help=True)(verify)


def verify(
    source: Annotated[str, typer.Argument(help="The source model (as for convert): file, SavedModel directory or entry point.")],
    artifacts: Annotated[list[Path], typer.Argument(help="One or more .tflite / .mlpackage / .pte, or a convert --out folder.")],
    input_shapes: InputShapes = None,
    samples: Samples = 8,
    data: Data = None,
    mean: Mean = None,
    std: Std = None,
    data_layout: Annotated[Optional[str], typer.Option("--data-layout", help="Layout of --data: NCHW or NHWC (default: the source's).")] = None,
    seed: Seed = 0,
    profile: Annotated[Optional[str], typer.Option("--profile", "-p", help="Tolerance profile: fp32, fp16, int8-weights, int8, int16x8, int4, lut2..lut8, sparse50 / 75 / 90, sparse2of4 and the joint sparse ones (docs/verify.md lists them). A detector artifact is checked box by box (docs/detection.md).")] = None,
    tolerance: Annotated[Optional[list[str]], typer.Option("--tolerance", "-t", metavar="[OUTPUT:]METRIC=VALUE",
                                                           help="Override a threshold (repeatable); VALUE 'off' disables it. "
                                                                "Metrics: max_abs_error, max_rel_error, mean_abs_error, "
                                                                "cosine_similarity, snr_db, top1_agreement, top5_agreement.")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write every output's metrics, thresholds and verdict as JSON.")] = None,
    junit: Annotated[Optional[Path], typer.Option("--junit", help="Write a JUnit XML report for CI systems.")] = None,
    localize: Localize = False,
    strict_parity: StrictParity = False,
    weights: Weights = None,
    allow_h5: AllowH5 = False,
    verbose: Verbose = False,
    json_output: JsonOutput = False,
    quiet: Quiet = False,
) -> None:
    from deploykit.cli.options import parse_floats
    from deploykit.cli.output import StepProgress, stdout_json, terminal
    from deploykit.cli.parity_table import print_report
    from deploykit.core.errors import ParityError
    from deploykit.core.noise import capture_output
    from deploykit.loaders import load_source
    from deploykit.parity.profiles import parse_tolerances
    from deploykit.parity.report import to_json, write_json, write_junit
    from deploykit.pipeline.request import VerifyOptions
    from deploykit.pipeline.verify import verify_with

    if verbose:
        os.environ["DEPLOYKIT_VERBOSE"] = "1"
    overrides = parse_tolerances(tolerance or [])
    checks = VerifyOptions(samples=samples, data=data, mean=parse_floats(mean, "--mean"), std=parse_floats(std, "--std"),
                           data_layout=data_layout, seed=seed, profile=profile, tolerances=overrides, localize=localize,
                           strict=strict_parity)
    progress = StepProgress(quiet=quiet or json_output)
    targets = _expand(artifacts)
    with progress.step(f"Loading {source}"), capture_output(enabled=not verbose):
        model = load_source(source, inputs=input_shapes or None, weights=weights, allow_h5=allow_h5)
    if any(t.flexible for t in model.inputs):
        # One run compares one size; `convert` checks every accepted size and records each.
        raise UsageError("verify compares one input size: give --input a single shape (e.g. x=1x3x320x320) "
                         "and run it once per size", hint="deploykit convert checks every flexible size itself")
    reports = [verify_with(model, path, checks, progress=progress, verbose=verbose) for path in targets]
    if not json_output and not quiet:
        for result in reports:
            print_report(result, terminal(), verbose=verbose)
    if report:
        write_json(reports, report)
    if junit:
        write_junit(reports, junit)
    if json_output:
        stdout_json(to_json(reports))
    failed = [r for r in reports if r.status == "failed" or (strict_parity and r.status == "inconclusive")]
    if failed:
        raise ParityError(_summary(failed), hint=_hint(failed, localize))


def _expand(paths: list[Path]) -> list[Path]:
    """A convert --out folder stands for every artifact its deploykit-report.json lists."""
    import json

    from deploykit.core.errors import InputError
    from deploykit.core.types import REPORT_FILENAME

    expanded = []
    for path in paths:
        record = path / REPORT_FILENAME
        if path.is_dir() and path.suffix not in (".mlpackage", ".ncnn"):  # directory artifacts are artifacts
            if not record.is_file():
                raise InputError(f"{path} is a folder without {REPORT_FILENAME}",
                                 hint="pass the .tflite / .mlpackage / .pte / .ncnn artifacts themselves")
            try:
                entries = json.loads(record.read_text(encoding="utf-8"))["artifacts"]
                expanded += [path / entry["path"] for entry in entries]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise InputError(f"cannot read {record}: {exc}") from exc
        else:
            expanded.append(path)
    return expanded


def _summary(failed) -> str:
    parts = []
    for report in failed:
        if report.problem:
            parts.append(f"{Path(report.artifact).name}: {report.problem}")
            continue
        for output in report.failures:
            checks = ", ".join(f"{c.metric} {c.value:.4g}" for c in output.failed_checks) or output.problem
            parts.append(f"{Path(report.artifact).name} output {output.name!r} ({report.profile}): {checks}")
    return "the artifact does not compute what the source computes: " + "; ".join(parts)


def _hint(failed, localized: bool) -> str:
    culprits = [r.localization.culprit["source"] for r in failed if r.localization and r.localization.culprit]
    if culprits:
        return f"first divergence at {culprits[0]}; see the table above"
    if not localized:
        return "rerun with --localize to find the first diverging layer; --tolerance overrides a threshold"
    return "see the table above; --tolerance overrides a threshold if the drift is expected"
