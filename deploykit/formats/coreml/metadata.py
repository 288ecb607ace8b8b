"""Metadata inside an .mlpackage: what Xcode's model viewer and ``MLModel.modelDescription`` show.

Written into the package's model specification (``Data/<root item>/model.mlmodel``, found through the
package's Manifest.json): author, license, short description, version string, a description per input
and output, and user-defined entries ``com.deploykit.*`` (name, version, sequence, variant, the class
labels as a JSON array, and each input's normalization as JSON). Apps read them with
``model.modelDescription.metadata[.creatorDefinedKey]``.

Decisions:
- We edit the protobuf in place instead of ``MLModel.save()``: saving regenerates Manifest.json with
  fresh random UUIDs, which would make bundles irreproducible. Protobuf is serialized with
  ``deterministic=True``; Manifest.json and the weights are copied byte for byte.
- Class labels go into user-defined metadata, not into a classifier head: making a plain mlprogram a
  Core ML classifier means adding a ``classify`` op, which changes the model's outputs (a string label
  and a probability dictionary instead of the logits tensor the parity check verified). Pass class
  labels at conversion time for a real classifier; the bundle ships labels.txt either way.
- The coremltools generated protobuf modules are imported under a private package name, without
  running ``coremltools/__init__`` (which imports TensorFlow and PyTorch: ~9 s for a few fields).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploykit.core.errors import InputError, UnsafeInputError
from deploykit.core.types import ModelDescription


@dataclass(frozen=True)
class CoremlMetadata(ModelDescription):
    sequence: int
    variant: str


def _model_pb2():
    """Core ML's protobuf classes without importing all of coremltools (one loader for the whole package)."""
    from deploykit.formats.coremltools_facade import model_pb2

    try:
        return model_pb2()
    except ImportError as exc:
        raise InputError("coremltools is not installed; it is needed to bundle .mlpackage artifacts") from exc


def spec_path(package: Path) -> Path:
    """The root model specification file named by the package's Manifest.json."""
    try:
        manifest = json.loads((package / "Manifest.json").read_text("utf-8"))
        item = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]
        relative = item["path"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{package} is not a valid .mlpackage (Manifest.json: {exc})") from None
    parts = Path(relative).parts
    if Path(relative).is_absolute() or ".." in parts:
        raise UnsafeInputError(f"{package}/Manifest.json points outside the package: {relative!r}")
    path = package / "Data" / relative
    if not path.is_file():
        raise InputError(f"{package}: model specification {path} is missing")
    return path


def copy_package(src: Path, dst: Path) -> None:
    """Copy an .mlpackage tree, refusing symlinks (a package is files only; a link could point anywhere)."""
    for path in sorted(src.rglob("*")):
        if path.is_symlink():
            raise UnsafeInputError(f"{path} is a symbolic link; .mlpackage artifacts must contain only files")
    shutil.copytree(src, dst, symlinks=True)


def read_spec(package: Path):
    spec = _model_pb2().Model()
    spec.ParseFromString(spec_path(package).read_bytes())
    return spec


def embed(package: Path, meta: CoremlMetadata) -> None:
    """Write ``meta`` into the specification of ``package`` (a private copy) in place."""
    spec = read_spec(package)
    description = spec.description
    info = description.metadata
    info.author, info.license = meta.author, meta.license
    info.shortDescription, info.versionString = meta.description, meta.version
    user = info.userDefined
    user["com.deploykit.name"] = meta.name
    user["com.deploykit.version"] = meta.version
    user["com.deploykit.sequence"] = str(meta.sequence)
    user["com.deploykit.variant"] = meta.variant
    if meta.labels:
        user["com.deploykit.labels"] = json.dumps(list(meta.labels), ensure_ascii=False)
    normalization = {t["name"]: t["normalization"] for t in meta.inputs if t.get("normalization")}
    if normalization:
        user["com.deploykit.normalization"] = json.dumps(normalization, sort_keys=True)
    preprocessing = {t["name"]: t["preprocessing"] for t in meta.inputs if t.get("preprocessing")}
    if preprocessing:
        user["com.deploykit.preprocessing"] = json.dumps(preprocessing, sort_keys=True)
    _describe_features(description.input, meta.inputs, "Input")
    _describe_features(description.output, meta.outputs, "Output")
    spec_path(package).write_bytes(spec.SerializeToString(deterministic=True))


def _describe_features(features, specs: tuple[dict[str, Any], ...], kind: str) -> None:
    by_name = {t["name"]: t for t in specs}
    for index, feature in enumerate(features):
        tensor = by_name.get(feature.name) or (specs[index] if index < len(specs) else None)
        if tensor is None:
            continue
        shape = "x".join("?" if d is None else str(d) for d in tensor.get("shape", []))
        text = f"{kind} {tensor['name']}: {tensor.get('dtype')} [{shape}] {tensor.get('layout') or ''}".strip()
        if tensor.get("normalization"):
            norm = tensor["normalization"]
            text += f"; normalize (x - {norm['mean']}) / {norm['std']}"
        if tensor.get("labels"):
            text += f"; {tensor['labels']['count']} class scores, labels in com.deploykit.labels"
        feature.shortDescription = text


def read_metadata(package: Path) -> dict[str, Any]:
    spec = read_spec(package)
    info = spec.description.metadata
    return {
        "author": info.author, "license": info.license, "description": info.shortDescription,
        "version": info.versionString, "user_defined": dict(info.userDefined),
        "inputs": {f.name: f.shortDescription for f in spec.description.input},
        "outputs": {f.name: f.shortDescription for f in spec.description.output},
        "specification_version": spec.specificationVersion,
    }
