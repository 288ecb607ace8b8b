"""``fp16``: half-precision weights.

TFLite: ai-edge-quantizer's float casting stores conv / fully-connected weights as float16 with a
DEQUANTIZE op in front, so CPUs compute in float32 after load and GPU delegates can run fp16.
Core ML: the program is converted with ``compute_precision=FLOAT16`` (weights and compute in fp16),
which is also the base every compressed Core ML variant starts from.
"""

from __future__ import annotations


def tflite_config(options, qtyping, algorithms):
    config = qtyping.OpQuantizationConfig(
        weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT),
        compute_precision=qtyping.ComputePrecision.FLOAT,
        explicit_dequantize=True,
        min_weight_elements=options.keep_float.small_for("tflite", "fp16"),
    )
    return algorithms.FLOAT_CASTING, config, {"weights": "float16", "activations": "float32", "compute": "float32"}
