"""``int8-weights``: 8-bit weights, float activations.

TFLite: dynamic range quantization (ai-edge-quantizer ``dynamic_wi8_afp32``): symmetric int8
weights, per output channel unless --per-tensor; the kernels quantize activations on the fly.
Tensors under 1024 elements stay float unless --keep-float small says otherwise (the legacy TFLite
rule; see KeepFloat.small_for).
Core ML: ``linear_quantize_weights`` (int8, linear symmetric, per channel or per tensor) on the fp16
program: weights are stored in 8 bits and dequantized to fp16 when the model loads.
"""

from __future__ import annotations


def tflite_config(options, qtyping, algorithms):
    granularity = qtyping.QuantGranularity.TENSORWISE if options.per_tensor else qtyping.QuantGranularity.CHANNELWISE
    config = qtyping.OpQuantizationConfig(
        weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=8, symmetric=True, granularity=granularity),
        compute_precision=qtyping.ComputePrecision.INTEGER,
        explicit_dequantize=False,
        min_weight_elements=options.keep_float.small_for("tflite", "int8-weights"),
    )
    per = "per-tensor" if options.per_tensor else "per-channel"
    return algorithms.MIN_MAX_UNIFORM_QUANT, config, {"weights": f"int8 symmetric {per}", "activations": "float32 (quantized at run time)"}


def coreml(mlmodel, options, op_name_configs, cto):
    granularity = "per_tensor" if options.per_tensor else "per_channel"
    op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity=granularity,
                                     weight_threshold=options.keep_float.coreml_threshold("int8-weights"))
    config = cto.OptimizationConfig(global_config=op, op_name_configs=op_name_configs)
    described = {"weights": f"int8 linear symmetric {granularity.replace('_', '-')}", "activations": "float16"}
    return cto.linear_quantize_weights(mlmodel, config), described
