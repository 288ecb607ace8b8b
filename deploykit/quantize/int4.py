"""``int4``: 4-bit weights.

Core ML: ``linear_quantize_weights`` with int4 symmetric per-block quantization (blocks of 32 input
channels), which needs the iOS18 / macOS15 ops (``constexpr_blockwise_shift_scale``).
TFLite: ai-edge-quantizer weight-only int4, per output channel: int4 weights with a DEQUANTIZE to
float32 in front of CONV_2D / FULLY_CONNECTED. Its block-wise mode leaves convolutions unquantized
(measured: the file comes back unchanged), and depthwise convolutions have no int4 path, so those
weights stay float32; the record lists how many bytes stayed float.
"""

from __future__ import annotations


def tflite_config(options, qtyping, algorithms):
    config = qtyping.OpQuantizationConfig(
        weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=4, symmetric=True,
                                                              granularity=qtyping.QuantGranularity.CHANNELWISE),
        compute_precision=qtyping.ComputePrecision.FLOAT,
        explicit_dequantize=True,
        min_weight_elements=options.keep_float.small_for("tflite", "int4"),
    )
    return algorithms.MIN_MAX_UNIFORM_QUANT, config, {"weights": "int4 symmetric per-channel (weight-only)", "activations": "float32"}


def coreml(mlmodel, options, op_name_configs, cto):
    op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity="per_block", block_size=32,
                                     weight_threshold=options.keep_float.coreml_threshold("int4"))
    config = cto.OptimizationConfig(global_config=op, op_name_configs=op_name_configs)
    return cto.linear_quantize_weights(mlmodel, config), {"weights": "int4 linear symmetric per-block (32)", "activations": "float16"}
