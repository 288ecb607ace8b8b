"""The small frozen records that flow between stages. No framework imports here."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Shape = tuple  # of int (static) or None (dynamic)


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as an app sees it.

    ``layout`` is "NCHW", "NHWC" or None when the tensor is not image-like (rank != 4)
    or its layout cannot be known.
    """

    name: str
    shape: Shape
    dtype: str = "float32"
    layout: str | None = None
    quantization: tuple[float, int] | None = None  # (scale, zero_point) for integer tensors
    original_name: str | None = None  # the source's name, when the artifact had to rename it (deploykit.core.names)
    image: dict[str, Any] | None = None  # an artifact's pixel input: deploykit.image_io.ImageInput.to_json()
    # The sizes an input accepts besides ``shape`` (its default): deploykit.core.flexible.FlexibleShape.to_json()
    flexible: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "layout": self.layout}
        if self.original_name is not None:
            data["original_name"] = self.original_name
        if self.image is not None:
            data["image"] = dict(self.image)
        if self.flexible is not None:
            data["flexible"] = dict(self.flexible)
        if self.quantization is not None:
            data["quantization"] = {"scale": self.quantization[0], "zero_point": self.quantization[1]}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TensorSpec":
        quant = data.get("quantization")
        return cls(
            name=data["name"],
            shape=tuple(data["shape"]),
            dtype=data.get("dtype", "float32"),
            layout=data.get("layout"),
            quantization=(quant["scale"], quant["zero_point"]) if quant else None,
            original_name=data.get("original_name"),
            image=data.get("image"),
            flexible=data.get("flexible"),
        )

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) and d > 0 for d in self.shape)


@dataclass(frozen=True)
class SourceModel:
    """A loaded source model. ``handle`` is the framework object (keras.Model, torch.nn.Module,
    onnx.ModelProto, or a SavedModel path) and is never serialized."""

    framework: str  # "keras" | "torch" | "onnx"
    format: str  # "keras" | "savedmodel" | "h5" | "pt2" | "torchscript" | "entrypoint" | "onnx"
    path: str
    sha256: str
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    handle: Any = field(default=None, compare=False, repr=False)
    images: tuple = ()  # deploykit.image_io.ImageInput per input the artifacts take as pixels (--image-input)
    classifier: Any = None  # deploykit.labels.Classifier (--labels): the output whose classes have labels
    # ONNX: the file's opset and what ran it: {"file": 6, "upgraded_to": 13} (the graph every stage got), or
    # {"file": 6, "not_upgraded": why, "reference": "onnxruntime" | "onnx.reference"} (deploykit.loaders.onnx_loader)
    opset: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data = {
            "path": self.path,
            "framework": self.framework,
            "format": self.format,
            "sha256": self.sha256,
            "name": self.name,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
        }
        if self.images:
            data["image_inputs"] = {image.name: image.to_json() for image in self.images}
        if self.classifier is not None:
            data["classifier"] = self.classifier.to_json()
        if self.opset is not None:  # records of other sources stay as they were
            data["opset"] = dict(self.opset)
        return data


@dataclass(frozen=True)
class Artifact:
    """One converted file (``.tflite``) or directory (``.mlpackage``) with everything known about it.

    ``path`` is relative to the report's directory once written to ``--out``.
    """

    target: str  # "tflite" | "coreml"
    variant: str  # "fp32" until quantization; then "fp16", "int8", "lut4", ...
    path: str
    size_bytes: int
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    converter: str  # the registered conversion path, e.g. "onnx->tflite (onnx2tf)"
    conversion_seconds: float
    op_histogram: dict[str, int]
    layout_changes: tuple[str, ...] = ()  # human-readable, e.g. "input 'x': NCHW -> NHWC"
    deployment_target: str | None = None
    quantization: dict[str, Any] | None = None
    passes: tuple[dict[str, Any], ...] = ()
    parity: dict[str, Any] | None = None
    size_limit: dict[str, Any] | None = None
    attempts: tuple[dict[str, Any], ...] = ()  # the conversion ladder's attempts (deploykit.converters.ladder)
    select_tf_ops: tuple[str, ...] = ()  # Flex ops a TFLite artifact needs (only with --allow-flex)
    classifier: dict[str, Any] | None = None  # labels.Classifier.to_json() and how this artifact carries them
    # --detector: detection.record.detector_block (preset, parameters, the outputs' convention, the fitted head)
    detector: dict[str, Any] | None = None
    # Host latency: {"source": "litert", "median_ms", ...} measured, or for Core ML {"source": "estimate", ...}
    # from the op-count cost model (deploykit.report.latency); {"unavailable": why} when neither could be had.
    latency: dict[str, Any] | None = None
    # Per accelerator of the target, the ops it takes and those it refuses with the analyzer's reason
    # (Target.compatibility, docs/compatibility.md); {"unavailable": why} when the analysis failed.
    compatibility: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [t.to_json() for t in self.inputs]
        data["outputs"] = [t.to_json() for t in self.outputs]
        data["layout_changes"] = list(self.layout_changes)
        data["passes"] = list(self.passes)
        data["attempts"] = list(self.attempts)
        data["select_tf_ops"] = list(self.select_tf_ops)
        if self.detector is None:
            del data["detector"]  # records of other models stay as they were
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Artifact":
        data = dict(data)
        data["inputs"] = tuple(TensorSpec.from_json(t) for t in data["inputs"])
        data["outputs"] = tuple(TensorSpec.from_json(t) for t in data["outputs"])
        data["layout_changes"] = tuple(data.get("layout_changes", ()))
        data["passes"] = tuple(data.get("passes", ()))
        data["attempts"] = tuple(data.get("attempts", ()))
        data["select_tf_ops"] = tuple(data.get("select_tf_ops", ()))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Attempt:
    """One try of a conversion ladder or an fp16 rescue: which remedy, what came of it (``converters.ladder``)."""

    name: str
    converter: str
    seconds: float
    outcome: str  # "kept" | "parity-failed" | "failed" | "converted" (kept-as-fallback, not checked)
    error: str | None = None
    parity: dict | None = None  # ParityReport.to_summary() of the candidate

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}



@dataclass(frozen=True)
class ModelDescription:
    """What an app's developer reads about a model, as bundles and embedded metadata state it. ``inputs`` and
    ``outputs`` are the manifest's io tensors (dicts); ``labels`` one per class, or None."""

    name: str
    version: str
    description: str
    author: str
    license: str
    inputs: tuple[dict[str, Any], ...]
    outputs: tuple[dict[str, Any], ...]
    labels: tuple[str, ...] | None

    def description_fields(self) -> dict[str, Any]:
        """This record's own fields (a subclass's extras left out), to build another description from."""
        return {name: getattr(self, name) for name in ModelDescription.__dataclass_fields__}


REPORT_SCHEMA = "deploykit.report/1"
REPORT_FILENAME = "deploykit-report.json"


@dataclass(frozen=True)
class ConversionReport:
    """What ``deploykit convert`` did: the source, every artifact, and the tools that made them."""

    source: dict[str, Any]
    artifacts: tuple[Artifact, ...]
    tool_versions: dict[str, str]
    deploykit_version: str
    total_seconds: float
    failures: tuple[dict[str, Any], ...] = ()  # artifacts that could not be made: target, variant, error, attempts
    inspection: dict[str, Any] | None = None  # the source's figures (deploykit.inspection), or {"unavailable": why}

    def to_json(self) -> dict[str, Any]:
        return {
            "failures": list(self.failures),
            "inspection": self.inspection,
            "schema": REPORT_SCHEMA,
            "deploykit_version": self.deploykit_version,
            "source": self.source,
            "tool_versions": self.tool_versions,
            "total_seconds": self.total_seconds,
            "artifacts": [a.to_json() for a in self.artifacts],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ConversionReport":
        return cls(
            source=data["source"],
            artifacts=tuple(Artifact.from_json(a) for a in data["artifacts"]),
            tool_versions=data.get("tool_versions", {}),
            deploykit_version=data.get("deploykit_version", "?"),
            total_seconds=data.get("total_seconds", 0.0),
            failures=tuple(data.get("failures", ())),
            inspection=data.get("inspection"),
        )

    @property
    def ok(self) -> bool:
        return not self.failures and all(a.parity is None or a.parity.get("passed", False) or "skipped" in a.parity
                                         for a in self.artifacts)


def recorded_entry(path: Path) -> Artifact | None:
    """This artifact's entry in the deploykit-report.json beside it, if any (matched by file name)."""
    report = path.parent / REPORT_FILENAME
    if not report.is_file():
        return None
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
        entries = data.get("artifacts", [])
    except (OSError, ValueError, AttributeError):
        return None
    for entry in entries:
        if isinstance(entry, dict) and Path(str(entry.get("path", ""))).name == path.name:
            try:
                return Artifact.from_json(entry)
            except (KeyError, TypeError, ValueError):
                return None
    return None
