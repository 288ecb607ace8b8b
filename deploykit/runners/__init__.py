"""Runners: one per framework and artifact type, each a context manager with ``infer(feeds)``.

    runner_for_source(model)          # Keras, PyTorch or ONNX Runtime (onnx's reference evaluator where the
                                      # loader chose it: source.opset["reference"]), on the already loaded model
    targets.runner_for(path)          # an artifact's runner, as its target says (deploykit.targets): LiteRT for
                                      # .tflite, Core ML (MLModel or numpy evaluator) for .mlpackage, the
                                      # ExecuTorch runtime (child process) for .pte

Frameworks are imported when a runner activates, not when this package is imported.
"""

from __future__ import annotations

from deploykit.core.errors import UsageError
from deploykit.runners.base import Intermediate, Runner

__all__ = ["Intermediate", "Runner", "runner_for_source"]


def runner_for_source(model) -> Runner:
    """The runner for a loaded ``SourceModel``; it reuses ``model.handle`` (the model is never loaded twice)."""
    if model.handle is None:
        raise UsageError(f"source {model.path} is not loaded (SourceModel.handle is None)",
                         hint="load it with deploykit.load_source")
    if model.framework == "keras":
        from deploykit.runners.keras_runner import KerasRunner

        return KerasRunner(model)
    if model.framework == "torch":
        from deploykit.runners.torch_runner import TorchRunner

        return TorchRunner(model)
    if model.framework == "onnx" and (model.opset or {}).get("reference") == "onnx.reference":
        from deploykit.runners.onnx_reference_runner import OnnxReferenceRunner

        return OnnxReferenceRunner(model)
    if model.framework == "onnx":
        from deploykit.runners.onnxrt_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(model)
    raise UsageError(f"no runner for source framework {model.framework!r}")
