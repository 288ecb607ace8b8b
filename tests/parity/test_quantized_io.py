"""Full-int8 TFLite with int8 input and output: the runner quantizes and dequantizes with scale and zero point."""

from __future__ import annotations

import numpy as np

from deploykit.pipeline.verify import verify
from deploykit.runners.litert_runner import dequantize, quantize
from deploykit.targets import runner_for as runner_for_artifact


def test_quantize_rounds_half_away_from_zero_and_saturates():
    values = np.array([-1.25, -0.25, 0.25, 0.75, 100.0, -100.0])
    q = quantize(values, (0.5, 3), np.dtype(np.int8))
    assert q.tolist() == [0, 2, 4, 5, 127, -128]  # -2.5 -> -3, -0.5 -> -1, 0.5 -> 1, 1.5 -> 2, plus 3; clamped
    assert dequantize(np.array([3, 5], np.int8), (0.5, 3)).tolist() == [0.0, 1.0]


def test_int8_io_artifact_passes_its_profile_and_wrong_model_fails(int8_tflite, keras_pair):
    model, path = int8_tflite
    with runner_for_artifact(path) as runner:
        quantized = runner.quantized_io
        assert set(quantized) == {"image", "logits"}
        assert quantized["image"][2] == "int8"
        assert runner.input_specs[0].dtype == "float32"  # floats in, floats out
    report = verify(model, path, profile="int8")
    assert report, report.to_json()
    low, high = report.inputs["distribution"]["image"].removeprefix("uniform [").removesuffix(")").split(", ")
    assert -1.0 <= float(low) and float(high) <= 1.0
    assert not verify(model, path)  # the fp32 profile is far too strict for int8 activations
    # another model with the same signature (1x32x32x3 -> 10 logits) fails the int8 profile
    wrong = verify(keras_pair.model, path, profile="int8")
    assert not wrong and {"snr_db", "cosine_similarity"} <= {c.metric for c in wrong.outputs[0].failed_checks}
