"""A Core ML program with fp16 weights and float32 compute: TFLite's fp16 arithmetic, on Core ML.

Core ML's FLOAT16 conversion rounds every weight *and* every intermediate result to fp16. For a few
real models the second costs more than any float32 budget buys back (PP-OCRv4's detector: 0.091 of its
probability range all-fp16, still 0.021 with 10 of 16 program segments in float32, 42 % of the weight
bytes), while fp16 weights alone cost 0.025 (bench/results/corpus.md). This variant stores the conv /
linear weights as fp16 constants, each cast to float32 where it is read, and computes in float32:
half the weight bytes, the arithmetic of TFLite's fp16 variant (weights dequantized at load), run on
the CPU or GPU (the Neural Engine computes fp16 only). ``fp16_rescue`` makes it, with the weights
``fp16_estimate_coreml_weights`` chooses kept in float32, when the FLOAT16 program fails its profile.

The rewrite is a coremltools graph pass on the fp32 program, converted back with an empty pass
pipeline: the default one would fold each ``cast`` of a constant back into a float32 constant.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from deploykit.core.errors import ConversionError
from deploykit.formats import coremltools_facade

LAYERS = ("conv", "conv_transpose", "linear", "matmul")
WEIGHT_ARGUMENTS = ("weight", "y")  # matmul's constant operand is y


def write_fp16_weights(fp32_package: Path, out_path: Path, keep: tuple[str, ...] = ()) -> None:
    """``out_path``: ``fp32_package`` with every float32 layer weight, except the constants named in ``keep``,
    stored as fp16 and cast to float32 where it is read."""
    kept = set(keep)
    _rewrite(fp32_package, out_path, lambda op, weight: weight.name not in kept)


def restore_fp16_weights(base: Path, compressed: Path) -> int:
    """Store again as fp16 the weights a compression left uncompressed, in place; returns how many.

    coremltools' compression calls convert the program with its default pass pipeline, which folds each
    ``cast`` of an fp16 constant into a float32 constant: every weight of an fp16-weights ``base`` that a scheme
    skips (int4 blocks need 32 input channels) or an assignment keeps (``--quantize auto``'s fp16 layers)
    came out at 4 bytes a weight. Measured on PP-OCRv4's recogniser: int4 7.21 MB with 36 of 47 weights float32,
    bigger than its 5.6 MB fp16-weights base. Only layers that read an fp16 constant in ``base`` are rewritten,
    so the weights the base keeps in float32 (the fp16 rescue's choice) stay float32."""
    read_as_fp16 = fp16_read_layers(base)
    if not read_as_fp16:
        return 0
    restored = []
    compressed = Path(compressed)
    scratch = compressed.with_name(f"{compressed.stem}.fp16-restored{compressed.suffix}")
    _rewrite(compressed, scratch, lambda op, weight: op.name in read_as_fp16 and not restored.append(op.name))
    if not restored:
        shutil.rmtree(scratch, ignore_errors=True)
        return 0
    shutil.rmtree(compressed)
    scratch.rename(compressed)
    return len(restored)


def fp16_read_layers(package: Path) -> set[str]:
    """Names of the conv / linear / matmul ops of ``package`` whose weight is an fp16 constant cast to float32."""
    from deploykit.formats.coreml.spec import load_spec, main_block, op_name

    ops = list(main_block(load_spec(package)).operations)
    producer = {out.name: op for op in ops for out in op.outputs}
    fp16 = coremltools_facade.mil_pb2().FLOAT16
    found = set()
    for op in ops:
        if op.type not in LAYERS:
            continue
        cast = producer.get(_first_name(op, "weight") or _first_name(op, "y"))
        if cast is None or cast.type != "cast":
            continue
        const = producer.get(_first_name(cast, "x"))
        if const is not None and const.type == "const" and const.outputs[0].type.tensorType.dataType == fp16:
            found.add(op_name(op) or op.outputs[0].name)
    return found


def _first_name(op, argument: str) -> str | None:
    bound = op.inputs.get(argument)
    names = [b.name for b in bound.arguments if b.WhichOneof("binding") == "name"] if bound else []
    return names[0] if names else None


def _rewrite(package: Path, out_path: Path, chosen) -> None:
    """``out_path``: ``package`` with each float32 constant layer weight for which ``chosen(op, weight)`` holds
    stored as fp16 and cast to float32 where it is read; converted with an empty pass pipeline."""
    ct = coremltools_facade.package()
    import numpy as np
    mil_convert = coremltools_facade.mil_convert
    mb = coremltools_facade.mil_builder()
    types = coremltools_facade.mil_types()
    AbstractGraphPass = coremltools_facade.graph_pass_base()
    _apply_graph_pass = coremltools_facade.apply_graph_pass

    class Fp16Weights(AbstractGraphPass):
        def apply(self, prog):
            block = prog.functions["main"]
            for op in list(block.operations):
                if op.op_type not in LAYERS:
                    continue
                for argument in WEIGHT_ARGUMENTS:
                    weight = op.inputs.get(argument)
                    if (weight is None or weight.op is None or weight.op.op_type != "const" or weight.dtype != types.fp32
                            or not chosen(op, weight)):
                        continue
                    with block:
                        with mb.set_before_op(op):
                            half = mb.const(val=weight.val.astype(np.float16), name=f"{weight.name}_fp16")
                            widened = mb.cast(x=half, dtype="fp32", name=f"{weight.name}_fp32")
                        block.replace_uses_of_var_after_op(anchor_op=widened.op, old_var=weight, new_var=widened)
                        if not weight.child_ops and weight not in block.outputs:
                            block.remove_ops([weight.op])

    try:
        model = ct.models.MLModel(str(package), skip_model_load=True)
        spec = model.get_spec()
        program = _apply_graph_pass(model, Fp16Weights(), skip_model_load=True, return_pymil_prog=True)
        rewritten = mil_convert(program, convert_to="mlprogram", convert_from="milinternal",
                                specification_version=spec.specificationVersion, compute_units=model.compute_unit,
                                model_description=spec.description, skip_model_load=True,
                                pass_pipeline=ct.PassPipeline.EMPTY)
        rewritten.save(str(out_path))
    except Exception as exc:
        raise ConversionError(f"coremltools could not store the weights as fp16: {str(exc).splitlines()[0][:300]}",
                              hint="rerun with --verbose to see its log") from exc
