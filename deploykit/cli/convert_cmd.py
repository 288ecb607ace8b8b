"""``deploykit convert``: parse flags into a ``ConvertRequest``, run ``deploykit.pipeline.convert``, show the result."""

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

HELP = """Convert a Keras, PyTorch or ONNX model into TFLite and Core ML artifacts.

Writes [bold]<name>.fp32.tflite[/], [bold]<name>.fp32.mlpackage[/] (and [bold]<name>.<scheme>.*[/] per --quantize
scheme) and [bold]deploykit-report.json[/] (sizes against parameters x bits / 8, sha256, inputs/outputs with
layouts, op histograms, quantization, folded batchnorms and fused activations, tool versions) into --out.
Each artifact appears only when complete. When a target fails, the others are still written and the record's [bold]failures[/] says what failed and why (exit 3); --all-or-nothing writes nothing instead.

[bold]report.html[/] beside the record shows it as one self-contained page (no network needed): the source's figures, a table of the variants with size, parity and host latency (TFLite measured with LiteRT; Core ML an estimate, no Core ML runtime off Apple hardware) and plots of size against error, error per output, latency and, with --localize, the per-layer divergence. See docs/report.md.

Every (source, target) path is a ladder of routes: PyTorch -> Core ML tries jit.trace, then torch.export, then onnx (the model exported to ONNX, then onnx2coreml); Keras -> Core ML coremltools, then onnx (tf2onnx); PyTorch and Keras -> TFLite their own converter, then onnx (onnx2tf); ONNX models go to Core ML with onnx2coreml and to TFLite with onnx2tf, each with its remedies. The first artifact that converts and passes parity is kept (see docs/conversion.md). Every attempt is in the record; --verbose shows them as they run; --route forces one.

[bold]Sources[/]: .keras (loaded with safe_mode=True), a SavedModel directory, .h5 (only with --allow-h5),
.pt2 (torch.export.save), TorchScript (torch.jit.save), a Python entry point path/to/net.py:build or
package.module:build returning an nn.Module (with --weights state_dict.pth, read with weights_only=True), .onnx.

[bold]Examples[/]

  deploykit convert model.keras --to tflite,coreml --out dist/

  deploykit convert model.pt2 --to coreml --coreml-target iOS17

  deploykit convert model.onnx --to coreml --quantize int8 --calibration cal.npz --coreml-target iOS17

  deploykit convert nets.py:build_classifier --weights weights.pth --input 1x3x224x224 --out dist/

  deploykit convert model.onnx --input images=1x3x320x320 --json > record.json

  deploykit convert ghostnet.pt2 --to coreml --route onnx --verbose

[bold]Compression within a budget[/] (per-layer choices; see docs/quantization.md)

  deploykit convert rec.onnx --to tflite,coreml --quantize auto --max-accuracy-drop 1 --validation lines.npz

  deploykit convert model.onnx --quantize int8 --calibration cal.npz --localize

[bold]ExecuTorch[/] (.pte for PyTorch-native apps; PyTorch sources; see docs/executorch.md)

  deploykit convert model.pt2 --to tflite,coreml,executorch --quantize int8 --calibration cal.npy

  deploykit convert model.pt2 --to executorch --executorch-backend coreml --quantize fp16

[bold]NCNN[/] (the .param + .bin pair for Android, iOS and embedded apps; PyTorch and ONNX sources, batch 1; see docs/ncnn.md)

  deploykit convert model.pt2 --to ncnn --quantize fp16

  deploykit convert model.onnx --to ncnn --image-input images --image-input-dtype float32 --pixel-range 0-1

[bold]Image inputs[/] (the app hands over pixels; see docs/image-inputs.md)

  deploykit convert mobilenet.pt2 --image-input x --pixel-range 0-1 --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225

  deploykit convert caffe_net.onnx --image-input data_0 --color BGR --pixel-range 0-255 --mean 103.9,116.8,123.7 --data photos/

[bold]Labels[/] (Core ML classifier, TFLite label metadata)

  deploykit convert mobilenet.pt2 --image-input x --labels imagenet_labels.txt --classifier-output logits

[bold]Detectors[/] (decode and NMS inside the artifact; box-level parity; see docs/detection.md)

  deploykit convert yolov8n.onnx --detector yolov8 --labels coco.txt --image-input images --pixel-range 0-1 --resize letterbox

  deploykit convert layout.onnx --detector picodet --score-threshold 0.4 --iou 0.5 --quantize fp16

[bold]Flexible input sizes[/] (PyTorch and Keras sources; parity at every size; see docs/flexible-sizes.md)

  deploykit convert detector.pt2 --input "image=1x3x[320,480,640]x[320,480,640]"

  deploykit convert net.py:build --input "x=(1..8)x3x(160..640)x(160..640)" --to coreml

[bold]Quantization[/] (one more artifact per target and scheme, next to fp32; see docs/quantization.md)

  deploykit convert model.keras --quantize fp16,int8-weights,lut4

  deploykit convert model.pt2 --quantize tflite=int8,coreml=lut4 --calibration samples.npy

  deploykit convert model.keras --quantize int8 --calibration images/ --int8-io --keep-float first,last
"""


def register(app: typer.Typer) -> None:
    app.command("convert", help=HELP, no_args_is_help=True)(convert)


def convert(
    source: Annotated[str, typer.Argument(help="Model file, SavedModel directory, or entry point FILE.py:FACTORY / MODULE:FACTORY.")],
    to: Annotated[str, typer.Option("--to", "-t", help="Targets, comma-separated: tflite, coreml, executorch (PyTorch sources only), ncnn (PyTorch and ONNX sources).")] = "tflite,coreml",
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("dist"),
    input_shapes: InputShapes = None,
    weights: Weights = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Base name of the artifacts (default: the source's file name).")] = None,
    coreml_target: Annotated[str, typer.Option("--coreml-target", help="Core ML minimum deployment target: iOS15..iOS18, macOS12..macOS15. Core ML int8 (8-bit activations) needs iOS17 / macOS14 or later.")] = "iOS16",
    executorch_backend: Annotated[str, typer.Option("--executorch-backend", help="ExecuTorch backend: xnnpack (CPU, default), coreml (the Core ML delegate: lowered here, runs on Apple hardware), portable (reference kernels, slow).")] = "xnnpack",
    allow_h5: AllowH5 = False,
    quantize: Annotated[Optional[list[str]], typer.Option(
        "--quantize", "-Q", metavar="SCHEMES",
        help="Also make quantized variants: fp16, int8-weights, int8, int16x8 (TFLite: int16 activations, close to fp32, "
             "slow on CPU), int4, lut8, lut6, lut4, lut2, and auto (per-layer "
             "choices, the smallest within --max-accuracy-drop or --max-error); pruned: sparse50, sparse75, sparse90 "
             "(that fraction of each conv / dense weight zeroed, first and small layers spared), sparse2:4 (Core ML), "
             "sparse50+lut4 (Core ML), sparse50+int8 (also with 75 / 90; Core ML joint schemes need iOS18); "
             "comma-separated, per target with coreml=lut4,tflite=int8. fp32 is always made.")] = None,
    calibration: Annotated[Optional[Path], typer.Option(
        "--calibration", help="Samples for int8 and int16x8: a .npy (N x input shape), a .npz (one array per input) "
                              "or an image folder (resized, scaled to 0..1), in the source model's layout.")] = None,
    calibration_samples: Annotated[int, typer.Option(
        "--calibration-samples", help="How many calibration samples to use (evenly spaced).")] = 100,
    int8_io: Annotated[bool, typer.Option("--int8-io", help="TFLite int8: int8 model inputs and outputs instead of float32.")] = False,
    keep_float: Annotated[Optional[list[str]], typer.Option(
        "--keep-float", metavar="WHAT",
        help="Leave in float: first, last (first / last conv or dense layer), small or small=N "
             "(weights under N elements, default 2048), or parts of layer names. Comma-separated.")] = None,
    per_tensor: Annotated[bool, typer.Option("--per-tensor", help="int8-weights / int8 / int16x8: one scale per tensor instead of per channel.")] = False,
    lut_group_size: Annotated[Optional[int], typer.Option(
        "--lut-group-size", help="lut schemes: one table per group of N output channels everywhere (needs --coreml-target iOS18).")] = None,
    lut_budget: Annotated[Optional[float], typer.Option(
        "--lut-budget", metavar="PERCENT",
        help="lut schemes: extra bytes, as % of the index bytes, for finer tables (iOS18) or fp16 where a layer "
             "loses most (at least 4 KB); 0 = one table per tensor everywhere. Default 8.")] = None,
    max_accuracy_drop: Annotated[Optional[float], typer.Option(
        "--max-accuracy-drop", metavar="POINTS",
        help="--quantize auto: the budget in points of accuracy against fp32 on --validation: top-1 when the .npz holds "
             "'labels' (one class per sample), sequence accuracy when 'labels' holds one row of class indices per "
             "sample padded with -1 (a CTC text line), else agreement with the fp32 model's decisions.")] = None,
    max_error: Annotated[Optional[float], typer.Option(
        "--max-error", metavar="E",
        help="--quantize auto: the budget as the largest output error against fp32, a fraction of the output's peak "
             "(max_rel_error), on --validation or the parity inputs.")] = None,
    validation: Annotated[Optional[Path], typer.Option(
        "--validation", help="--quantize auto: the samples the budget is judged on, a .npy or .npz in the source's "
                             "layout (an .npz may add 'labels': one class per sample, or one row of class indices per sample padded with "
                             "-1). Default: --calibration, else --data.")] = None,
    auto_choices: Annotated[Optional[str], typer.Option(
        "--auto-choices", metavar="NAMES",
        help="--quantize auto: the per-layer choices allowed, comma-separated (default all the target has: TFLite fp32, "
             "fp16, int8, int4; Core ML fp16, lut8, int8, lut6, lut4, lut3, lut2, and on iOS18 lut*-g16 and "
             "int4-block).")] = None,
    no_bias_correction: Annotated[bool, typer.Option(
        "--no-bias-correction",
        help="Do not correct the biases of compressed variants (int8-weights, int8, int4, lut*, sparse*, auto). By "
             "default each layer's bias is moved by the shift compression caused in its output mean, measured on the "
             "calibration or parity samples, and the corrected variant is kept only when its output noise is lower on "
             "samples the shifts were not fitted on (see docs/quantization.md, Bias correction).")] = False,
    passes: Annotated[str, typer.Option(
        "--passes", help="Graph passes: auto (where the converter needs them), none, or names (see `deploykit passes`).")] = "auto",
    strict_graph: Annotated[bool, typer.Option(
        "--strict-graph", help="Fail when an artifact keeps a foldable batchnorm or an unfused activation.")] = False,
    route: Annotated[Optional[list[str]], typer.Option(
        "--route", metavar="[TARGET=]NAME",
        help="Take only this route of the ladder (and its remedies): e.g. onnx, torch.export, jit.trace, litert-torch, "
             "coremltools, tflite-converter, onnx:onnx2coreml; coreml=onnx for one target. An unknown name lists the "
             "path's routes.")] = None,
    allow_flex: Annotated[bool, typer.Option(
        "--allow-flex", help="Write TFLite artifacts that need Select-TF (Flex) ops anyway; stock LiteRT cannot run "
                             "them (the app must link the Select-TF ops library). Marked in the record.")] = False,
    all_or_nothing: Annotated[bool, typer.Option(
        "--all-or-nothing", help="Write nothing unless every target and variant converts (by default the ones that "
                                 "converted are written and the record lists the failures).")] = False,
    no_verify: Annotated[bool, typer.Option(
        "--no-verify", help="Skip the parity check (by default every artifact is run against the source and compared).")] = False,
    samples: Samples = 8,
    data: Data = None,
    mean: Mean = None,
    std: Std = None,
    image_input: Annotated[Optional[list[str]], typer.Option(
        "--image-input", metavar="NAME",
        help="The input NAME is an image: the artifacts take pixels (Core ML: an image input Vision feeds; TFLite: "
             "uint8 RGB, channels last) and apply the preprocessing --color, --pixel-range, --mean and --std "
             "describe themselves. Repeat per input. Parity then runs on images (--data FOLDER, else generated "
             "test images).")] = None,
    color: Annotated[str, typer.Option(
        "--color", help="With --image-input: the channel order the source model expects: RGB, BGR or GRAY.")] = "RGB",
    pixel_range: Annotated[str, typer.Option(
        "--pixel-range", help="With --image-input: the range --mean and --std are in: 0-1 (pixels / 255 first) or 0-255.")] = "0-1",
    image_input_dtype: Annotated[str, typer.Option(
        "--image-input-dtype", help="With --image-input, TFLite only: uint8 (pixels; the graph normalizes) or float32 "
                                    "(the source's normalized tensor; the app normalizes, as the bundle's metadata says).")] = "uint8",
    resize: Annotated[str, typer.Option(
        "--resize", help="With --image-input: how an app brings a picture to the input's size (the bundle's preprocessing "
                         "block; predict and --data images use it): stretch, shorter-side (then a centre crop) or letterbox.")] = "stretch",
    crop_fraction: Annotated[float, typer.Option(
        "--crop-fraction", help="With --resize shorter-side: the centre crop's share of the resized shorter side "
                                "(0.875: torchvision's Resize(256) + CenterCrop(224)).")] = 1.0,
    interpolation: Annotated[str, typer.Option(
        "--interpolation", help="With --image-input: bilinear, nearest or bicubic resampling for --resize.")] = "bilinear",
    letterbox_fill: Annotated[int, typer.Option(
        "--letterbox-fill", help="With --resize letterbox: the padding's value, 0-255.")] = 0,
    labels: Annotated[Optional[Path], typer.Option(
        "--labels", help="Class labels, one per line: Core ML gets a classifier (classLabel and a probability per label; a "
                         "softmax first if the output is logits), TFLite the labels in its metadata.")] = None,
    classifier_output: Annotated[Optional[str], typer.Option(
        "--classifier-output", help="With --labels: the output holding the class scores (default: the only output). A score vector (N, 1xN) makes a Core ML classifier; a detector's scores (1 x boxes x classes) get the labels on their class axis as metadata (docs/labels.md).")] = None,
    detector: Annotated[Optional[str], typer.Option(
        "--detector", help="Put the head's decode and non-maximum suppression into the artifact: yolov8, yolox, picodet, ssd or boxes-scores (docs/detection.md). TFLite gets the four outputs Task Library, ML Kit and MediaPipe read; Core ML the confidence / coordinates pair Vision reads; parity compares boxes.")] = None,
    iou: Annotated[Optional[float], typer.Option(
        "--iou", help="With --detector: a box overlapping a kept box of its class by more than this is suppressed (default 0.45).")] = None,
    score_threshold: Annotated[Optional[float], typer.Option(
        "--score-threshold", help="With --detector: a box is a detection when its best class score is above this (default 0.25).")] = None,
    max_detections: Annotated[Optional[int], typer.Option(
        "--max-detections", help="With --detector: at most this many detections per image (default 100).")] = None,
    class_agnostic: Annotated[bool, typer.Option(
        "--class-agnostic", help="With --detector: suppress overlapping boxes whatever their class.")] = False,
    boxes_output: Annotated[Optional[str], typer.Option(
        "--boxes-output", help="With --detector boxes-scores (or ssd): the output holding the boxes [1, N, 4].")] = None,
    scores_output: Annotated[Optional[str], typer.Option(
        "--scores-output", help="With --detector boxes-scores (or ssd): the output holding the class scores [1, N, C].")] = None,
    box_format: Annotated[Optional[str], typer.Option(
        "--box-format", help="With --detector boxes-scores: xyxy, xywh, cxcywh or yxyx (default xyxy).")] = None,
    normalized_boxes: Annotated[bool, typer.Option(
        "--normalized-boxes", help="With --detector boxes-scores: the boxes are fractions of the input size, not pixels.")] = False,
    seed: Seed = 0,
    localize: Localize = False,
    strict_parity: StrictParity = False,
    verbose: Verbose = False,
    json_output: JsonOutput = False,
    quiet: Quiet = False,
) -> None:
    from deploykit.cli.options import parse_floats
    from deploykit.cli.output import StepProgress, stdout_json
    from deploykit.image_io.spec import ImageInputOptions
    from deploykit.labels.spec import ClassifierOptions

    if classifier_output and not labels:
        from deploykit.core.errors import UsageError

        raise UsageError("--classifier-output needs --labels")
    from deploykit.pipeline.convert import convert as run_convert
    from deploykit.pipeline.request import VerifyOptions, request

    if verbose:
        os.environ["DEPLOYKIT_VERBOSE"] = "1"
    if quantize and not (quiet or json_output):
        from deploykit.cli.output import terminal
        from deploykit.quantize import skipped_schemes
        from deploykit.targets import parse_targets

        for note in skipped_schemes(quantize, parse_targets(to), coreml_target):
            terminal().print(f"[yellow]note[/] {note}")
    checks = VerifyOptions(samples=samples, data=data, mean=None if image_input else parse_floats(mean, "--mean"),
                           std=None if image_input else parse_floats(std, "--std"), seed=seed, localize=localize,
                           strict=strict_parity)
    images = ImageInputOptions(tuple(image_input), color, pixel_range, parse_floats(mean, "--mean"),
                               parse_floats(std, "--std"), image_input_dtype, resize, crop_fraction, interpolation,
                               letterbox_fill) if image_input else None
    job = request(source, to=to, out=out, inputs=input_shapes or None, weights=weights, allow_h5=allow_h5,
                  coreml_target=coreml_target, name=name, quantize=quantize, calibration=calibration,
                  calibration_samples=calibration_samples, int8_io=int8_io, keep_float=keep_float, per_tensor=per_tensor,
                  lut_group_size=lut_group_size, lut_budget=lut_budget, passes=passes, strict_graph=strict_graph,
                  verify=not no_verify, verify_options=checks, allow_flex=allow_flex, all_or_nothing=all_or_nothing,
                  image_inputs=images, classifier=ClassifierOptions(labels, classifier_output) if labels else None,
                  executorch_backend=executorch_backend, route=route, verbose=verbose,
                  auto=_auto_options(max_accuracy_drop, max_error, validation, auto_choices),
                  bias_correction=not no_bias_correction,
                  detector=_detector_options(detector, iou, score_threshold, max_detections, class_agnostic, boxes_output,
                                             scores_output, box_format, normalized_boxes))
    report = run_convert(job, progress=StepProgress(quiet=quiet or json_output))
    if json_output:
        stdout_json(report.to_json())
    elif not quiet:
        from deploykit.cli.tables import print_conversion

        print_conversion(report, out)


def _detector_options(preset, iou, score_threshold, max_detections, class_agnostic, boxes_output, scores_output,
                      box_format, normalized_boxes):
    given = {"--iou": iou, "--score-threshold": score_threshold, "--max-detections": max_detections,
             "--boxes-output": boxes_output, "--scores-output": scores_output, "--box-format": box_format}
    if preset is None:
        named = [flag for flag, value in given.items() if value is not None]
        named += ["--class-agnostic"] * class_agnostic + ["--normalized-boxes"] * normalized_boxes
        if named:
            from deploykit.core.errors import UsageError

            raise UsageError(f"{', '.join(named)} apply to --detector", hint="e.g. --detector yolov8 --iou 0.5")
        return None
    from deploykit.detection.options import DetectorOptions

    values = {"iou": iou, "score_threshold": score_threshold, "max_detections": max_detections,
              "boxes_output": boxes_output, "scores_output": scores_output, "box_format": box_format}
    return DetectorOptions(preset, class_agnostic=class_agnostic, normalized=normalized_boxes,
                           **{k: v for k, v in values.items() if v is not None})


def _auto_options(max_accuracy_drop, max_error, validation, auto_choices):
    if max_accuracy_drop is None and max_error is None and validation is None and not auto_choices:
        return None
    from deploykit.quantize import AutoOptions

    choices = tuple(c.strip() for c in (auto_choices or "").split(",") if c.strip())
    return AutoOptions(max_accuracy_drop, max_error, str(validation) if validation else None, "size", choices)
