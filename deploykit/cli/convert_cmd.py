"""``deploykit convert``: parse flags, call deploykit.pipeline.convert, show the result."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from deploykit.cli.options import InputShapes, JsonOutput, Quiet, Verbose

HELP = """Convert a Keras, PyTorch or ONNX model into TFLite and Core ML artifacts.

Writes [bold]<name>.fp32.tflite[/], [bold]<name>.fp32.mlpackage[/] and [bold]deploykit-report.json[/]
(sizes, sha256, inputs/outputs with layouts, op histograms, tool versions) into --out.
Nothing is written unless every target converts.

[bold]Sources[/]: .keras (loaded with safe_mode=True), a SavedModel directory, .h5 (only with --allow-h5),
.pt2 (torch.export.save), TorchScript (torch.jit.save), a Python entry point path/to/net.py:build or
package.module:build returning an nn.Module (with --weights state_dict.pth, read with weights_only=True), .onnx.

[bold]Examples[/]

  deploykit convert model.keras --to tflite,coreml --out dist/

  deploykit convert model.pt2 --to coreml --coreml-target iOS17

  deploykit convert nets.py:build_classifier --weights weights.pth --input 1x3x224x224 --out dist/

  deploykit convert model.onnx --input images=1x3x320x320 --json > record.json
"""


def register(app: typer.Typer) -> None:
    app.command("convert", help=HELP, no_args_is_help=True)(convert)


def convert(
    source: Annotated[str, typer.Argument(help="Model file, SavedModel directory, or entry point FILE.py:FACTORY / MODULE:FACTORY.")],
    to: Annotated[str, typer.Option("--to", "-t", help="Targets, comma-separated: tflite, coreml.")] = "tflite,coreml",
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("dist"),
    input_shapes: InputShapes = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="state_dict for an entry point (loaded with weights_only=True).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Base name of the artifacts (default: the source's file name).")] = None,
    coreml_target: Annotated[str, typer.Option("--coreml-target", help="Core ML minimum deployment target: iOS15..iOS18, macOS12..macOS15.")] = "iOS16",
    allow_h5: Annotated[bool, typer.Option("--allow-h5", help="Load a legacy .h5 Keras file. It ignores safe mode: only for files you trust.")] = False,
    verbose: Verbose = False,
    json_output: JsonOutput = False,
    quiet: Quiet = False,
) -> None:
    from deploykit.cli.output import StepProgress, stdout_json
    from deploykit.pipeline import convert as run_convert

    if verbose:
        os.environ["DEPLOYKIT_VERBOSE"] = "1"
    report = run_convert(
        source,
        to=to,
        out=out,
        inputs=input_shapes or None,
        weights=weights,
        allow_h5=allow_h5,
        coreml_target=coreml_target,
        name=name,
        verbose=verbose,
        progress=StepProgress(quiet=quiet or json_output),
    )
    if json_output:
        stdout_json(report.to_json())
    elif not quiet:
        from deploykit.cli.tables import print_conversion

        print_conversion(report, out)
