"""``int8``: 8-bit weights and activations from calibration data (TFLite only; see schemes.py for
why Core ML cannot calibrate on Linux).

TFLite: ai-edge-quantizer ``static_wi8_ai8``: int8 per-channel symmetric weights, int8 per-tensor
asymmetric activations with ranges from running the fp32 model on the calibration samples.
Model inputs and outputs stay float32 (a QUANTIZE / DEQUANTIZE at each end) unless --int8-io.
"""

from __future__ import annotations


def tflite_config(options, qtyping, algorithms):
    config = integer_config(options, qtyping, "int8", activation_bits=8, symmetric_activations=False)
    per = "per-tensor" if options.per_tensor else "per-channel"
    return algorithms.MIN_MAX_UNIFORM_QUANT, config, {
        "weights": f"int8 symmetric {per}",
        "activations": "int8 asymmetric per-tensor (calibrated)",
        "io": "int8" if options.int8_io else "float32",
    }


def integer_config(options, qtyping, scheme: str, activation_bits: int, symmetric_activations: bool):
    """ai-edge-quantizer's full-integer op config: int8 symmetric weights (per channel unless --per-tensor), the
    activations per tensor at ``activation_bits`` (int8, and int16x8's 16)."""
    granularity = qtyping.QuantGranularity.TENSORWISE if options.per_tensor else qtyping.QuantGranularity.CHANNELWISE
    return qtyping.OpQuantizationConfig(
        activation_tensor_config=qtyping.TensorQuantizationConfig(num_bits=activation_bits,
                                                                  symmetric=symmetric_activations,
                                                                  granularity=qtyping.QuantGranularity.TENSORWISE),
        weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=8, symmetric=True, granularity=granularity),
        compute_precision=qtyping.ComputePrecision.INTEGER,
        explicit_dequantize=False,
        min_weight_elements=options.keep_float.small_for("tflite", scheme),
    )
