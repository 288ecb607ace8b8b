"""The ``--strict-graph`` checker for .mlpackage files, read from the MIL protobuf (no model load).
Definitions are in ``deploykit.passes.check``."""

from __future__ import annotations

from pathlib import Path

from deploykit.passes.check import GraphReport

PRODUCERS = ("conv", "conv_transpose", "linear", "matmul")
LAYOUT = ("transpose", "expand_dims", "squeeze", "reshape")
ACTIVATIONS = ("relu", "relu6", "clip", "sigmoid", "tanh", "silu", "leaky_relu", "gelu", "elu", "prelu",
               "hard_sigmoid", "sigmoid_hard", "softplus", "thresholded_relu", "scaled_tanh", "linear_activation")


def check_coreml(path: str | Path) -> GraphReport:
    from deploykit.formats.coreml.spec import load_spec, main_block

    block = main_block(load_spec(path))
    ops = list(block.operations)
    producer = {out.name: op for op in ops for out in op.outputs}
    consumers: dict[str, list] = {}
    for op in ops:
        for name in _input_names(op):
            consumers.setdefault(name, []).append(op)
    outputs = set(block.outputs)
    constant = {name for name, op in producer.items() if op.type == "const" or op.type.startswith("constexpr_")}

    def sole(name):
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in outputs else None

    fused, unfused, unfolded = [], [], []
    for op in ops:
        if op.type not in PRODUCERS:
            continue
        out = op.outputs[0].name
        label = f"{op.type} {out}"
        nxt = sole(out)
        if nxt is not None and nxt.type in LAYOUT:  # look through a layout op (transpose, expand_dims...)
            out, label = nxt.outputs[0].name, f"{label} -> {nxt.type}"
            nxt = sole(out)
        if nxt is None:
            continue
        after = sole(nxt.outputs[0].name)
        if nxt.type == "relu" and after is not None and after.type in ("maximum", "minimum") \
                and _other_is_constant(after, nxt.outputs[0].name, constant):
            unfused.append(f"{label} -> relu + {after.type} with a constant (a clip the compiler cannot fuse)")
        elif nxt.type in ACTIVATIONS:
            fused.append(f"{label} + {nxt.type}")
        elif nxt.type == "batch_norm":
            unfolded.append(f"{label} -> batch_norm {nxt.outputs[0].name}")
        elif nxt.type in ("mul", "add", "real_div", "sub") and _other_is_constant(nxt, out, constant):
            unfolded.append(f"{label} -> {nxt.type} by a constant")
        elif nxt.type in ("maximum", "minimum") and _other_is_constant(nxt, out, constant):
            unfused.append(f"{label} -> {nxt.type} with a constant (an activation the compiler cannot fuse)")
    return GraphReport(tuple(fused), tuple(unfused), tuple(unfolded))


def _input_names(op) -> list[str]:
    names = []
    for argument in op.inputs.values():
        for binding in argument.arguments:
            if binding.WhichOneof("binding") == "name":
                names.append(binding.name)
    return names


def _other_is_constant(op, name: str, constant: set[str]) -> bool:
    others = [n for n in _input_names(op) if n != name]
    inline = [b for arg in op.inputs.values() for b in arg.arguments if b.WhichOneof("binding") == "value"]
    return bool(inline) or (len(others) == 1 and others[0] in constant)
