"""Run a .tflite artifact by signature names with LiteRT, transposing image inputs to the artifact's layout."""

from __future__ import annotations

import numpy as np


def run_tflite(path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner()
    details = runner.get_input_details()
    ready = {}
    for name, value in feeds.items():
        shape = tuple(details[name]["shape"])
        if value.shape != shape and value.ndim == 4 and value.transpose(0, 2, 3, 1).shape == shape:
            value = value.transpose(0, 2, 3, 1)  # NCHW source, NHWC artifact
        ready[name] = value.astype(details[name]["dtype"])
    return runner(**ready)
