"""``deploykit inspect``: parameters, mult-adds, the MobileNet paper's per-layer-type table, ops, bytes, memory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deploykit.cli.options import AllowH5, InputShapes, JsonOutput

HELP = """Count a model's parameters and mult-adds, from a source (Keras .keras, PyTorch .pt2 / entry point / TorchScript, ONNX) or an artifact (.tflite, .mlpackage, .pte).

Prints the inputs and outputs, parameters, mult-adds (MACs: one multiply-accumulate counted once, in convolutions and matrix products; batch norm and activations are not counted, as in the MobileNet, ShuffleNet and SqueezeNet papers), the MobileNet paper's table of mult-adds and parameters per layer type (1x1 convolutions, depthwise convolutions, other convolutions, fully connected, everything else), the op histogram, weight bytes by stored dtype and an estimate of peak activation memory. A source and its artifacts give the same mult-adds; quantized weights count at their decoded size.

  deploykit inspect mobilenet.keras

  deploykit inspect dist/mobilenet.fp16.tflite --per-layer

  deploykit inspect model.onnx --input 1x3x224x224 --json > figures.json
"""


def register(app: typer.Typer) -> None:
    app.command("inspect", help=HELP, no_args_is_help=True)(inspect)


def inspect(
    model: Annotated[str, typer.Argument(help="A source model or entry point (path/to/file.py:factory), or a .tflite / .mlpackage / .pte artifact.")],
    input_shapes: InputShapes = None,
    per_layer: Annotated[bool, typer.Option("--per-layer", help="List every layer with its op, output shape, mult-adds and parameters.")] = False,
    json_output: JsonOutput = False,
    allow_h5: AllowH5 = False,
) -> None:
    from deploykit.cli.output import StepProgress, stdout_json
    from deploykit.core.noise import capture_output
    from deploykit.pipeline.inspect import inspect_model

    with StepProgress(quiet=json_output).step(f"Inspecting {Path(model.rstrip('/')).name}"), capture_output():
        result = inspect_model(model, input_shapes, allow_h5=allow_h5)
    if json_output:
        stdout_json(result.to_json(per_layer=per_layer))
        return
    print_inspection(result, per_layer=per_layer)


def print_inspection(result, *, per_layer: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from deploykit.inspection.model import COUNTING_NOTE, LAYER_TYPE_TITLES, MEMORY_NOTE
    from deploykit.report.units import human_size

    console = Console(highlight=False)
    console.print(f"[bold]{result.path}[/] ({result.format})")
    console.print(f"parameters [bold]{count(result.params)}[/] ({result.params:,})   "
                  f"mult-adds [bold]{count(result.macs)}[/] ({result.macs:,})   "
                  f"peak activation memory ~{human_size(result.peak_activation_bytes)}")
    weights = ", ".join(f"{dtype} {human_size(size)}" for dtype, size in result.weight_bytes.items())
    console.print(f"stored weights: {weights or 'none'}")

    io = Table(title="Inputs and outputs", title_justify="left")
    for column in ("", "name", "shape", "dtype"):
        io.add_column(column)
    for kind, tensors in (("input", result.inputs), ("output", result.outputs)):
        for tensor in tensors:
            io.add_row(kind, tensor.name, "x".join(str(d) for d in tensor.shape), tensor.dtype)
    console.print(io)

    kinds = Table(title="Mult-adds and parameters per layer type (as in the MobileNet paper, Table 2)", title_justify="left")
    for column in ("layer type", "mult-adds", "share", "parameters", "share"):
        kinds.add_column(column, justify="left" if column == "layer type" else "right")
    for kind, row in result.by_layer_type().items():
        kinds.add_row(LAYER_TYPE_TITLES[kind], count(row["macs"]), f"{row['macs_percent']:.2f} %",
                      count(row["params"]), f"{row['params_percent']:.2f} %")
    kinds.add_row("[bold]total[/]", f"[bold]{count(result.macs)}[/]", "", f"[bold]{count(result.params)}[/]", "")
    console.print(kinds)

    ops = ", ".join(f"{op} {n}" for op, n in result.op_histogram.items())
    console.print(f"[bold]ops[/] ({len(result.layers)}): {ops}", soft_wrap=False)
    if per_layer:
        layers = Table(title="Layers", title_justify="left")
        for column in ("#", "layer", "op", "type", "output", "mult-adds", "parameters"):
            numeric = column in ("#", "mult-adds", "parameters")
            layers.add_column(column, justify="right" if numeric else "left", no_wrap=numeric or column == "output",
                              overflow="fold")
        for index, layer in enumerate(result.layers):
            shape = "x".join(str(d) for d in layer.output_shape) if layer.output_shape else ""
            layers.add_row(str(index), layer.name, layer.op, layer.layer_type, shape,
                           f"{layer.macs:,}" if layer.macs else "", f"{layer.params:,}" if layer.params else "")
        console.print(layers)
    for note in (COUNTING_NOTE, MEMORY_NOTE, *result.notes):
        console.print(f"[dim]note: {note}[/]")


def count(value: int) -> str:
    """4.23 M, 568.7 M, 15.47 G: the papers' units."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return str(value)
