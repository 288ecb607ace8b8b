"""Read a .tflite file's signature and op histogram with the LiteRT interpreter (no TensorFlow)."""

from __future__ import annotations

from collections import Counter

from deploykit.core.types import TensorSpec


def open_interpreter(path: str):
    from deploykit.formats.litert_facade import interpreter

    # Without default delegates the op list shows the model's real ops, not one XNNPACK "DELEGATE" node.
    return interpreter(path, delegates=False)


def op_histogram(interpreter) -> dict[str, int]:
    return dict(sorted(Counter(d["op_name"] for d in interpreter._get_ops_details()).items()))


def signature(interpreter, dynamic: bool = False) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Inputs and outputs by signature name when the model has a signature (what apps call), else by tensor name.
    ``dynamic``: dimensions resizable at run time are None, else their allocated size."""
    signatures = interpreter.get_signature_list()
    if signatures:
        key = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
        runner = interpreter.get_signature_runner(key)
        ins = runner.get_input_details()
        outs = runner.get_output_details()
        return (tuple(_spec(n, d, dynamic) for n, d in ins.items()), tuple(_spec(n, d, dynamic) for n, d in outs.items()))
    return (tuple(_spec(d["name"], d, dynamic) for d in interpreter.get_input_details()),
            tuple(_spec(d["name"], d, dynamic) for d in interpreter.get_output_details()))


def _spec(name: str, detail: dict, dynamic: bool) -> TensorSpec:
    import numpy as np

    scale, zero_point = detail.get("quantization", (0.0, 0))
    quant = (float(scale), int(zero_point)) if scale else None
    shape = signature_shape(detail) if dynamic else tuple(int(d) for d in detail["shape"])
    return TensorSpec(name, shape, np.dtype(detail["dtype"]).name, None, quant)


def signature_shape(detail: dict) -> tuple:
    """The tensor's declared shape, a dimension resizable at run time (-1 in ``shape_signature``) as None."""
    declared = detail.get("shape_signature")
    if declared is None or len(declared) != len(detail["shape"]):
        declared = detail["shape"]
    return tuple(None if int(d) < 0 else int(d) for d in declared)
