"""Making one (target, scheme) artifact: convert, or derive from the base it shares with its siblings.

TFLite: ``fp32`` is the converter's output after the tflite-stage passes; every other scheme is
ai-edge-quantizer applied to that file. Core ML: ``fp32`` is converted at FLOAT32; ``fp16`` and every
compressed scheme start from one FLOAT16 conversion kept in the workspace (fp16 weights and compute,
the variance of written-out normalizations in fp32: ``coreml_common.FP32_VARIANCE_OPS``; their records
list the op types the base computes in fp32 as ``fp32_ops``). ``parse_quantize`` puts
``fp32`` first, so the TFLite base always exists when a quantized variant is made.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

from deploykit.converters import path_for
from deploykit.passes.apply import apply_tflite_passes, clear_coreml_logs, coreml_pipeline, coreml_records

FP32 = {"scheme": "fp32", "weights": "float32", "activations": "float32"}


@dataclass(frozen=True)
class VariantContext:
    selection: object  # PassSelection
    quantize: object  # QuantizeOptions
    calibration: object = None  # Calibration or None


@dataclass(frozen=True)
class Made:
    path: Path
    converter: str
    quantization: dict
    passes: tuple[dict, ...]
    attempts: tuple = ()  # deploykit.converters.ladder.Attempt, when the path has a ladder


def make(model, target: str, scheme: str, path: Path, options, workspace, context: VariantContext) -> Made:
    if target == "tflite":
        return _tflite(model, scheme, path, options, workspace, context)
    if target == "executorch":
        return _executorch(model, scheme, path, options, workspace, context)
    return _coreml(model, scheme, path, options, workspace, context)


def _executorch(model, scheme, path, options, workspace, context) -> Made:
    """Every ExecuTorch scheme is its own export of the PyTorch module (PT2E quantizes before lowering, so
    there is no fp32 program to derive the others from). The PteRecord is kept for the artifact's record."""
    from deploykit.converters import torch_executorch as et

    calibration = et.calibration_samples(context.calibration, model.inputs) if scheme == "int8" else None
    opts = et.ExecutorchOptions(backend=options.executorch_backend, scheme=scheme, calibration=calibration,
                                coreml_target=options.coreml_target)
    from deploykit.core.flexible import has_flexible, refuse

    if has_flexible(model.inputs):
        raise refuse(model, et.label(opts), "deploykit exports ExecuTorch programs for one size per input")
    record = et.export_pte(model.handle["module"], _examples(model), path, et.check_options(opts),
                           input_names=[t.name for t in model.inputs], output_names=[t.name for t in model.outputs])
    workspace.products[("executorch", str(path))] = record
    quantization = {"scheme": scheme, "backend": record.backend, **(record.quantization or {}),
                    "weights": {"fp32": "float32", "fp16": "float16", "int8": "int8"}[scheme],
                    "activations": {"fp32": "float32", "fp16": "float16", "int8": "int8"}[scheme]}
    return Made(path, et.label(opts, bool(model.handle.get("torchscript"))), quantization, ())


def _examples(model):
    from deploykit.loaders.torch_loader import example_tensors

    return example_tensors(model.inputs)


def _tflite(model, scheme, path, options, workspace, context) -> Made:
    if scheme == "fp32":
        converted = path_for(model.framework, "tflite")(model, path, options, workspace)
        records = _prepared_records(model, workspace) + apply_tflite_passes(converted.path, model.framework,
                                                                            context.selection)
        workspace.products["tflite-fp32"] = (converted.path, converted.converter, records)
        return Made(converted.path, converted.converter, dict(FP32), tuple(records), converted.attempts)
    from deploykit.quantize.tflite import quantize_tflite

    base, label, records = workspace.products["tflite-fp32"]
    record = quantize_tflite(base, path, scheme, context.quantize, context.calibration)
    if scheme != "fp16":
        return Made(path, f"{label} + ai-edge-quantizer", record, tuple(records))
    from deploykit.quantize.fp16_rescue import rescue_fp16

    remade = {}

    def remake(kept, out):
        remade[out] = quantize_tflite(base, out, scheme, context.quantize, context.calibration, fp32_layers=kept)

    rescued = rescue_fp16("tflite", path, base, remake, workspace, f"{label} + ai-edge-quantizer")
    if rescued.kept:
        record = remade[rescued.made_as]
    if rescued.mixed is not None:
        record = {**record, "mixed_precision": rescued.mixed}
    return Made(path, f"{label} + ai-edge-quantizer", record, tuple(records), rescued.attempts)


def _coreml(model, scheme, path, options, workspace, context) -> Made:
    if scheme == "fp32":
        converted, records = _convert_coreml(model, path, options, workspace, context, "fp32")
        workspace.products["coreml-fp32-artifact"] = _plain_copy(converted.path, model, workspace)
        return Made(converted.path, converted.converter, {**FP32, "compute": "float32"}, tuple(records),
                    converted.attempts)
    base, label, records, attempts, fp32 = _fp16_base(model, options, workspace, context)
    if scheme == "fp16":
        shutil.copytree(base, path)
        return Made(path, label, {"scheme": "fp16", "weights": "float16", "activations": "float16", **fp32},
                    tuple(records), attempts)
    from deploykit.converters.coreml_common import fp32_ops
    from deploykit.quantize.coreml import compress_coreml

    record = compress_coreml(base, path, scheme, context.quantize)
    return Made(path, f"{label} + {record['engine']}", {**record, **fp32, "fp32_ops": fp32_ops(path)}, tuple(records),
                attempts)


def _plain_copy(path: Path, model, workspace) -> Path:
    """What an fp16 estimate starts from: the fp32 program as converted. With labels, the artifact itself is
    made a classifier afterwards (``labels.attach``), whose dictionary output no estimate can score."""
    if model.classifier is None or not model.classifier.is_classifier:
        return path
    copy = workspace.root / "coreml-fp32-plain" / path.name
    copy.parent.mkdir()
    shutil.copytree(path, copy)
    return copy


def _fp16_base(model, options, workspace, context):
    """The FLOAT16 conversion every fp16-based Core ML variant starts from, and its fp32 ops: the op types
    the program declares fp32 (``coreml_common.fp32_ops``), which is what the evaluator computes them in."""
    key = "coreml-fp16"
    if key not in workspace.products:
        from deploykit.converters.coreml_common import FP32_VARIANCE_OPS, fp32_ops

        base = workspace.root / "coreml-fp16" / "base.mlpackage"
        base.parent.mkdir()
        converted, records = _convert_coreml(model, base, options, workspace, context, "fp16")
        attempts, mixed = converted.attempts, {}
        fp32_artifact = workspace.products.get("coreml-fp32-artifact")
        if fp32_artifact is not None:
            attempts, mixed = _mixed_coreml(model, converted, fp32_artifact, options, workspace, context)
        fp32 = {"fp32_ops": fp32_ops(converted.path), "fp32_rule": FP32_VARIANCE_OPS, **mixed}
        workspace.products[key] = (converted.path, converted.converter, records, attempts, fp32)
    return workspace.products[key]


def _mixed_coreml(model, converted, fp32_artifact: Path, options, workspace, context):
    """(attempts, record entries): the fp16 base, made again with layers in float32 if it fails (fp16_rescue)."""
    from deploykit.converters.coreml_common import fp32_layers
    from deploykit.quantize.fp16_rescue import rescue_fp16

    def remake(kept, out):
        converted, _ = _convert_coreml(model, out, dataclasses.replace(options, coreml_fp32_ops=tuple(kept)), workspace,
                                       context, "fp16")
        return converted.parity  # the ladder checked it as fp16 already

    rescued = rescue_fp16("coreml", converted.path, fp32_artifact, remake, workspace, converted.converter,
                          report=converted.parity)
    if rescued.mixed is None:
        return converted.attempts, {}
    attempts, record = converted.attempts + rescued.attempts[1:], {"mixed_precision": rescued.mixed}
    if rescued.mixed["verdict"] != "passed":
        weights = _fp16_weights_coreml(converted, fp32_artifact, workspace)
        attempts += weights.attempts[1:]
        if weights.mixed is not None:
            record["mixed_precision"] = {**weights.mixed, "compute_fp16": rescued.mixed}
        if weights.made_as is not None:
            return attempts, {**record, "activations": "float32", "compute": "float32 (fp16 weights cast at load)",
                              "fp32_weights": list(weights.kept)}
    return attempts, {**record, "fp32_layers": fp32_layers(converted.path)}


def _fp16_weights_coreml(converted, fp32_artifact: Path, workspace):
    """The last Core ML fp16 candidate: fp16 weights, float32 compute (``coreml_fp16_weights``)."""
    from deploykit.quantize.coreml_fp16_weights import write_fp16_weights
    from deploykit.quantize.fp16_rescue import rescue_fp16

    def remake(kept, out):
        write_fp16_weights(fp32_artifact, out, tuple(kept))

    return rescue_fp16("coreml", converted.path, fp32_artifact, remake, workspace,
                       f"{converted.converter} + fp16 weights", report=converted.parity, estimator="coreml-weights")


def _convert_coreml(model, path: Path, options, workspace, context, precision: str):
    pipeline, names = coreml_pipeline(model.framework, context.selection)
    clear_coreml_logs()
    options = dataclasses.replace(options, coreml_precision=precision, coreml_pipeline=pipeline)
    converted = path_for(model.framework, "coreml")(model, path, options, workspace)
    if model.images:
        from deploykit.image_io.coreml_image import declare_image_inputs

        declare_image_inputs(converted.path, model.images)
    return converted, _prepared_records(model, workspace) + coreml_records(names)


def _prepared_records(model, workspace) -> list[dict]:
    if model.framework != "onnx":
        return []
    from deploykit.converters.onnx_prepare import recorded_steps

    return recorded_steps(model, workspace)
