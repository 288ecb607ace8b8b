"""Core ML artifacts: one layer per op of the ML Program's main function, read from model.mlmodel.

Weights are not decoded: shapes come from the declared types, stored bytes from each constant's type (a
4-bit palette index counts half a byte). ``constexpr_*`` ops (palettized, quantized, sparse weights) are
folded into the layer that reads them, counted at their decoded size.

A pipeline (a detector: the ML Program, then Core ML's NonMaximumSuppression model) is inspected through its ML
Program; the other models are named in the notes (they have no layers, weights or mult-adds to count).
"""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import InputError
from deploykit.inspection.graph import GraphBuilder
from deploykit.inspection.model import Inspection
from deploykit.inspection.rules import (
    conv_layer_type,
    conv_macs,
    dtype_bytes,
    elements,
    matmul_macs,
    transposed_conv_macs,
)

_NAMES = {"fp16": "float16", "fp32": "float32", "fp64": "float64"}


def inspect(path: Path) -> Inspection:
    from deploykit.formats.coreml.package import load_model, locate
    from deploykit.formats.coreml.spec import stages

    package = load_model(locate(path))
    models = stages(package)
    programs = [m for m in models if m.WhichOneof("Type") == "mlProgram"]
    if len(programs) != 1:
        raise InputError(f"{path} holds a {package.WhichOneof('Type')} with {len(programs)} ML Programs",
                         hint="deploykit inspects ML Program packages (convert_to='mlprogram'), alone or in a pipeline")
    model = programs[0]
    function = model.mlProgram.functions["main"]
    block = function.block_specializations[function.opset]
    builder = GraphBuilder(str(path), "mlpackage")
    others = [m.WhichOneof("Type") for m in models if m.WhichOneof("Type") != "mlProgram"]
    if others:
        builder.notes.append(f"a pipeline: the ML Program's layers, then {', '.join(others)} (not counted as layers); "
                             "the outputs listed are the ML Program's")
    decls: dict[str, tuple[tuple, str]] = {}
    for value in function.inputs:
        shape, dtype = _decl(value, path)
        decls[value.name] = (shape, dtype)
        builder.input(value.name, shape, dtype)
    nested = 0
    flags: dict[str, bool] = {}  # scalar bool consts (matmul's transpose_x)
    for op in block.operations:
        outputs = [(o.name, *_decl(o, path)) for o in op.outputs]
        decls.update((n, (s, d)) for n, s, d in outputs)
        reads = [b.name for arg in op.inputs.values() for b in arg.arguments if b.WhichOneof("binding") == "name"]
        if op.type == "const":
            name, shape, dtype = outputs[0]
            builder.constant(name, shape, dtype)
            if dtype == "bool" and shape == () and "val" in op.attributes:
                flags[name] = _bool_value(op.attributes["val"])
            continue
        if op.type.startswith("constexpr_"):
            for key, value in op.attributes.items():  # iOS16 constexpr ops store their data as attributes
                if key != "name" and value.type.WhichOneof("type") == "tensorType":
                    shape, dtype = _value_type(value.type, path)
                    builder.stored(dtype, elements(shape) * dtype_bytes(dtype))
            builder.fold([(n, s, d) for n, s, d in outputs], reads)
            continue
        for name, shape, dtype in outputs:
            builder.activation(name, shape, dtype)
        nested += bool(op.blocks)
        out_shape = outputs[0][1] if outputs else ()
        common = dict(name=outputs[0][0] if outputs else op.type, op=op.type, writes=[o[0] for o in outputs],
                      output_shape=out_shape)
        _layer(op, decls, flags, out_shape, builder, common, reads)
    for name in block.outputs:
        shape, dtype = decls[name]
        builder.output(name, shape, dtype)
    if nested:
        builder.notes.append(f"{nested} control-flow op(s) count as one layer each: the ops inside their blocks "
                             "are not counted")
    return builder.build()


def _layer(op, decls: dict, flags: dict[str, bool], out_shape: tuple, builder: GraphBuilder, common: dict, reads: list[str]) -> None:
    def arg(key: str) -> str | None:
        if key not in op.inputs or not op.inputs[key].arguments:
            return None
        binding = op.inputs[key].arguments[0]
        return binding.name if binding.WhichOneof("binding") == "name" else None

    def shape(key: str) -> tuple:
        return decls[arg(key)][0]

    weights = [a for a in (arg("weight"), arg("bias")) if a]
    if op.type == "conv":
        x, w = shape("x"), shape("weight")
        kernel, groups = tuple(w[2:]), max(1, x[1] // w[1])
        builder.layer(layer_type=conv_layer_type(kernel, groups, x[1], tuple(x[2:])),
                      macs=conv_macs(out_shape, x[1], groups, kernel), reads=[arg("x")], weights=weights, **common)
    elif op.type == "conv_transpose":
        x, w = shape("x"), shape("weight")
        builder.layer(layer_type="conv", macs=transposed_conv_macs(x, w[1], 1, tuple(w[2:])), reads=[arg("x")],
                      weights=weights, **common)
    elif op.type == "linear":
        builder.layer(layer_type="fully_connected", macs=matmul_macs(out_shape, shape("weight")[-1]),
                      reads=[arg("x")], weights=weights, **common)
    elif op.type == "matmul":
        x = shape("x")
        reduced = x[-2] if _flag(op, "transpose_x", flags) else x[-1]
        constant = [r for r in (arg("x"), arg("y")) if r and builder.is_constant(r)]
        builder.layer(layer_type="fully_connected" if constant else "other", macs=matmul_macs(out_shape, reduced),
                      reads=[r for r in (arg("x"), arg("y")) if r and r not in constant], weights=constant, **common)
    elif op.type == "batch_norm":
        builder.layer(reads=[arg("x")], weights=[a for a in (arg("gamma"), arg("beta")) if a], **common)
    else:
        builder.layer(reads=reads, **common)


def _flag(op, key: str, flags: dict[str, bool]) -> bool:
    """A boolean argument given inline or by a const op (false when absent, as MIL defaults it)."""
    if key not in op.inputs or not op.inputs[key].arguments:
        return False
    binding = op.inputs[key].arguments[0]
    if binding.WhichOneof("binding") == "value":
        return _bool_value(binding.value)
    return flags.get(binding.name, False)


def _bool_value(value) -> bool:
    values = value.immediateValue.tensor.bools.values
    return bool(values[0]) if len(values) else False


def _decl(named_value_type, path: Path) -> tuple[tuple, str]:
    return _value_type(named_value_type.type, path, named_value_type.name)


def _value_type(value_type, path: Path, name: str = "value") -> tuple[tuple, str]:
    from deploykit.formats.coreml.values import tensor_type

    dtype, shape = tensor_type(value_type, f"{path}: '{name}'")
    if shape is None or any(d is None for d in shape):
        raise InputError(f"{path}: '{name}' has a flexible size {shape}; mult-adds depend on the size the app feeds",
                         hint="inspect the source model with the size you ship (--input name=1x3x224x224)")
    return tuple(int(d) for d in shape), _NAMES.get(dtype.name, dtype.name)
