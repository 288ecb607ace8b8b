"""Core ML sparsity variants: ``prune_weights`` on the fp16 program, then, for a joint scheme, the non-zeros compressed.

Like every compressed Core ML variant this starts from the fp16 program (``quantize.coreml``). The layers
``quantize.sparsity`` prunes get ``OpMagnitudePrunerConfig(target_sparsity=...)`` (or ``n_m_ratio=(2, 4)`` along
the input axis for ``sparse2of4``) by the name of their weight; nothing else is configured, so biases and
spared layers stay fp16 constants. coremltools stores each pruned weight as a bit mask plus its fp16 non-zeros
(``constexpr_sparse_to_dense``): the package itself shrinks, 1 + 16 x (1 - sparsity) bits per weight.

Joint schemes (coremltools 9 ``joint_compression=True``) compress the pruned weights' non-zeros: ``+lut4``
palettizes them with deploykit's 1-D k-means (one 16-entry table per weight; ``constexpr_lut_to_sparse``),
``+int8`` quantizes them per output channel, int8 symmetric (``constexpr_sparse_blockwise_shift_scale``).
Those ops exist from iOS18 / macOS15 on (``--coreml-target``). No runtime deploykit knows of computes on 2:4
patterns: ``sparse2of4`` is a size gain like ``sparse50``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from deploykit.core.errors import ConversionError
from deploykit.formats import coremltools_facade
from deploykit.quantize import sparsity
from deploykit.quantize.coreml import LAYERS, kept_float_ops, op_name

JOINT_TARGETS = ("iOS18", "macOS15")  # constexpr_lut_to_sparse / constexpr_sparse_blockwise_shift_scale


@dataclass(frozen=True)
class CoreMLLayer:
    layer: sparsity.Layer
    input_axis: int  # of the weight, for n:m pruning


def compress_sparse_coreml(base: Path, out_path: Path, scheme: str, options) -> dict:
    ct = coremltools_facade.package()
    cto = coremltools_facade.optimize()

    chosen = sparsity.parse(scheme)
    found = weight_layers(base)
    layers = [f.layer for f in found]
    kept = kept_float_ops(base, replace(options.keep_float, first=False))
    spared = sparsity.plan(layers, kept, options.keep_float.small_for("coreml", scheme))
    if all(spared.values()):
        raise sparsity.nothing_to_prune(scheme, layers, spared)
    configs = {}
    for item in found:
        if spared[item.layer.name] is None:
            configs[item.layer.weight] = (
                cto.OpMagnitudePrunerConfig(n_m_ratio=chosen.n_m, dim=item.input_axis, weight_threshold=0) if chosen.n_m
                else cto.OpMagnitudePrunerConfig(target_sparsity=chosen.sparsity, weight_threshold=0))
    mlmodel = ct.models.MLModel(str(base), skip_model_load=True)
    described = {"scheme": scheme, "engine": "coremltools.optimize.coreml", "base": "fp16 program",
                 "weights": "pruned layers: a bit mask + fp16 non-zeros (constexpr_sparse_to_dense)", "activations": "float16"}
    try:
        compressed = cto.prune_weights(mlmodel, cto.OptimizationConfig(global_config=None, op_name_configs=configs))
        if chosen.then is not None:
            compressed, then = _joint(compressed, chosen.then, cto)
            described.update(then)
    except Exception as exc:
        raise ConversionError(f"coremltools could not compress to {scheme}: {str(exc).splitlines()[0][:300]}",
                              hint="rerun with --verbose to see its log") from exc
    compressed.save(str(out_path))
    from deploykit.quantize.coreml_fp16_weights import restore_fp16_weights

    restore_fp16_weights(base, out_path)  # the spared layers, folded to float32 by the compression's pipeline
    zeros = artifact_zeros(out_path, layers)
    return {**described, "sparsity": sparsity.record(chosen, layers, spared, zeros)}


def _joint(pruned, then: str, cto):
    """The pruned model with its sparse weights' non-zeros palettized or quantized; configured by the name of
    each ``constexpr_sparse_to_dense`` op, so that nothing the pruning left dense is compressed."""
    from deploykit.formats.coreml.spec import main_block
    from deploykit.quantize.lut_plan import lut_function

    names = [op_name(op) or op.outputs[0].name for op in main_block(pruned.get_spec()).operations
             if op.type == "constexpr_sparse_to_dense"]
    if then == "lut4":
        op = cto.OpPalettizerConfig(mode="custom", lut_function=lut_function(4), granularity="per_tensor", weight_threshold=0)
        config = cto.OptimizationConfig(global_config=None, op_name_configs={name: op for name in names})
        return cto.palettize_weights(pruned, config, joint_compression=True), {
            "then": "lut4", "weights": "pruned layers: a bit mask + 4-bit indices of the non-zeros into one 16-entry "
                                       "fp16 table per weight (k-means; constexpr_lut_to_sparse)"}
    op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=0)
    config = cto.OptimizationConfig(global_config=None, op_name_configs={name: op for name in names})
    return cto.linear_quantize_weights(pruned, config, joint_compression=True), {
        "then": "int8", "weights": "pruned layers: a bit mask + int8 non-zeros, symmetric per output channel "
                                   "(constexpr_sparse_blockwise_shift_scale)"}


def weight_layers(package: Path) -> list[CoreMLLayer]:
    """The conv / linear / matmul ops whose weight is a const, in program order, with the weight's input axis."""
    from deploykit.formats.coreml.spec import load_spec, main_block

    ops = list(main_block(load_spec(package)).operations)
    producer = {out.name: op for op in ops for out in op.outputs}
    found, seen = [], set()
    for op in ops:
        if op.type not in LAYERS:
            continue
        const = producer.get(_weight_name(producer, op))
        if const is None or const.type != "const":
            continue
        dims = [int(d.constant.size) for d in const.outputs[0].type.tensorType.dimensions]
        name = op_name(op) or op.outputs[0].name
        weight = op_name(const) or const.outputs[0].name
        if len(dims) < 2 or weight in seen:  # a const shared by two layers is left alone
            continue
        seen.add(weight)
        if op.type == "conv_transpose":  # [C_in, C_out / groups, *K]
            axis = 0
        elif op.type == "matmul":  # y is [..., in, out] unless transposed
            axis = len(dims) - 1 if _bool_const(producer, op, "transpose_y") else len(dims) - 2
        else:  # conv [C_out, C_in / groups, *K], linear [out, in]
            axis = 1
        found.append(CoreMLLayer(sparsity.Layer(name, weight, int(np.prod(dims))), axis))
    return found


def artifact_zeros(package: Path, layers) -> dict[str, int]:
    """{layer name: zeros of its weight} as deploykit's evaluator decompresses the written package."""
    from deploykit.formats.coreml.spec import load_spec, main_block
    from deploykit.runners.coreml_eval import load_program

    constants = load_program(package).constants
    wanted = {layer.name for layer in layers}
    zeros = {}
    ops = list(main_block(load_spec(package)).operations)
    producer = {out.name: op for op in ops for out in op.outputs}
    for op in ops:
        name = op_name(op) or (op.outputs[0].name if op.outputs else "")
        if op.type in LAYERS and name in wanted:
            value = constants[_weight_name(producer, op)]
            zeros[name] = int(np.count_nonzero(np.asarray(value) == 0))
    return zeros


def _weight_name(producer, op) -> str | None:
    """The value holding a layer's weight: its ``weight`` (matmul: ``y``) input, or the input of the ``cast`` in
    between when the base stores fp16 weights for float32 compute (the fp16 rescue's last candidate)."""
    name = _bound_name(op, "y" if op.type == "matmul" else "weight")
    cast = producer.get(name)
    if cast is not None and cast.type == "cast":
        return _bound_name(cast, "x")
    return name


def _bound_name(op, key: str) -> str | None:
    argument = op.inputs.get(key)
    names = [b.name for b in argument.arguments if b.WhichOneof("binding") == "name"] if argument else []
    return names[0] if names else None


def _bool_const(producer, op, key: str) -> bool:
    const = producer.get(_bound_name(op, key))
    if const is None:
        return False
    value = const.attributes.get("val")
    return bool(value is not None and value.immediateValue.tensor.bools.values and value.immediateValue.tensor.bools.values[0])
