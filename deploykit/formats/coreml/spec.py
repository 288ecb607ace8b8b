"""Read an .mlpackage's interface and op histogram from its protobuf, without loading the model."""

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


def main_block(spec):
    function = spec.mlProgram.functions["main"]
    return function.block_specializations[function.opset]


def op_histogram(spec) -> dict[str, int]:
    counts: Counter = Counter()

    def walk(block):
        for op in block.operations:
            counts[op.type] += 1
            for inner in op.blocks:
                walk(inner)

    walk(main_block(spec))
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
    return (tuple(_feature(f) for f in spec.description.input), tuple(_feature(f) for f in spec.description.output))


def _feature(feature) -> TensorSpec:
    kind = feature.type.WhichOneof("Type")
    if kind == "multiArrayType":
        array = feature.type.multiArrayType
        return TensorSpec(feature.name, tuple(int(d) for d in array.shape), _ARRAY_DTYPES.get(array.dataType, str(array.dataType)),
                          flexible=accepted_shapes(array))
    if kind == "imageType":
        image = feature.type.imageType
        channels = 1 if image.colorSpace == _GRAYSCALE else 3
        return TensorSpec(feature.name, (1, channels, int(image.height), int(image.width)), "image", "NCHW")
    return TensorSpec(feature.name, (), kind or "unknown")


def op_name(op) -> str:
    """An ML Program operation's own name (its ``name`` attribute), or "" when it has none."""
    attribute = op.attributes.get("name")
    if attribute is not None and attribute.immediateValue.tensor.strings.values:
        return attribute.immediateValue.tensor.strings.values[0]
    return ""
