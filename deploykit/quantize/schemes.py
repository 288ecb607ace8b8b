"""The quantization schemes: what each one stores, and how each target implements it.

One artifact per (target, scheme). ``fp32`` is always produced as well (see ``parse``): it is the
input every TFLite scheme is derived from and the reference each variant's cost is measured against.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Scheme:
    name: str
    bits_per_weight: int  # for the size limit: parameters x bits / 8
    summary: str
    targets: dict[str, str] = field(default_factory=dict)  # target -> how it is done there
    needs_calibration: bool = False
    min_coreml_target: str | None = None  # deployment target the Core ML ops need


_TFLITE_AEQ = "ai-edge-quantizer on the fp32 .tflite"

SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("fp32", 32, "float32 weights and compute (always produced)",
               {"tflite": "the converter's output", "coreml": "ML Program, compute_precision=FLOAT32",
                "executorch": "torch.export + to_edge_transform_and_lower (XNNPACK partitioner by default)"}),
        Scheme("fp16", 16, "half-precision weights",
               {"tflite": f"{_TFLITE_AEQ}: float16 weights, dequantized to float32 at load (float casting)",
                "coreml": "ML Program, compute_precision=FLOAT16 (fp16 weights and compute)",
                "executorch": "the module in half precision between float32 casts at its inputs and outputs, "
                              "lowered to XNNPACK (or the Core ML delegate at FLOAT16)"}),
        Scheme("int8-weights", 8, "8-bit weights, float activations",
               {"tflite": f"{_TFLITE_AEQ}: dynamic range (int8 per-channel weights, activations quantized at run time)",
                "coreml": "fp16 program + linear_quantize_weights (int8 linear symmetric, per-channel)"}),
        Scheme("int8", 8, "8-bit weights and activations, calibrated",
               {"tflite": f"{_TFLITE_AEQ}: static int8 (per-channel weights, per-tensor activations), float or --int8-io",
                "coreml": "fp16 program + coremltools' quantize / dequantize passes on activations (8-bit linear "
                          "per-tensor with zero points, ranges from deploykit's Core ML evaluator on --calibration: "
                          "coremltools' own calibration needs macOS) + linear_quantize_weights (int8 per-channel); "
                          "iOS17 / macOS14 or later",
                "executorch": "PT2E with the XNNPACK quantizer (per-channel symmetric int8 weights, per-tensor int8 "
                              "activations calibrated on --calibration), lowered to XNNPACK"},
               needs_calibration=True, min_coreml_target="iOS17"),
        Scheme("int4", 4, "4-bit weights",
               {"tflite": f"{_TFLITE_AEQ}: weight-only int4 per-channel (CONV_2D / FULLY_CONNECTED; dequantized to float)",
                "coreml": "fp16 program + linear_quantize_weights (int4 symmetric, per-block of 32) for iOS18 / macOS15"},
               min_coreml_target="iOS18"),
        *(Scheme(f"lut{n}", n, f"{n}-bit palettized weights ({1 << n}-entry look-up tables, k-means)",
                 {"coreml": f"fp16 program + palettize_weights (k-means, {n} bits; per-tensor tables, "
                            "or per grouped channel with --lut-group-size on iOS18)"})
          for n in (8, 6, 4, 2)),
    )
}

# (target, scheme) pairs a target could make but not on this machine: why, and what to ask for instead.
# Empty since Core ML int8 takes its activation ranges from deploykit's evaluator (quantize/coreml_w8a8.py)
# instead of coremltools' MLModel.predict, which exists only on macOS.
UNAVAILABLE: dict[tuple[str, str], str] = {}
UNAVAILABLE_EXAMPLES: dict[tuple[str, str], str] = {}


def supported(target: str) -> tuple[str, ...]:
    return tuple(name for name, s in SCHEMES.items() if target in s.targets)
