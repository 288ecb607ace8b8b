"""``int16x8``: int8 weights with int16 activations from calibration data (TFLite only: LiteRT's "16x8"
full-integer mode; ai-edge-quantizer's ``static_wi8_ai16``).

TFLite: int8 per-channel symmetric weights, int16 per-tensor *symmetric* activations (zero point 0: LiteRT's
16x8 kernels take no other) with ranges from running the fp32 model on the calibration samples. An int16 step
is 1/65536 of a tensor's range against int8's 1/256, so the outputs stay much closer to fp32 than int8's, for
about int8's size (the weights are the same). Model inputs and outputs stay float32. The cost is speed: LiteRT's
XNNPACK delegate has no 16x8 kernels, so the whole graph runs on LiteRT's reference kernels
(bench/results/int16x8.md). Core ML and ExecuTorch have no int16-activation path here.

Ranges are each tensor's extremes over the samples, not ai-edge-quantizer's moving average (which int8 keeps):
with 65536 steps the resolution a clipped peak buys back is worth nothing, and the clipping was the error. On the
digits model's 297 held-out images the worst sample measured cosine 0.990 / 12.3 dB with the averaged ranges
(int8: 0.979 / 11.3 dB), 0.9995 / 25.8 dB with the extremes.
"""

from __future__ import annotations

from deploykit.quantize.int8 import integer_config

RANGES = "min-max"  # quantize.tflite._calibrate
# LiteRT's int16 SOFTMAX reads exp from a table over [-10, 0], so a class further than 10 below the top still weighs
# e^-10 and its output is at least one int16 step: over PP-OCRv4's 6625 classes that took 23 % of the mass (the top
# probability 0.69 where fp32 says 0.999; the argmax kept). A float softmax is exact and costs a DEQUANTIZE /
# QUANTIZE pair, on kernels that run unaccelerated in 16x8 anyway.
FLOAT_OPS = ("SOFTMAX",)


def tflite_config(options, qtyping, algorithms):
    config = integer_config(options, qtyping, "int16x8", activation_bits=16, symmetric_activations=True)
    per = "per-tensor" if options.per_tensor else "per-channel"
    return algorithms.MIN_MAX_UNIFORM_QUANT, config, {
        "weights": f"int8 symmetric {per}",
        "activations": "int16 symmetric per-tensor (calibrated: min / max over the samples)",
        "io": "float32",
        "float_ops": list(FLOAT_OPS),
    }
