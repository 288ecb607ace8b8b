"""A per-layer assignment made for real on TFLite: one ai-edge-quantizer recipe entry per layer.

``fp32`` layers get no entry (ai-edge-quantizer leaves an op without a recipe alone), ``fp16`` float
casting, ``int8`` / ``int4`` weight-only per-channel integers with an explicit DEQUANTIZE: the weights are
stored small and the float kernels run, which is what the search emulated (``choices``).
"""

from __future__ import annotations

import re
from pathlib import Path

from deploykit.core.errors import ConversionError


def make_tflite(base: Path, out_path: Path, assignment: dict[str, str]) -> dict:
    from ai_edge_quantizer import qtyping, quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    from deploykit.formats.tflite.flatbuffer import compact

    engine = quantizer.Quantizer(str(base))
    for layer, choice in assignment.items():
        if choice == "fp32":
            continue
        algorithm, config = _recipe(choice, qtyping, AlgorithmName)
        engine.update_quantization_recipe(regex=f"^{re.escape(layer)};", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                          op_config=config, algorithm_key=algorithm)
    try:
        engine.quantize().export_model(str(out_path), overwrite=True)
    except Exception as exc:
        raise ConversionError(f"ai-edge-quantizer failed on the per-layer assignment: {str(exc).splitlines()[0][:300]}",
                              hint="rerun with --verbose to see its log") from exc
    out_path.write_bytes(compact(out_path.read_bytes()))
    return {"engine": "ai-edge-quantizer (one recipe entry per layer)"}


def _recipe(choice: str, qtyping, algorithms):
    if choice == "fp16":
        weights = qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT)
        algorithm = algorithms.FLOAT_CASTING
    else:
        bits = {"int8": 8, "int4": 4}[choice]
        weights = qtyping.TensorQuantizationConfig(num_bits=bits, symmetric=True, granularity=qtyping.QuantGranularity.CHANNELWISE)
        algorithm = algorithms.MIN_MAX_UNIFORM_QUANT
    config = qtyping.OpQuantizationConfig(weight_tensor_config=weights, compute_precision=qtyping.ComputePrecision.FLOAT,
                                          explicit_dequantize=True, min_weight_elements=0)
    return algorithm, config
