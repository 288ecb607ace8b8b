"""Versions of the tools a run used, read from package metadata (no imports)."""

from __future__ import annotations

from importlib import metadata

TOOL_PACKAGES = {
    "keras": ("tensorflow", "keras"),
    "torch": ("torch",),
    "onnx": ("onnx", "onnxruntime"),
    "tflite": ("ai-edge-litert",),
    "coreml": ("coremltools",),
    "executorch": ("executorch", "torchao"),  # torchao: PT2E int8
}
PATH_PACKAGES = {
    ("keras", "tflite"): ("tensorflow",),
    ("torch", "tflite"): ("litert-torch", "onnx2tf", "tensorflow"),
    ("onnx", "tflite"): ("onnx2tf", "onnxsim", "tensorflow"),
    ("onnx", "coreml"): ("onnx2coreml", "onnxsim", "onnx2tf", "tensorflow"),  # onnx2tf: the fallback rung
}


def version_of(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def tool_versions(framework: str, targets: tuple[str, ...]) -> dict[str, str]:
    from deploykit import __version__

    packages = {"numpy", *TOOL_PACKAGES.get(framework, ())}
    for target in targets:
        packages.update(TOOL_PACKAGES.get(target, ()))
        packages.update(PATH_PACKAGES.get((framework, target), ()))
    versions = {p: version_of(p) for p in sorted(packages)}
    versions["deploykit"] = __version__
    return versions
