"""PyTorch -> TFLite with litert-torch (Google's maintained path, successor of ai-edge-torch).

litert-torch refuses TorchScript, so a TorchScript source goes TorchScript -> ONNX (the TorchScript
ONNX exporter, which accepts ScriptModules) -> onnx2tf, and its inputs become NHWC.
"""

from __future__ import annotations

from pathlib import Path

from deploykit.converters import Converted
from deploykit.errors import ConversionError, UnsupportedOperatorError

LABEL = "torch->tflite (litert-torch)"
LABEL_SCRIPT = "torchscript->onnx->tflite (torch.onnx + onnx2tf)"


def convert(source, out_path: Path, options, workspace) -> Converted:
    from deploykit.loaders.torch_loader import example_tensors

    module = source.handle["module"]
    examples = example_tensors(source.inputs)
    if source.handle["torchscript"]:
        return _via_onnx(source, module, examples, out_path, workspace)
    import litert_torch

    from deploykit.tflite_flatbuffer import set_signature

    staging = out_path.with_suffix(".litert.tflite")
    try:
        litert_torch.convert(module, examples).export(str(staging))
    except Exception as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:400]
        if "lower" in text.lower() or "not supported" in text.lower() or "unsupported" in text.lower():
            raise UnsupportedOperatorError(f"{LABEL}: {text}", hint="replace the operator, or convert to coreml only") from exc
        raise ConversionError(f"{LABEL}: {text}", hint="rerun with --verbose to see the converter's log") from exc
    # litert-torch names the signature args_0 / output_0; apps should see the model's own names.
    out_path.write_bytes(set_signature(staging.read_bytes(), [t.name for t in source.inputs], [t.name for t in source.outputs]))
    staging.unlink()
    return Converted(out_path, LABEL)


def _via_onnx(source, module, examples, out_path: Path, workspace) -> Converted:
    from deploykit.converters.onnx2tf_run import named_tflite, onnx2tf_output

    onnx_path = export_torchscript_to_onnx(source, module, examples, workspace)
    out_path.write_bytes(named_tflite(onnx2tf_output(str(onnx_path), source.inputs, workspace), source))
    return Converted(out_path, LABEL_SCRIPT)


def export_torchscript_to_onnx(source, module, examples, workspace) -> Path:
    import torch

    path = workspace.root / f"{source.name}.onnx"
    if path.exists():
        return path
    try:
        torch.onnx.export(module, examples, str(path), dynamo=False, opset_version=17,
                          input_names=[t.name for t in source.inputs], output_names=[t.name for t in source.outputs])
    except Exception as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:400]
        raise UnsupportedOperatorError(f"{LABEL_SCRIPT}: exporting the TorchScript module to ONNX failed: {text}",
                                       hint="export the model with torch.export.save to a .pt2 file instead") from exc
    return path
