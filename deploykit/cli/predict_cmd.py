"""``deploykit predict``: parse flags, call deploykit.pipeline.predict, print the top-k (or a detector's boxes) per picture."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from deploykit.cli.options import JsonOutput

HELP = """Run a converted model on picture files, with the preprocessing its record or bundle declares, and print the top-k classes, or a detector's boxes.

This is the reference implementation of the preprocessing an app must reproduce: each picture is brought to the model's input size with the declared resize mode (stretch, shorter-side then a centre crop, or letterbox), handed over as the model takes pixels (Core ML image, TFLite uint8), and the scores of the class output printed with labels. --dump-input writes the exact tensors fed, to compare with what an app feeds byte for byte.

A detector (converted with --detector, docs/detection.md) prints each picture's detections instead: label, score and box (x1, y1, x2, y2) in the picture's own pixels, the declared resize (stretch, crop or letterbox) undone as an app must. --draw OUT_DIR writes each picture with its boxes and labels drawn, as PNG.

MODEL is an artifact converted with --image-input (its deploykit-report.json beside it) or a bundle (.zip), which runs only after it verifies against --trusted-key, as an app would. Core ML runs with MLModel.predict on macOS and with deploykit's numpy evaluator elsewhere.

[bold]Examples[/]

  deploykit predict dist/mobilenet.fp32.tflite photos/ --labels labels.txt --top-k 3

  deploykit predict bundles/com.example.classifier-1.2.0-ios-fp32.zip cat.jpg --trusted-key keys/deploykit.pub --json

  deploykit predict dist/mobilenet.fp32.mlpackage cat.jpg --dump-input fed.npy

  deploykit predict dist/yolov8n.fp32.tflite street.jpg photos/ --draw drawn/
"""


def register(app: typer.Typer) -> None:
    app.command("predict", help=HELP, no_args_is_help=True)(predict)


def predict(
    model: Annotated[Path, typer.Argument(help="An artifact (.tflite, .mlpackage) with its record beside it, or a bundle (.zip).")],
    pictures: Annotated[list[Path], typer.Argument(help="Picture files or folders of pictures.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="How many classes to show per picture.")] = 5,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="Class labels, one per line (a bundle brings its own).")] = None,
    output: Annotated[Optional[str], typer.Option("--output", help="The output holding the class scores (default: the labelled one, else the only one).")] = None,
    trusted_key: Annotated[Optional[list[Path]], typer.Option("--trusted-key", help="Publisher public key (.pub) a bundle must verify against; repeat to trust several.")] = None,
    dump_input: Annotated[Optional[Path], typer.Option("--dump-input", help="Write the exact tensors fed to the model (one per picture, stacked) to this .npy file.")] = None,
    draw: Annotated[Optional[Path], typer.Option("--draw", help="A detector: write each picture with its boxes and labels drawn into this folder (PNG, named after the picture).")] = None,
    json_output: JsonOutput = False,
) -> None:
    from deploykit.bundle.signing import load_public_key
    from deploykit.cli.output import stdout_json, terminal
    from deploykit.pipeline.predict import PredictOptions
    from deploykit.pipeline.predict import predict as run

    options = PredictOptions(top_k=top_k, labels=labels, output=output, dump_input=dump_input, draw=draw,
                             trusted_keys=tuple(load_public_key(k) for k in trusted_key or ()))
    results = run(model, pictures, options)
    if json_output:
        stdout_json({"model": str(model), "predictions": [r.to_json() for r in results]})
        return
    console = terminal()
    if results and hasattr(results[0], "detections"):
        _print_detections(console, results)
        return
    for result in results:
        best = ", ".join(f"{label or f'class {index}'} {score:.3f}" for index, label, score in result.top)
        console.print(f"[bold]{result.image}[/]: {best}")
    if results and results[0].scores_are == "softmax of the output":
        console.print("[dim]scores: softmax of the model's output (it is not a probability distribution)[/]")
    elif results and results[0].scores_are != "probabilities":
        console.print(f"[dim]scores: {results[0].scores_are} (a detector's class scores)[/]")


def _print_detections(console, results) -> None:
    from rich.markup import escape

    for result in results:
        width, height = result.size
        count = len(result.detections)
        console.print(f"[bold]{escape(result.image)}[/] ({width}x{height}): {count} detection{'' if count == 1 else 's'}"
                      + (f", drawn to {result.drawn}" if result.drawn else ""))
        for found in result.detections:
            x1, y1, x2, y2 = found["box"]
            name = escape(found.get("label") or f"class {found['class']}")
            console.print(f"  {name} {found['score']:.3f}  "
                          f"({x1:.1f}, {y1:.1f}) - ({x2:.1f}, {y2:.1f})")
    if results:
        console.print(f"[dim]boxes: {results[0].frame}[/]")
