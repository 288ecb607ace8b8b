"""The conversion paths, registered by (source framework, target).

Each path is one module with one function ``convert(source, out_path, options, workspace)`` that
writes the artifact at ``out_path`` and returns a :class:`Converted`. Inspection (signature, op
histogram, hash) is shared and happens after, in ``deploykit.pipeline.convert``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from deploykit.core.errors import UsageError

EXECUTORCH_BACKENDS = ("xnnpack", "coreml", "portable")
COREML_TARGETS = ("iOS15", "iOS16", "iOS17", "iOS18", "macOS12", "macOS13", "macOS14", "macOS15")


@dataclass(frozen=True)
class ConvertOptions:
    coreml_target: str = "iOS16"
    coreml_precision: str = "fp32"  # "fp16" for the base of the fp16 and compressed Core ML variants
    coreml_pipeline: object = None  # a coremltools PassPipeline with deploykit's MIL passes, or None (default)
    coreml_fp32_ops: tuple[str, ...] = ()  # ops (saved names) an fp16 program keeps in float32 (quantize.fp16_mixed)
    allow_flex: bool = False  # --allow-flex: keep a TFLite artifact that needs Select-TF (Flex) ops
    executorch_backend: str = "xnnpack"  # --executorch-backend: xnnpack | coreml | portable
    ncnn_fp16: bool = False  # the fp16-storage NCNN variant: pnnx writes its weights as fp16 (targets.ncnn)
    routes: tuple[tuple[str, str], ...] = ()  # --route: (target or "*", route name) pairs (``parse_routes``)


@dataclass(frozen=True)
class Converted:
    path: Path
    converter: str
    notes: tuple[str, ...] = ()
    attempts: tuple = ()  # deploykit.converters.ladder.Attempt, one per rung tried (empty: one direct try)
    parity: object = None  # the kept candidate's fp32 ParityReport when the ladder checked it


@dataclass
class Workspace:
    """A scratch directory for one run, and intermediate products shared between paths
    (onnx2tf's SavedModel feeds both the TFLite and the Core ML artifact of an ONNX model)."""

    root: Path
    products: dict = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    # check(candidate_path, target, variant) -> ParityReport: the fp32 parity check a ladder runs on each
    # candidate (None with --no-verify). progress: where a ladder shows its attempts.
    check: Callable | None = None
    progress: object = None
    # samples(artifact_path, target, prefer=()) -> (feeds in the artifact's names and layout, least scale per output):
    # the parity inputs, for estimates that run an artifact against a modified copy (quantize.fp16_mixed).
    samples: Callable | None = None
    # validation(artifact_path, target) -> quantize.layerwise.metric.Validation: the samples --quantize auto's
    # budget is judged on (--validation, else --calibration, else the parity inputs) with that artifact's outputs.
    validation: Callable | None = None


ConvertFn = Callable[..., Converted]

# (framework, target) -> module that defines convert(); imported only when used.
PATHS: dict[tuple[str, str], str] = {
    ("keras", "tflite"): "deploykit.converters.keras_tflite",
    ("keras", "coreml"): "deploykit.converters.keras_coreml",
    ("torch", "tflite"): "deploykit.converters.torch_tflite",
    ("torch", "coreml"): "deploykit.converters.torch_coreml",
    ("onnx", "tflite"): "deploykit.converters.onnx_tflite",
    ("onnx", "coreml"): "deploykit.converters.onnx_coreml",
    ("torch", "executorch"): "deploykit.converters.torch_executorch",
    ("torch", "ncnn"): "deploykit.converters.torch_ncnn",
    ("onnx", "ncnn"): "deploykit.converters.onnx_ncnn",
}
# (framework, target) -> the distributions that path runs, for the record's tool versions.
PATH_PACKAGES: dict[tuple[str, str], tuple[str, ...]] = {
    ("keras", "tflite"): ("tensorflow",),
    ("torch", "tflite"): ("litert-torch", "onnx2tf", "tensorflow"),
    ("onnx", "tflite"): ("onnx2tf", "onnxsim", "tensorflow"),
    ("onnx", "coreml"): ("onnx2coreml", "onnxsim", "onnx2tf", "tensorflow"),  # onnx2tf: the fallback rung
    ("torch", "ncnn"): ("pnnx", "ncnn"),
    ("onnx", "ncnn"): ("pnnx", "onnxsim", "ncnn"),
}


def check_executorch_backend(value: str) -> str:
    if value.lower() not in EXECUTORCH_BACKENDS:
        raise UsageError(f"unknown ExecuTorch backend {value!r}", hint=f"one of {', '.join(EXECUTORCH_BACKENDS)}")
    return value.lower()


def check_coreml_target(value: str) -> str:
    for known in COREML_TARGETS:
        if value.lower() == known.lower():
            return known
    raise UsageError(f"unknown Core ML deployment target {value!r}", hint=f"one of {', '.join(COREML_TARGETS)}")


def parse_routes(values, targets) -> tuple[tuple[str, str], ...]:
    """``--route`` values: ``NAME`` (every target asked for) or ``TARGET=NAME``, comma-separated or repeated."""
    items = [item.strip() for value in ([values] if isinstance(values, str) else values or ()) for item in value.split(",")]
    routes = []
    for item in filter(None, items):
        target, _, name = item.rpartition("=")
        if target and target not in targets:
            raise UsageError(f"--route {item}: {target!r} is not a target of this conversion",
                             hint=f"targets asked for: {', '.join(targets)}")
        if not name:
            raise UsageError(f"--route {item}: no route name", hint="e.g. --route onnx or --route coreml=torch.export")
        routes.append((target or "*", name))
    return tuple(routes)


def route_for(options: ConvertOptions, target: str) -> str | None:
    """The route ``--route`` forces for ``target``, or None (the whole ladder)."""
    named = [name for where, name in options.routes if where == target]
    anywhere = [name for where, name in options.routes if where == "*"]
    return (named or anywhere or [None])[0]


def path_for(framework: str, target: str) -> ConvertFn:
    module = importlib.import_module(PATHS[(framework, target)])
    return module.convert
