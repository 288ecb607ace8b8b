"""``fuse_activation`` for Core ML: a MIL graph pass registered with coremltools as
``deploykit::fuse_activation`` and run inside ``coremltools.convert``'s pass pipeline.

An ML Program has no fused-activation attribute: ``conv`` followed by ``relu`` / ``relu6`` /
``clip`` is the normal form, and the Core ML compiler fuses the pair on device. What it cannot
fuse is an activation written as elementwise ``maximum`` / ``minimum`` with constants, which is
what coremltools makes of TensorFlow's ``Maximum``/``Minimum`` (Keras ``ReLU(max_value=4)``,
onnx2tf's lowering of ONNX ``Clip(-1, 1)``). This pass rewrites those into the one activation op.
"""

from __future__ import annotations

from deploykit.formats import coremltools_facade
from deploykit.passes.registry import PassResult, register_pass

MIL_NAME = "deploykit::fuse_activation"
PRODUCERS = ("conv", "conv_transpose", "linear", "matmul")
LAYOUT = ("transpose", "expand_dims", "squeeze", "reshape")
# Items of the last run, read by the converter after coremltools.convert returns.
LAST_ITEMS: list[str] = []


@register_pass(
    "fuse_activation",
    stage="coreml",
    needed_for={("keras", "coreml"), ("onnx", "coreml")},
    summary="Turn maximum/minimum-with-constant after a conv into one relu / relu6 / clip op (Core ML).",
)
def fuse_activation_coreml(pipeline, context=None) -> PassResult:
    """Turn maximum/minimum-with-constant after a conv into one relu / relu6 / clip op (Core ML).

    Given:
        %1 = conv(x=%x, weight=%w)                  # or linear, matmul, conv_transpose
        %2 = maximum(x=%1, y=0.0)                   # or relu(x=%1)
        %3 = minimum(x=%2, y=4.0)                   # optional; minimum-then-maximum also matches
    Result:
        %3 = clip(x=%1, alpha=0.0, beta=4.0)        # relu for (0, none), relu6 for (0, 6)

    One layout op (transpose, reshape, ...) may sit between the conv and the activation; the
    clip goes after it. Applies when each intermediate value feeds only the next op and is not a model output, and
    every lower bound is at most every upper bound (so the chain equals one clip). The
    Core ML stage has no file to rewrite: ``apply`` adds the registered MIL pass to a
    ``coremltools.PassPipeline`` before its fp16 cast pass.
    """
    install()
    passes = list(pipeline.passes)
    at = passes.index("common::add_fp16_cast") if "common::add_fp16_cast" in passes else len(passes)
    pipeline.insert_pass(at, MIL_NAME)
    return PassResult(pipeline)


def install() -> None:
    """Register the MIL pass with coremltools (once per process)."""
    import numpy as np

    mb = coremltools_facade.mil_builder()
    block_context_manager = coremltools_facade.block_context_manager()
    def scalar(var):
        value = getattr(var, "val", None)
        if value is None or np.size(value) != 1:
            return None
        return float(np.asarray(value).reshape(-1)[0])

    def bound(op, x):
        other = op.y if op.x is x else op.x
        return scalar(other) if other is not x else None

    def only_child(var, block):
        children = var.child_ops
        if len(children) != 1 or var in block.outputs:
            return None
        return children[0]

    def chain(x, block):
        """The relu / maximum / minimum ops after ``x`` (each feeding only the next) and their bounds."""
        ops, lows, highs, var = [], [], [], x
        while len(ops) < 3:
            op = only_child(var, block)
            if op is None or op.op_type not in ("relu", "maximum", "minimum"):
                break
            if op.op_type == "relu":
                if ops:
                    break
                lows.append(0.0)
            else:
                value = bound(op, var)
                if value is None:
                    break
                (lows if op.op_type == "maximum" else highs).append(value)
            ops.append(op)
            var = op.outputs[0]
        return ops, lows, highs

    @block_context_manager
    def fuse_block(block):
        for op in list(block.operations):
            for inner in op.blocks:
                fuse_block(inner)
            if op.op_type not in PRODUCERS or op.enclosing_block is None:
                continue
            x = op.outputs[0]
            layout = only_child(x, block)
            if layout is not None and layout.op_type in LAYOUT:  # clip commutes with a transpose
                x = layout.outputs[0]
            ops, lows, highs = chain(x, block)
            if not ops or (len(ops) == 1 and ops[0].op_type == "relu") or len(highs) > 1:
                continue  # nothing decomposed (a lone relu is already the fused form)
            if not lows or (highs and max(lows) > highs[0]):
                continue  # an upper bound alone, or bounds that make a constant: not an activation
            lo, hi = max(lows), (highs[0] if highs else None)
            last, name = ops[-1], ops[-1].outputs[0].name
            if hi is None and lo == 0.0:
                new, label = mb.relu(x=x, before_op=ops[0], name=name), "relu"
            elif hi is None:
                continue  # maximum(x, a) with a != 0 is not an activation op
            elif (lo, hi) == (0.0, 6.0):
                new, label = mb.relu6(x=x, before_op=ops[0], name=name), "relu6"
            else:
                dtype = np.float16 if str(x.dtype).endswith("fp16") else np.float32
                new = mb.clip(x=x, alpha=dtype(lo), beta=dtype(hi), before_op=ops[0], name=name)
                label = f"clip({lo:g}, {hi:g})"
            last.enclosing_block.replace_uses_of_var_after_op(anchor_op=last, old_var=last.outputs[0], new_var=new)
            block.remove_ops(ops)
            LAST_ITEMS.append(f"{op.op_type} {op.name} + {' + '.join(o.op_type for o in ops)} -> {label}")

    coremltools_facade.register_function_pass("deploykit", "fuse_activation", fuse_block)
