"""The issue's size goals on a full MobileNetV2 (Keras, 3.5M parameters): heavy, run with -m heavy.
The same checks, with latency and accuracy, are recorded by bench/quantize_bench.py."""

from __future__ import annotations

import numpy as np
import pytest

from deploykit import convert

pytestmark = pytest.mark.heavy

# (target, scheme) -> the most the artifact may weigh, as a multiple of parameters x bits / 8
GOALS = {("tflite", "fp16"): 1.02, ("coreml", "fp16"): 1.02, ("tflite", "int8-weights"): 1.08,
         ("coreml", "int8-weights"): 1.08, ("tflite", "int8"): 1.08, ("coreml", "lut4"): 1.15}


def test_mobilenet_v2_sizes(tmp_path):
    import keras

    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    model.save(tmp_path / "mobilenet_v2.keras")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).random((8, 224, 224, 3), dtype=np.float32))
    report = convert(tmp_path / "mobilenet_v2.keras", to="tflite,coreml", out=tmp_path / "out",
                     quantize="fp16,int8-weights,int8,lut4", calibration=tmp_path / "cal.npy", verify=False)
    ratios = {(a.target, a.variant): a.size_limit["ratio"] for a in report.artifacts}
    assert report.artifacts[0].size_limit["parameters"] == 3_487_816
    for key, goal in GOALS.items():
        assert ratios[key] <= goal, (key, ratios[key])
