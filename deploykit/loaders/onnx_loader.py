"""ONNX sources, including external data that stays inside the model's directory.

Every tensor's external ``location`` is checked before any byte is read: relative, no ``..``, no
symlink or hard link, and its real path inside the model's directory (CVE-2022-25882, CVE-2024-27318).

A graph older than opset 13 is upgraded (``loaders.onnx_upgrade``) before anything runs it: the loaded
``handle`` is the upgraded graph, which ONNX Runtime (the parity reference) and every converter then take.
When it cannot be upgraded, or ONNX Runtime cannot run the upgraded graph, the file's own graph is kept and
run as it is: by ONNX Runtime where its old kernels still exist, else by onnx's reference evaluator
(``runners.onnx_reference_runner``). ``SourceModel.opset`` records which: ``{"file": 6, "upgraded_to": 13}``,
or ``{"file": 6, "not_upgraded": why, "reference": "onnx.reference"}``.
"""

from __future__ import annotations

import os
from pathlib import Path

from deploykit.core.errors import InputError, UnsafeInputError
from deploykit.core.hashing import sha256_file
from deploykit.core.types import SourceModel, TensorSpec
from deploykit.loaders.onnx_upgrade import upgrade
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
    upgraded, opset = upgrade(model)
    model, outputs, opset = _run_outputs(model, upgraded, opset, inputs, path)
    name = (model.graph.name if model.graph.name and model.graph.name not in ("main_graph", "torch_jit", "graph")
            else Path(path).stem)
    digest = sha256_file(path)
    return SourceModel("onnx", "onnx", path, digest, Path(path).stem or name, inputs, outputs, handle=model,
                       opset=opset)


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


def _run_outputs(original, upgraded, opset: dict, inputs, path: str):
    """``(graph, output specs, opset record)``: the graph the parity reference runs, run once on zeros (output
    shapes are often symbolic in the graph).

    The upgraded graph (or a current one) in ONNX Runtime; failing that, for an old graph, the file's own graph:
    in ONNX Runtime where its old kernels still exist, else in onnx's reference evaluator."""
    import numpy as np

    feeds = {t.name: np.zeros(t.shape, dtype=t.dtype) for t in inputs}
    if "not_upgraded" not in opset:
        try:
            return upgraded, _specs(*_onnxruntime(upgraded, feeds)), opset
        except Exception as exc:
            if "upgraded_to" not in opset:  # a current graph: nothing else to try
                raise InputError(f"ONNX Runtime cannot run {path}: {_first_line(exc)}",
                                 hint="check --input shapes, or that the model uses standard ONNX operators") from exc
            failed = exc
        opset = {"file": opset["file"], "not_upgraded": f"ONNX Runtime cannot run the upgraded graph: "
                                                         f"{_first_line(failed)}"}
    try:
        return original, _specs(*_onnxruntime(original, feeds)), {**opset, "reference": "onnxruntime"}
    except Exception as exc:
        by_runtime = exc
    try:
        return original, _specs(*_reference(original, feeds)), {**opset, "reference": "onnx.reference"}
    except Exception as exc:
        raise InputError(f"neither ONNX Runtime nor onnx's reference evaluator can run {path} (opset "
                         f"{opset['file']}, {opset['not_upgraded']}): ONNX Runtime: {_first_line(by_runtime)}; "
                         f"onnx.reference: {_first_line(exc)}",
                         hint="check --input shapes, or that the model uses standard ONNX operators") from exc


def _onnxruntime(model, feeds):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # an old opset's "only guarantees support for opset 7" warnings
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return [o.name for o in session.get_outputs()], session.run(None, feeds)


def _reference(model, feeds):
    from onnx.reference import ReferenceEvaluator

    found = ReferenceEvaluator(model)
    return list(found.output_names), found.run(None, feeds)


def _specs(names, results) -> tuple[TensorSpec, ...]:
    import numpy as np

    results = [np.asarray(r) for r in results]
    return tuple(TensorSpec(name, tuple(r.shape), r.dtype.name, "NCHW" if r.ndim == 4 else None)
                 for name, r in zip(names, results))


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]
