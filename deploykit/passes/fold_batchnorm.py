"""The ``fold_batchnorm`` source pass, dispatched to one module per framework.

Measured (docs/quantization.md, "What the converters already do"): every converter folds
Conv/DepthwiseConv + BatchNorm, and TFLiteConverter, litert-torch and onnx2tf also fold
Dense/Linear/Gemm + BatchNorm. coremltools does not fold a BatchNorm after a Dense / Linear / Gemm
on any frontend (Keras leaves ``matmul, mul, add``, PyTorch leaves ``linear, batch_norm``, ONNX via
onnx2tf leaves ``linear, mul, add``), so ``auto`` runs this pass for Core ML targets only.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from deploykit.passes.registry import PassResult, register_pass

_IMPLEMENTATIONS = {
    "keras": "deploykit.passes.fold_batchnorm_keras",
    "torch": "deploykit.passes.fold_batchnorm_torch",
    "onnx": "deploykit.passes.fold_batchnorm_onnx",
}


@dataclass(frozen=True)
class BatchNormSite:
    """One batch norm in a source graph and whether it can fold into the layer before it."""

    name: str
    channels: int
    producer: str | None  # the conv / dense / linear / gemm before it, when foldable
    producer_has_bias: bool = False
    foldable: bool = True
    reason: str = ""  # why not foldable
    parameters: int = 0  # values the batch norm stores (gamma, beta, mean, variance)

    @property
    def deployed_parameters(self) -> int:
        """Values it needs once deployed: none when folded into a producer that has a bias, one per
        channel (the new bias) when folded into one without, scale and shift when not foldable."""
        if self.foldable:
            return 0 if self.producer_has_bias else self.channels
        return 2 * self.channels

    @property
    def label(self) -> str:
        return f"{self.producer} + {self.name}" if self.producer else self.name


@dataclass(frozen=True)
class PassContext:
    """Where a source pass may write files (an ONNX model is converted from a path)."""

    workspace: Path
    target: str = ""


def _implementation(framework: str):
    return importlib.import_module(_IMPLEMENTATIONS[framework])


def batchnorm_sites(source) -> list[BatchNormSite]:
    """Every batch norm of ``source`` (foldable or not). Empty when the graph cannot be read
    (a Keras SavedModel keeps no layer graph)."""
    return _implementation(source.framework).sites(source)


@register_pass(
    "fold_batchnorm",
    stage="source",
    needed_for={("keras", "coreml"), ("torch", "coreml"), ("onnx", "coreml")},
    summary="Fold inference-mode BatchNorm into the Conv / DepthwiseConv / Dense / Linear / Gemm before it.",
)
def fold_batchnorm(source, context: PassContext) -> PassResult:
    """Fold inference-mode BatchNorm into the Conv / DepthwiseConv / Dense / Linear / Gemm before it.

    Given:
        %1 = conv(%x, weight=W, bias=b)          # or depthwise conv, dense, linear, gemm
        %2 = batch_norm(%1, gamma, beta, mean, var, eps)
    Result:
        %2 = conv(%x, weight=W * s, bias=(b - mean) * s + beta)    where s = gamma / sqrt(var + eps)

    Applies only when the batch norm normalizes the producer's output channels, the producer's
    output feeds nothing else and is not a model output, and the producer has no activation of its
    own. Keras: functional and Sequential models (a SavedModel has no layer graph and is left as is).
    PyTorch: the exported graph (``.pt2`` and entry points, via torch.export) or, for TorchScript,
    ``torch.jit.freeze``. ONNX: Conv / Gemm followed by BatchNormalization with constant statistics.
    """
    return _implementation(source.framework).fold(source, context)
