"""Mark a TFLite model's outputs dynamic where they follow its flexible inputs.

litert-torch keeps an input's dynamic dimensions (``shape_signature`` -1) but writes the outputs'
signature with the example's sizes (measured: a (1..4) batch exported with an example batch of 2
declared its logits ``[2, 4]`` and returned ``(3, 4)`` for a batch of 3). An app reads that signature
to size its output buffers, so it must be right: the model is run at the low and the high end of
every flexible dimension, and each output dimension that changes between them is marked -1.
"""

from __future__ import annotations

import numpy as np


def mark_dynamic_outputs(data: bytes, inputs) -> bytes:
    from deploykit.core.flexible import flexible_of
    from deploykit.formats.litert_facade import interpreter as open_interpreter
    from deploykit.formats.tflite.flatbuffer import read_model, write_model

    bounds = [flexible_of(s).dim_bounds if flexible_of(s) else tuple((d, d) for d in s.shape) for s in inputs]
    shapes = []
    for end in (0, 1):
        interpreter = open_interpreter(content=data)
        runner = interpreter.get_signature_runner()
        feeds = {spec.name: np.zeros([b[end] for b in bound], dtype=spec.dtype) for spec, bound in zip(inputs, bounds)}
        shapes.append({name: value.shape for name, value in runner(**feeds).items()})
    model = read_model(data)
    graph = model.subgraphs[0]
    changed = False
    for signature in model.signatureDefs or []:
        for output in signature.outputs or []:
            name = output.name.decode() if isinstance(output.name, bytes) else output.name
            low, high = shapes[0].get(name), shapes[1].get(name)
            if low is None or high is None or len(low) != len(high):
                continue
            tensor = graph.tensors[output.tensorIndex]
            signature_dims = list(tensor.shapeSignature if tensor.shapeSignature is not None else tensor.shape)
            for axis, (a, b) in enumerate(zip(low, high)):
                if a != b and signature_dims[axis] != -1:
                    signature_dims[axis], changed = -1, True
            tensor.shapeSignature = np.array(signature_dims, dtype=np.int32)
    return write_model(model, len(data)) if changed else data
