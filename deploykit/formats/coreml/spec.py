"""Read an .mlpackage's interface and op histogram from its protobuf, without loading the model.

A package holds an ML Program, or a pipeline of models run in order (a detector: the ML Program, then Core ML's
NonMaximumSuppression model, ``detection.coreml_postprocess``). The readers here take either: ``main_block`` is
the main block of the package's one ML Program, ``op_histogram`` counts its MIL ops plus each other model of a
pipeline under its model type, and ``signature`` reads the package's own description (what an app feeds and gets).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from deploykit.core.types import TensorSpec

MODEL_FILE = Path("Data/com.apple.CoreML/model.mlmodel")
_ARRAY_DTYPES = {65568: "float32", 65552: "float16", 65600: "float64", 131104: "int32", 131080: "int8"}


def load_spec(package: str | Path):
    from deploykit.formats.coremltools_facade import model_pb2

    spec = model_pb2().Model()
    spec.ParseFromString((Path(package) / MODEL_FILE).read_bytes())
    return spec


PIPELINES = ("pipeline", "pipelineClassifier", "pipelineRegressor")


def stages(spec) -> list:
    """The models a package runs, in order: the model itself, or every model of a pipeline (nested ones flattened)."""
    kind = spec.WhichOneof("Type")
    if kind not in PIPELINES:
        return [spec]
    pipeline = spec.pipeline if kind == "pipeline" else getattr(spec, kind).pipeline
    return [stage for model in pipeline.models for stage in stages(model)]


def ml_program(spec):
    """The package's ML Program: the model itself, or the one ML Program of a pipeline."""
    from deploykit.core.errors import InputError

    programs = [model for model in stages(spec) if model.WhichOneof("Type") == "mlProgram"]
    if len(programs) != 1:
        raise InputError(f"the Core ML model holds {len(programs)} ML Programs ({spec.WhichOneof('Type')}); "
                         "deploykit reads a package with exactly one")
    return programs[0]


def main_block(spec):
    function = ml_program(spec).mlProgram.functions["main"]
    return function.block_specializations[function.opset]


def op_histogram(spec) -> dict[str, int]:
    counts: Counter = Counter()

    def walk(block):
        for op in block.operations:
            counts[op.type] += 1
            for inner in op.blocks:
                walk(inner)

    for model in stages(spec):
        kind = model.WhichOneof("Type")
        if kind == "mlProgram":
            function = model.mlProgram.functions["main"]
            walk(function.block_specializations[function.opset])
        else:
            counts[kind] += 1  # a pipeline's other models (nonMaximumSuppression) under their model type
    counts.pop("const", None)  # weights and scalars; not compute
    return dict(sorted(counts.items()))


_GRAYSCALE = 10  # ImageFeatureType.ColorSpace


def accepted_shapes(array) -> dict | None:
    """A multi-array input's ``EnumeratedShapes`` / ``shapeRange`` as ``FlexibleShape.to_json()``, None when fixed."""
    from deploykit.core.flexible import FlexibleShape

    which = array.WhichOneof("ShapeFlexibility")
    if which == "enumeratedShapes" and len(array.enumeratedShapes.shapes) > 1:
        shapes = tuple(tuple(int(d) for d in s.shape) for s in array.enumeratedShapes.shapes)
        default = tuple(int(d) for d in array.shape)
        ordered = (default,) + tuple(s for s in shapes if s != default) if default in shapes else shapes
        return FlexibleShape("enumerated", shapes=ordered).to_json()
    if which == "shapeRange":
        bounds = tuple((int(r.lowerBound), int(r.upperBound)) for r in array.shapeRange.sizeRanges)
        if any(low != high for low, high in bounds):
            return FlexibleShape("range", bounds=bounds).to_json()
    return None


def flexible_inputs(package) -> dict[str, dict]:
    """Input name -> accepted shapes, for the inputs of an .mlpackage that take more than one size."""
    spec = load_spec(package)
    found = {}
    for feature in spec.description.input:
        if feature.type.WhichOneof("Type") == "multiArrayType":
            accepted = accepted_shapes(feature.type.multiArrayType)
            if accepted:
                found[feature.name] = accepted
    return found


def signature(spec) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """(inputs, outputs) of the package's description. Optional inputs (a detector's ``iouThreshold`` and
    ``confidenceThreshold``, which Core ML defaults when absent) are not among the inputs: these are the tensors a
    caller must feed (``optional_inputs`` lists the others)."""
    return (tuple(_feature(f) for f in spec.description.input if not f.type.isOptional),
            tuple(_feature(f) for f in spec.description.output))


def optional_inputs(spec) -> tuple[TensorSpec, ...]:
    """The inputs a caller may leave out (``FeatureType.isOptional``)."""
    return tuple(_feature(f) for f in spec.description.input if f.type.isOptional)


def _feature(feature) -> TensorSpec:
    kind = feature.type.WhichOneof("Type")
    if kind == "multiArrayType":
        array = feature.type.multiArrayType
        return TensorSpec(feature.name, _array_shape(array), _ARRAY_DTYPES.get(array.dataType, str(array.dataType)),
                          flexible=accepted_shapes(array))
    if kind == "imageType":
        image = feature.type.imageType
        channels = 1 if image.colorSpace == _GRAYSCALE else 3
        return TensorSpec(feature.name, (1, channels, int(image.height), int(image.width)), "image", "NCHW")
    if kind in _SCALARS:
        return TensorSpec(feature.name, (), _SCALARS[kind])
    return TensorSpec(feature.name, (), kind or "unknown")


_SCALARS = {"doubleType": "float64"}  # a detector's optional thresholds (classifier outputs: labels.outputs)


def _array_shape(array) -> tuple:
    """The declared shape; an array declared only by a shape range (an NMS model's outputs: [0..max boxes, K])
    has its fixed dimensions, and None where the range spans several sizes."""
    if len(array.shape) or array.WhichOneof("ShapeFlexibility") != "shapeRange":
        return tuple(int(d) for d in array.shape)
    return tuple(int(r.lowerBound) if r.lowerBound == r.upperBound else None for r in array.shapeRange.sizeRanges)


def op_name(op) -> str:
    """An ML Program operation's own name (its ``name`` attribute), or "" when it has none."""
    attribute = op.attributes.get("name")
    if attribute is not None and attribute.immediateValue.tensor.strings.values:
        return attribute.immediateValue.tensor.strings.values[0]
    return ""
