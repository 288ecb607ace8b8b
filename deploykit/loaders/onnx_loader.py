"""ONNX sources, including external data that stays inside the model's directory.

Every tensor's external ``location`` is checked before any byte is read: relative, no ``..``, no
symlink or hard link, and its real path inside the model's directory (CVE-2022-25882, CVE-2024-27318).
"""

from __future__ import annotations

import os
from pathlib import Path

from deploykit.core.errors import InputError, UnsafeInputError
from deploykit.core.hashing import sha256_file
from deploykit.core.types import SourceModel, TensorSpec
from deploykit.loaders.shapes import resolve_inputs


def load(path: str, given: dict) -> SourceModel:
    import onnx

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:
        raise InputError(f"cannot parse {path} as ONNX: {str(exc).splitlines()[0][:300]}") from exc
    broken = next(_non_utf8_strings(model), None)
    if broken is not None:
        field, value = broken
        raise InputError(f"{path} is not a valid ONNX model: {field} {value!r} is not UTF-8 text",
                         hint="the file was changed after it was saved; export the model again")
    base = Path(path).resolve().parent
    locations = external_locations(model)
    for location in locations:
        check_external_location(base, location)
    if locations:
        try:
            onnx.external_data_helper.load_external_data_for_model(model, str(base))
        except Exception as exc:
            raise InputError(f"cannot read external data of {path}: {str(exc).splitlines()[0][:300]}") from exc
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise InputError(f"{path} is not a valid ONNX model: {str(exc).splitlines()[0][:300]}") from exc
    initializers = {t.name for t in model.graph.initializer}
    declared = [_spec(v) for v in model.graph.input if v.name not in initializers]
    inputs = resolve_inputs(declared, given, framework="onnx")
    outputs = _run_outputs(model, inputs, path)
    name = (model.graph.name if model.graph.name and model.graph.name not in ("main_graph", "torch_jit", "graph")
            else Path(path).stem)
    digest = sha256_file(path)
    return SourceModel("onnx", "onnx", path, digest, Path(path).stem or name, inputs, outputs, handle=model)


def _non_utf8_strings(message):
    """(field, value) of every string field protobuf could not decode as UTF-8, depth first.

    onnx's protobuf messages are proto2, where a damaged string stays readable as ``bytes``; the
    checker and ONNX Runtime accept it, and the converters then fail on it far from the cause.
    Fields are read by descriptor so tensor payloads (``raw_data`` is bytes, not string) are not copied.
    """
    for field in message.DESCRIPTOR.fields:
        # ``label`` is gone from recent protobuf; ``is_repeated`` is missing from old ones
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
        if field.type == field.TYPE_STRING:
            for value in getattr(message, field.name) if repeated else [getattr(message, field.name)]:
                if isinstance(value, bytes):
                    yield field.full_name, value
        elif field.type == field.TYPE_MESSAGE:
            if repeated:
                children = getattr(message, field.name)
            else:
                children = [getattr(message, field.name)] if message.HasField(field.name) else []
            for child in children:
                yield from _non_utf8_strings(child)


def external_locations(model) -> list[str]:
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    locations = []
    for tensor in _get_all_tensors(model):
        if uses_external_data(tensor):
            entries = {e.key: e.value for e in tensor.external_data}
            locations.append(entries.get("location", ""))
    return sorted(set(locations))


def check_external_location(base: Path, location: str) -> Path:
    bad = (
        not location
        or "\x00" in location
        or os.path.isabs(location)
        or location.startswith(("/", "\\"))
        or (len(location) > 1 and location[1] == ":")
        or ".." in Path(location.replace("\\", "/")).parts
    )
    if bad:
        raise UnsafeInputError(f"ONNX external data location {location!r} escapes the model's directory",
                               hint="external data files must sit beside the model, referenced by a relative path")
    target = base / location
    if target.is_symlink():
        raise UnsafeInputError(f"ONNX external data {location!r} is a symbolic link; deploykit refuses links")
    resolved = target.resolve()
    if base not in resolved.parents:
        raise UnsafeInputError(f"ONNX external data location {location!r} resolves outside the model's directory")
    if not resolved.is_file():
        raise InputError(f"ONNX external data file {location!r} is missing next to the model")
    if resolved.stat().st_nlink > 1:
        raise UnsafeInputError(f"ONNX external data {location!r} is a hard link; deploykit refuses links")
    return resolved


def _spec(value_info) -> TensorSpec:
    from onnx import helper

    tensor_type = value_info.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor_type.shape.dim)
    dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name if tensor_type.elem_type else "float32"
    return TensorSpec(value_info.name, shape, dtype)


def _run_outputs(model, inputs, path: str) -> tuple[TensorSpec, ...]:
    """Run ONNX Runtime once on zeros: output shapes are often symbolic in the graph."""
    import numpy as np
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        feeds = {t.name: np.zeros(t.shape, dtype=t.dtype) for t in inputs}
        results = session.run(None, feeds)
    except Exception as exc:
        raise InputError(f"ONNX Runtime cannot run {path}: {str(exc).splitlines()[0][:300]}",
                         hint="check --input shapes, or that the model uses standard ONNX operators") from exc
    return tuple(
        TensorSpec(o.name, tuple(r.shape), r.dtype.name, "NCHW" if r.ndim == 4 else None)
        for o, r in zip(session.get_outputs(), results)
    )
