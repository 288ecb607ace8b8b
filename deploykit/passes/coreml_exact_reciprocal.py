"""``exact_reciprocal``: a MIL graph pass, registered with coremltools as ``deploykit::exact_reciprocal``, that
makes every reciprocal exact.

coremltools' TensorFlow and PyTorch frontends lower TF ``Reciprocal`` and ``aten.reciprocal`` as MIL
``inverse`` without an epsilon, so MIL's default applies: ``1 / (x + 1e-4)``. Both source ops are exact.
The error is 1e-4 / x relative: negligible for large x, 9 % at x = 1e-3, and it is what a normalization's
``1 / sqrt(variance + eps)`` meets where a variance is small (a Keras LayerNormalization exported by tf2onnx
drifted by 1.1e-3 of its output's scale through onnx2coreml's identical lowering; converters/onnx_lowerings/
corrections.py fixes that one at the source). These two frontend functions are the only places coremltools
builds an ``inverse`` (checked in coremltools 9.0), so an ``inverse`` whose epsilon is exactly the default
stands for an exact reciprocal and is rewritten; one with any other epsilon was asked for and is kept.
"""

from __future__ import annotations

from deploykit.formats import coremltools_facade
from deploykit.passes.registry import PassResult, register_pass

MIL_NAME = "deploykit::exact_reciprocal"
DEFAULT_EPSILON = 1e-4  # MIL inverse's (iOS15 elementwise_unary)
LAST_ITEMS: list[str] = []


@register_pass(
    "exact_reciprocal",
    stage="coreml",
    needed_for={("keras", "coreml"), ("torch", "coreml"), ("onnx", "coreml")},
    summary="Make MIL inverse ops that stand for an exact reciprocal exact (epsilon 0, not MIL's default 1e-4).",
)
def exact_reciprocal(pipeline, context=None) -> PassResult:
    """Make MIL inverse ops that stand for an exact reciprocal exact (epsilon 0, not MIL's default 1e-4).

    Given:
        %1 = inverse(x=%x, epsilon=1e-4)            # MIL's default: TF Reciprocal, aten.reciprocal
    Result:
        %1 = inverse(x=%x, epsilon=0.0)             # 1 / x, as the source computes it

    Runs first in coremltools' pass pipeline, so constant folding computes the exact value too. An
    ``inverse`` with another epsilon is left as it is.
    """
    install()
    pipeline.insert_pass(0, MIL_NAME)
    return PassResult(pipeline)


def install() -> None:
    """Register the MIL pass with coremltools (once per process)."""
    import numpy as np

    mb = coremltools_facade.mil_builder()
    block_context_manager = coremltools_facade.block_context_manager()

    @block_context_manager
    def rewrite_block(block):
        for op in list(block.operations):
            for inner in op.blocks:
                rewrite_block(inner)
            if op.op_type != "inverse" or op.epsilon is None or op.epsilon.val is None:
                continue
            if not np.isclose(float(np.asarray(op.epsilon.val)), DEFAULT_EPSILON, rtol=1e-3, atol=0):
                continue
            dtype = np.float16 if str(op.x.dtype).endswith("fp16") else np.float32
            old = op.outputs[0]
            new = mb.inverse(x=op.x, epsilon=dtype(0), before_op=op, name=old.name + "_exact")
            op.enclosing_block.replace_uses_of_var_after_op(anchor_op=op, old_var=old, new_var=new)
            block.remove_ops([op])
            new.name = old.name  # the output keeps its name (a model output may be a reciprocal)
            LAST_ITEMS.append(f"inverse {old.name}: epsilon 1e-4 -> 0")

    coremltools_facade.register_function_pass("deploykit", "exact_reciprocal", rewrite_block)
