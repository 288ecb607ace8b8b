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

from pathlib import Path

from deploykit.core.errors import ConversionError
from deploykit.formats import coremltools_facade

LAYERS = ("conv", "conv_transpose", "linear", "matmul")
WEIGHT_ARGUMENTS = ("weight", "y")  # matmul's constant operand is y


def write_fp16_weights(fp32_package: Path, out_path: Path, keep: tuple[str, ...] = ()) -> None:
    """``out_path``: ``fp32_package`` with every float32 layer weight, except the constants named in ``keep``,
    stored as fp16 and cast to float32 where it is read."""
    ct = coremltools_facade.package()
    import numpy as np
    mil_convert = coremltools_facade.mil_convert
    mb = coremltools_facade.mil_builder()
    types = coremltools_facade.mil_types()
    AbstractGraphPass = coremltools_facade.graph_pass_base()
    _apply_graph_pass = coremltools_facade.apply_graph_pass
    kept = set(keep)

    class Fp16Weights(AbstractGraphPass):
        def apply(self, prog):
            block = prog.functions["main"]
            for op in list(block.operations):
                if op.op_type not in LAYERS:
                    continue
                for argument in WEIGHT_ARGUMENTS:
                    weight = op.inputs.get(argument)
                    if (weight is None or weight.op is None or weight.op.op_type != "const" or weight.dtype != types.fp32
                            or weight.name in kept):
                        continue
                    with block:
                        with mb.set_before_op(op):
                            half = mb.const(val=weight.val.astype(np.float16), name=f"{weight.name}_fp16")
                            widened = mb.cast(x=half, dtype="fp32", name=f"{weight.name}_fp32")
                        block.replace_uses_of_var_after_op(anchor_op=widened.op, old_var=weight, new_var=widened)
                        if not weight.child_ops and weight not in block.outputs:
                            block.remove_ops([weight.op])

    try:
        model = ct.models.MLModel(str(fp32_package), skip_model_load=True)
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
