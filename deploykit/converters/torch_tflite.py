"""PyTorch -> TFLite: a ladder of two routes, the first whose artifact converts and passes parity kept.

1. ``litert-torch``: Google's maintained path (successor of ai-edge-torch), from the module or program.
2. ``onnx``: the module exported to ONNX (``converters.onnx_export``), then the ONNX -> TFLite ladder
   (onnx2tf and its remedies); its inputs become NHWC, recorded as such and transposed by the checks.

litert-torch refuses TorchScript, so a TorchScript source takes the ONNX route only (the TorchScript ONNX
exporter, which accepts ScriptModules). Inputs with flexible sizes take the litert-torch route only.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from deploykit.converters import Converted
from deploykit.converters.ladder import Rung
from deploykit.core.errors import ConversionError, UnsupportedOperatorError
from deploykit.core.flexible import has_flexible, refuse

LABEL = "torch->tflite (litert-torch)"


def rungs(source, options, workspace) -> list[Rung]:
    from deploykit.converters.onnx_export import onnx_route

    ladder = []
    if not source.handle["torchscript"]:
        ladder.append(Rung("litert-torch", LABEL, lambda path: _via_litert(source, path), "litert-torch"))
    if not has_flexible(source.inputs):
        ladder.append(onnx_route(source, "tflite", options, workspace))
    return ladder


def convert(source, out_path: Path, options, workspace) -> Converted:
    from deploykit.converters.onnx_tflite import climb_tflite

    if source.handle["torchscript"] and has_flexible(source.inputs):
        raise refuse(source, "torchscript->onnx->tflite", "a TorchScript module is exported to ONNX and onnx2tf, "
                                                          "which need every dimension known")
    return climb_tflite(rungs(source, options, workspace), out_path, options, workspace, "PyTorch -> TFLite")


def _via_litert(source, out_path: Path) -> None:
    from deploykit.converters.litert_torch_facade import export_tflite
    from deploykit.formats.tflite.flatbuffer import set_signature
    from deploykit.loaders.torch_loader import example_tensors

    module = source.handle["module"]
    examples = example_tensors(source.inputs)
    staging = out_path.with_suffix(".litert.tflite")
    try:
        if has_flexible(source.inputs):
            examples, dynamic = dynamic_examples(source.inputs)
            export_tflite(module, examples, staging, dynamic)
        else:
            export_tflite(module, examples, staging)
    except Exception as exc:
        staging.unlink(missing_ok=True)
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:400]
        if has_flexible(source.inputs) and ("Constraints violated" in text or "specializ" in text):
            raise ConversionError(f"{LABEL}: torch.export cannot keep the flexible sizes: {text}{_suggestion(exc)}",
                                  hint="the model computes with a size it was given (a reshape to fixed numbers, a "
                                       "stride that needs multiples); narrow the sizes or enumerate the ones it takes") from exc
        if "lower" in text.lower() or "not supported" in text.lower() or "unsupported" in text.lower():
            raise UnsupportedOperatorError(f"{LABEL}: {text}", hint="replace the operator, or convert to coreml only") from exc
        raise ConversionError(f"{LABEL}: {text}", hint="rerun with --verbose to see the converter's log") from exc
    # litert-torch names the signature args_0 / output_0; apps should see the model's own names.
    named = set_signature(staging.read_bytes(), [t.name for t in source.inputs], [t.name for t in source.outputs])
    if has_flexible(source.inputs):
        from deploykit.formats.tflite.dynamic import mark_dynamic_outputs

        named = mark_dynamic_outputs(named, source.inputs)
    out_path.write_bytes(named)
    staging.unlink()


def dynamic_examples(inputs):
    """(example tensors, torch.export dynamic_shapes) for inputs with flexible sizes.

    torch.export specialises an example dimension of 0 or 1 to a constant, so a flexible dimension's
    example is at least 2 (the low end of a (1..8) batch would freeze it at 1)."""

    from deploykit.core.flexible import flexible_of
    from deploykit.loaders.torch_loader import example_tensors

    specs, dynamic = [], []
    for index, spec in enumerate(inputs):
        flexible = flexible_of(spec)
        if flexible is None:
            specs.append(spec)
            dynamic.append(None)
            continue
        shape, dims = list(spec.shape), {}
        for axis, (low, high) in enumerate(flexible.dim_bounds):
            if low != high:
                dims[axis], shape[axis] = _export_dim(f"{_identifier(spec.name)}_{axis}", flexible, axis)
        specs.append(replace(spec, shape=tuple(shape)))
        dynamic.append(dims)
    return example_tensors(tuple(specs)), tuple(dynamic)


def _suggestion(exc) -> str:
    """torch.export's own "Suggested fixes" (e.g. ``size = 2*_size``: the model takes even sizes only), on one line."""
    lines = str(exc).splitlines()
    if "Suggested fixes:" not in [line.strip() for line in lines]:
        return ""
    start = [line.strip() for line in lines].index("Suggested fixes:") + 1
    fixes = []
    for line in lines[start:]:
        if not line.strip():
            break
        fixes.append(line.strip())
    return f" (torch.export suggests: {'; '.join(fixes[:4])})" if fixes else ""


def _export_dim(name: str, flexible, axis: int):
    """(torch.export's dimension, the example size) for one flexible axis.

    Enumerated sizes with a common factor k become ``k * Dim(low / k, high / k)``: a model with stride-2 or
    ceil-mode pooling guards on odd sizes (MTCNN's P-Net: "not all values ... satisfy the generated
    guard"), and the sizes asked for never need them. The example's size (its quotient, for a factor) is
    at least 2, since torch.export freezes a dimension whose example is 0 or 1."""
    import math

    import torch

    low, high = flexible.dim_bounds[axis]
    if flexible.kind == "enumerated":
        values = sorted({shape[axis] for shape in flexible.shapes})
        factor = math.gcd(*values)
        if factor > 1 and high // factor >= 2:
            example = next(v for v in values if v // factor >= 2)
            return factor * torch.export.Dim(name, min=max(low // factor, 1), max=high // factor), example
    return torch.export.Dim(name, min=low, max=high), max(low, 2)


def _identifier(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name) or "input"
