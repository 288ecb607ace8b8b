"""The quantization schemes: what each one stores, and how each target implements it.

One artifact per (target, scheme). ``fp32`` is always produced as well (see ``parse``): it is the
input every TFLite scheme is derived from and the reference each variant's cost is measured against.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Scheme:
    name: str
    bits_per_weight: float  # for the size limit: parameters x bits / 8 (fractional for pruned weights)
    summary: str
    targets: dict[str, str] = field(default_factory=dict)  # target -> how it is done there
    needs_calibration: bool = False
    min_coreml_target: str | None = None  # deployment target the Core ML ops need


_TFLITE_AEQ = "ai-edge-quantizer on the fp32 .tflite"


def _sparse_schemes() -> tuple[Scheme, ...]:
    """Pruning (quantize/sparsity.py). ``bits_per_weight`` is Core ML's storage of a pruned weight: a 1-bit mask
    plus its non-zeros (fp16, 4-bit indices or int8); TFLite's CSR float32 takes about twice the fp16 figure."""
    from deploykit.quantize.sparsity import LEVELS, N_M_NAME

    pruned = "magnitude pruning per layer, no retraining; the first conv / dense layer and weights under 2048 elements spared"
    made = {"tflite": "deploykit prunes the fp32 .tflite and writes pruned weights sparse-encoded (CSR + DENSIFY at load: "
                      "smaller file, same latency)",
            "coreml": "fp16 program + prune_weights (mask + fp16 non-zeros)"}
    schemes = [Scheme(f"sparse{p}", round(16 * (1 - p / 100) + 1, 2), f"{p} % of each pruned weight zero ({pruned})", made)
               for p in LEVELS]
    schemes.append(Scheme(N_M_NAME, 9, "2 of every 4 weights zero along the input axis (also spelled sparse2:4; a size "
                                       "gain: no runtime here computes on the 2:4 pattern)",
                          {"coreml": "fp16 program + prune_weights (n_m_ratio=(2, 4))"}))
    for p in LEVELS:
        schemes.append(Scheme(f"sparse{p}+lut4", round(4 * (1 - p / 100) + 1, 2), f"sparse{p}, its non-zeros palettized (4 bits)",
                              {"coreml": "fp16 program + prune_weights + palettize_weights(joint_compression=True) "
                                         "for iOS18 / macOS15"}, min_coreml_target="iOS18"))
        schemes.append(Scheme(f"sparse{p}+int8", round(8 * (1 - p / 100) + 1, 2), f"sparse{p}, its non-zeros as int8 weights",
                              {"tflite": f"the pruned fp32 .tflite + {_TFLITE_AEQ}'s int8-weights (dynamic range; dense int8)",
                               "coreml": "fp16 program + prune_weights + linear_quantize_weights(joint_compression=True) "
                                         "for iOS18 / macOS15"}, min_coreml_target="iOS18"))
    return tuple(schemes)


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("fp32", 32, "float32 weights and compute (always produced)",
               {"tflite": "the converter's output", "coreml": "ML Program, compute_precision=FLOAT32",
                "executorch": "torch.export + to_edge_transform_and_lower (XNNPACK partitioner by default)",
                "ncnn": "pnnx fp16=0: float32 weights, run with fp16 storage and arithmetic off"}),
        Scheme("fp16", 16, "half-precision weights",
               {"tflite": f"{_TFLITE_AEQ}: float16 weights, dequantized to float32 at load (float casting)",
                "coreml": "ML Program, compute_precision=FLOAT16 (fp16 weights and compute)",
                "executorch": "the module in half precision between float32 casts at its inputs and outputs, "
                              "lowered to XNNPACK (or the Core ML delegate at FLOAT16)",
                "ncnn": "pnnx fp16=1: float16 weights in the .bin, run with fp16 storage, packing and arithmetic on "
                        "(as an app sets ncnn::Option for speed)"}),
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
        Scheme("int16x8", 8, "8-bit weights, 16-bit activations, calibrated: about int8's size, outputs close to fp32, "
                             "but LiteRT's XNNPACK delegate has no 16x8 kernels: it runs on the reference kernels, "
                             "20 to 40 times slower than fp32 on x86 (bench/results/int16x8.md)",
               {"tflite": f"{_TFLITE_AEQ}: static 16x8 (int8 per-channel weights, int16 symmetric per-tensor "
                          "activations), float I/O"},
               needs_calibration=True),
        Scheme("int4", 4, "4-bit weights",
               {"tflite": f"{_TFLITE_AEQ}: weight-only int4 per-channel (CONV_2D / FULLY_CONNECTED; dequantized to float)",
                "coreml": "fp16 program + linear_quantize_weights (int4 symmetric, per-block of 32) for iOS18 / macOS15"},
               min_coreml_target="iOS18"),
        *(Scheme(f"lut{n}", n, f"{n}-bit palettized weights ({1 << n}-entry look-up tables, k-means)",
                 {"coreml": f"fp16 program + palettize_weights (k-means, {n} bits; per-tensor tables, "
                            "or per grouped channel with --lut-group-size on iOS18)"})
          for n in (8, 6, 4, 2)),
        *_sparse_schemes(),
        # bits for the size limit only: the choice is per layer, so the record's ratio reads against one byte a weight
        Scheme("auto", 8, "per-layer choices, the smallest model within --max-accuracy-drop / --max-error",
               {"tflite": f"{_TFLITE_AEQ}: one recipe entry per layer (float32, float16, weight-only int8 or int4), "
                          "chosen by measured per-layer sensitivity",
                "coreml": "fp16 program + palettize_weights / linear_quantize_weights per weight (lut8..lut2, int8; "
                          "grouped tables and int4 per block on iOS18), chosen by measured per-layer sensitivity"}),
    )
}

# (target, scheme) pairs a target could make but not on this machine: why, and what to ask for instead.
# Empty since Core ML int8 takes its activation ranges from deploykit's evaluator (quantize/coreml_w8a8.py)
# instead of coremltools' MLModel.predict, which exists only on macOS.
# NCNN's int8 (calibrated weights and activations) is made by ncnn's own tools, ncnn2table (the calibration
# table) and ncnn2int8, which neither the ncnn nor the pnnx wheel ships and Debian does not package.
_NCNN_INT8 = ("NCNN's int8 is made by ncnn2table (calibration table) and ncnn2int8, tools that neither the ncnn nor the "
              "pnnx wheel ships; build them from ncnn's sources to quantize the fp32 pair")
UNAVAILABLE: dict[tuple[str, str], str] = {("ncnn", "int8"): _NCNN_INT8, ("ncnn", "int8-weights"): _NCNN_INT8}
UNAVAILABLE_EXAMPLES: dict[tuple[str, str], str] = {("ncnn", "int8"): "--quantize ncnn=fp16",
                                                      ("ncnn", "int8-weights"): "--quantize ncnn=fp16"}


def supported(target: str) -> tuple[str, ...]:
    return tuple(name for name, s in SCHEMES.items() if target in s.targets)
