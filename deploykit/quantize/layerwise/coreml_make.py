"""A per-layer assignment made for real on Core ML: coremltools' compression with one op config per weight.

The fp16 program every compressed Core ML variant starts from is palettized where the assignment says
``lut*`` (deploykit's k-means, one table per tensor or per 16 output channels), then linearly quantized
where it says ``int8`` (per channel) or ``int4-block`` (per block of 32, iOS18); ``fp16`` weights stay.
Each call names only its own weights (``op_name_configs``, no global config), so the two passes never
touch each other's constants. The first call's pass pipeline may rename constants it did not compress (measured on
PP-OCRv4's recogniser, whose fp16 program keeps float32 segments: the second call then matched nothing and left 31
weights uncompressed), so the second call finds its weights again by the op that reads each one, whose name stays.
"""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import ConversionError
from deploykit.formats import coremltools_facade
from deploykit.quantize.lut_plan import lut_function


def make_coreml(base: Path, out_path: Path, assignment: dict[str, str]) -> dict:
    ct, cto = coremltools_facade.package(), coremltools_facade.optimize()
    model = ct.models.MLModel(str(base), skip_model_load=True)
    tables = {name: _palettizer(choice, cto) for name, choice in assignment.items() if choice.startswith("lut")}
    linear = {name: _linear(choice, cto) for name, choice in assignment.items() if choice.startswith("int")}
    readers = _readers(model)
    try:
        if tables:
            model = cto.palettize_weights(model, cto.OptimizationConfig(global_config=None, op_name_configs=tables))
        if linear:
            renamed = {name: (_readers(model, inverse=True).get(readers.get(name)) or name) for name in linear}
            linear = {renamed[name]: config for name, config in linear.items()}
            model = cto.linear_quantize_weights(model, cto.OptimizationConfig(global_config=None, op_name_configs=linear))
    except Exception as exc:
        raise ConversionError(f"coremltools could not compress the per-layer assignment: {str(exc).splitlines()[0][:300]}",
                              hint="rerun with --verbose to see its log") from exc
    model.save(str(out_path))
    from deploykit.quantize.coreml import uncompressed_weights
    from deploykit.quantize.coreml_fp16_weights import restore_fp16_weights

    restore_fp16_weights(base, out_path)  # the fp16 layers, folded to float32 by the compression's pipeline

    left = len(uncompressed_weights(out_path))
    expected = sum(1 for choice in assignment.values() if choice == "fp16")
    return {"engine": "coremltools.optimize.coreml (one op config per weight)",
            "layers_left_fp16": left, "layers_assigned_fp16": expected}


def _readers(model, inverse: bool = False) -> dict:
    """weight const name -> the name of the conv / linear / matmul op reading it, through a ``cast`` (an fp16 weight
    of an fp16-weights program is read as cast(const)); ``inverse``: that op's name -> the const. The const's own
    first reader is not enough: on PP-OCRv4's fp16-weights program it is the cast, which the palettization's pass
    pipeline folds away, and the second call then left 20 of its int8 layers uncompressed (6.55 MB)."""
    from deploykit.formats.coreml.spec import main_block, op_name
    from deploykit.quantize.coreml import LAYERS

    ops = list(main_block(model.get_spec()).operations)
    producer = {out.name: op for op in ops for out in op.outputs}
    found = {}
    for op in ops:
        if op.type not in LAYERS:
            continue
        source = producer.get(_argument(op, "weight") or _argument(op, "y"))
        if source is not None and source.type == "cast":
            source = producer.get(_argument(source, "x"))
        if source is not None and source.type == "const":
            found[op_name(source) or source.outputs[0].name] = op_name(op) or op.outputs[0].name
    return {op: name for name, op in found.items()} if inverse else found


def _argument(op, name: str) -> str | None:
    bound = op.inputs.get(name)
    names = [b.name for b in bound.arguments if b.WhichOneof("binding") == "name"] if bound else []
    return names[0] if names else None


def _palettizer(choice: str, cto):
    bits, _, group = choice[3:].partition("-g")
    common = {"mode": "custom", "lut_function": lut_function(int(bits)), "weight_threshold": 0}
    if group:
        return cto.OpPalettizerConfig(granularity="per_grouped_channel", group_size=int(group), **common)
    return cto.OpPalettizerConfig(granularity="per_tensor", **common)


def _linear(choice: str, cto):
    if choice == "int8":
        return cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=0)
    return cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity="per_block", block_size=32,
                                       weight_threshold=0)


