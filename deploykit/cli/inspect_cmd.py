"""``deploykit inspect``: parameters, mult-adds, the MobileNet paper's per-layer-type table, ops, bytes, memory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deploykit.cli.options import AllowH5, InputShapes, JsonOutput

HELP = """Count a model's parameters and mult-adds, from a source (Keras .keras, PyTorch .pt2 / entry point / TorchScript, ONNX) or an artifact (.tflite, .mlpackage, .pte).

Prints the inputs and outputs, parameters, mult-adds (MACs: one multiply-accumulate counted once, in convolutions and matrix products; batch norm and activations are not counted, as in the MobileNet, ShuffleNet and SqueezeNet papers), the MobileNet paper's table of mult-adds and parameters per layer type (1x1 convolutions, depthwise convolutions, other convolutions, fully connected, everything else), the op histogram, weight bytes by stored dtype and an estimate of peak activation memory. A source and its artifacts give the same mult-adds; quantized weights count at their decoded size.

An artifact also gets its accelerator compatibility: per accelerator of its target (LiteRT's GPU delegate and XNNPACK, ExecuTorch's delegate, Core ML read statically off macOS), the ops it takes and each refused op with the reason its analyzer gives (docs/compatibility.md).

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
    if result.compatibility is not None:
        print_compatibility(console, result.compatibility)


def print_compatibility(console, block: dict) -> None:
    """The "Accelerator compatibility" section: per accelerator, the ops it takes and each refused op with the
    analyzer's reason (docs/compatibility.md)."""
    from rich.table import Table

    if "unavailable" in block:
        console.print(f"[bold]Accelerator compatibility[/]: unavailable ({block['unavailable']})")
        return
    static = " [yellow]static[/]" if block.get("static") else ""
    table = Table(title=f"Accelerator compatibility{static}", title_justify="left",
                  caption=f"checked with {block.get('checked_with', '?')}", caption_justify="left")
    for column in ("accelerator", "ops taken", "refused (count: reason)"):
        table.add_column(column, overflow="fold")
    shown = set()
    for entry in block.get("accelerators", []):
        ops, supported = entry.get("ops"), entry.get("supported")
        taken = f"{supported} of {ops}" if supported is not None else f"? of {ops if ops is not None else '?'}"
        refused = [f"{r['op']} x{r['count']}: {r['reason']}" for r in entry.get("refused", [])]
        if entry.get("unavailable"):
            refused.append(f"[yellow]{entry['unavailable']}[/]")
            shown.add(entry["unavailable"])
        elif not refused:
            refused.append("none" if supported is not None else "none named")
        if entry.get("op_types"):
            refused.append("ops: " + ", ".join(f"{op} {n}" for op, n in entry["op_types"].items()))
        if entry.get("dtypes"):
            refused.append("computes in: " + ", ".join(entry["dtypes"]))
        table.add_row(f"{entry.get('title', entry['name'])} ({entry['name']})", taken, "\n".join(refused))
    console.print(table)
    for note in block.get("notes", []):
        if note not in shown:
            console.print(f"[dim]note: {note}[/]")


def count(value: int) -> str:
    """4.23 M, 568.7 M, 15.47 G: the papers' units."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return str(value)
