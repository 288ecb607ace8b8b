"""``int8``: 8-bit weights and activations from calibration data (TFLite only; see schemes.py for
why Core ML cannot calibrate on Linux).

TFLite: ai-edge-quantizer ``static_wi8_ai8``: int8 per-channel symmetric weights, int8 per-tensor
asymmetric activations with ranges from running the fp32 model on the calibration samples.
Model inputs and outputs stay float32 (a QUANTIZE / DEQUANTIZE at each end) unless --int8-io.
"""

from __future__ import annotations


def tflite_config(options, qtyping, algorithms):
    granularity = qtyping.QuantGranularity.TENSORWISE if options.per_tensor else qtyping.QuantGranularity.CHANNELWISE
    config = qtyping.OpQuantizationConfig(
        activation_tensor_config=qtyping.TensorQuantizationConfig(num_bits=8, symmetric=False,
                                                                  granularity=qtyping.QuantGranularity.TENSORWISE),
        weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=8, symmetric=True, granularity=granularity),
        compute_precision=qtyping.ComputePrecision.INTEGER,
        explicit_dequantize=False,
        min_weight_elements=options.keep_float.small_for("tflite", "int8"),
    )
    per = "per-tensor" if options.per_tensor else "per-channel"
    return algorithms.MIN_MAX_UNIFORM_QUANT, config, {
        "weights": f"int8 symmetric {per}",
        "activations": "int8 asymmetric per-tensor (calibrated)",
        "io": "int8" if options.int8_io else "float32",
    }
