"""Held-out accuracy of every variant of a trained model, measured with the parity runners (LiteRT
for TFLite, the numpy Core ML evaluator for Core ML). The model is examples/make_example_model.py's
digits network (4.2k parameters), trained here for ~20 s on scikit-learn's handwritten digits with
TensorFlow's op determinism on, so the numbers repeat in this environment.

The issue's bar: int8 within 1 point and lut4 within 2 points of fp32. int8 meets it. lut4 does
not, reliably: on three training runs of this model (bench/quantize_bench.py, docs/quantization.md)
per-tensor 4-bit tables lose 4 to 10 points at the defaults, and no --keep-float / --lut-group-size
setting stayed within 2 points on all three (best: -0.3 / -2.4 / 0.0). Its layers are tiny (144 to
2,048 weights) and each one alone costs 1-7 points. That test is an expected failure, kept so a
change shows.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from deploykit.pipeline import convert
from tests.conftest import REPO
from tests.convert.tflite_run import run_tflite

SCHEMES = "fp16,int8-weights,int8,int4,lut8,lut4"


def digits_training_images():
    from sklearn.datasets import load_digits

    images = (load_digits().images / 16.0).astype("float32")[..., None]
    images = np.repeat(np.repeat(np.repeat(images, 4, axis=1), 4, axis=2), 3, axis=3)
    return images[:1500]  # build_digits_model trains on these and holds out the rest


def top1(predict, x, y) -> float:
    return float(np.mean([int(np.argmax(predict(x[i:i + 1]))) == int(y[i]) for i in range(len(x))]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    sys.path.insert(0, str(REPO / "examples"))
    from make_example_model import build_digits_model

    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    folder = tmp_path_factory.mktemp("digits")
    model, accuracy, (x, y) = build_digits_model()
    model.save(folder / "digits.keras")
    np.save(folder / "calibration.npy", digits_training_images())
    # verify=False: this test measures held-out accuracy itself; convert's parity check (on the
    # calibration samples) would stop at lut4's drift, which is exactly what is recorded here
    report = convert(folder / "digits.keras", to="tflite,coreml", out=folder / "out", quantize=SCHEMES,
                     calibration=folder / "calibration.npy", coreml_target="iOS18", verify=False)
    return report, folder / "out", accuracy, x, y


def measured(report, out, x, y) -> dict:
    from deploykit.runners.coreml_eval import evaluate

    results = {}
    for artifact in report.artifacts:
        path = out / artifact.path
        if artifact.target == "tflite":
            predict = lambda v, p=path: next(iter(run_tflite(p, {"image": v}).values()))  # noqa: E731
        else:
            predict = lambda v, p=path: next(iter(evaluate(p, {"image": v}).values()))  # noqa: E731
        results[(artifact.target, artifact.variant)] = top1(predict, x, y)
    return results


@pytest.fixture(scope="module")
def results(trained):
    report, out, _, x, y = trained
    return measured(report, out, x, y)


def test_every_variant_keeps_its_accuracy(trained, results, record_property):
    keras_accuracy, x = trained[2], trained[3]
    table = {f"{t}/{v}": round(100 * a, 2) for (t, v), a in results.items()}
    record_property("accuracy", table)
    print("\nheld-out top-1 (%), keras", round(100 * keras_accuracy, 2), table)
    assert keras_accuracy > 0.85 and len(x) == 297
    for target in ("tflite", "coreml"):
        fp32 = results[(target, "fp32")]
        assert abs(fp32 - keras_accuracy) < 0.005  # conversion itself changes nothing measurable
        for variant in ("fp16", "int8-weights"):
            assert fp32 - results[(target, variant)] <= 0.01, (target, variant)
    assert results[("tflite", "fp32")] - results[("tflite", "int8")] <= 0.01  # the issue: int8 within 1 point
    assert results[("coreml", "fp32")] - results[("coreml", "lut4")] <= 0.12  # recorded; the bar is below
    assert results[("coreml", "fp32")] - results[("coreml", "lut8")] <= 0.01
    for target in ("tflite", "coreml"):  # 4-bit linear: recorded, held to a looser bar
        assert results[(target, "fp32")] - results[(target, "int4")] <= 0.12, target


@pytest.mark.xfail(reason="lut4 loses 4-10 points on this 4.2k-parameter model (see the module docstring)", strict=False)
def test_lut4_within_two_points(results):
    assert results[("coreml", "fp32")] - results[("coreml", "lut4")] <= 0.02
