"""``fold_constant_broadcast`` on a .tflite flatbuffer: a BROADCAST_TO of a constant stored as the constant it makes.

litert-torch keeps the attention mask of a transformers model as a BROADCAST_TO of a small constant
(``[1, 1, 197, 1]`` -> ``[1, 1, 197, 197]`` bool in ViT, ``[1, 1, 32, 32]`` in DistilBERT) rather than storing the
broadcast value. No GPU delegate has a BROADCAST_TO ("Not supported op BROADCAST_TO"), so the op runs on the CPU and
its result crosses into the GPU graph.
"""

from __future__ import annotations

import numpy as np

from deploykit.formats.tflite import graph as tflite_graph
from deploykit.passes import tflite_edit as edit
from deploykit.passes.registry import PassResult, register_pass

MAX_BYTES = 1 << 20  # a broadcast value stored only up to 1 MiB: past that the file grows more than the op costs


@register_pass(
    "fold_constant_broadcast",
    stage="tflite",
    needed_for={("*", "tflite")},
    summary="A BROADCAST_TO of a constant -> the broadcast constant (up to 1 MiB).",
)
def fold_constant_broadcast(data: bytes, context=None) -> PassResult:
    """A BROADCAST_TO of a constant -> the broadcast constant (up to 1 MiB).

    Given:
        %m = BROADCAST_TO(<bool [1, 1, 197, 1]>, [1, 1, 197, 197]);  %a = SELECT_V2(%m, 0.0, -inf)
    Result:
        %a = SELECT_V2(<bool [1, 1, 197, 197]>, 0.0, -inf)

    The op's output tensor becomes a constant holding the broadcast value (numpy's broadcast, the same copy of
    values LiteRT's kernel makes) and the op is removed. Applies when both inputs are constants, the output has a
    static shape, is no model output, and holds at most 1 MiB. Exact: the tensor holds the bytes the op wrote.
    """
    g = tflite_graph.read(data)
    replacements, items = {}, []
    for index in range(len(g.graph.operators)):
        if g.op_type(index) != "BROADCAST_TO":
            continue
        op = g.graph.operators[index]
        value, target = (edit.constant(g, int(t)) for t in op.inputs[:2])
        out = int(op.outputs[0])
        dims = edit.shape(g, out)
        if value is None or target is None or dims is None or out in g.graph_outputs:
            continue
        if list(target.ravel()) != list(dims):
            continue
        try:
            folded = np.ascontiguousarray(np.broadcast_to(value, dims))
        except ValueError:
            continue
        if folded.nbytes > MAX_BYTES or folded.dtype != edit.NUMPY[g.graph.tensors[out].type]:
            continue
        buffer = edit.schema().BufferT()
        buffer.data = np.frombuffer(folded.tobytes(), np.uint8)
        g.model.buffers.append(buffer)
        g.graph.tensors[out].buffer = len(g.model.buffers) - 1
        replacements[index] = []
        items.append(f"BROADCAST_TO {g.tensor_name(out)} {list(value.shape)} -> {list(dims)} ({folded.nbytes} bytes)")
    if not items:
        return PassResult(data)
    edit.replace_ops(g, replacements)
    return PassResult(tflite_graph.write(g), tuple(items))
