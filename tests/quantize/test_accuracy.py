"""Held-out accuracy of every variant of a trained model, measured with the parity runners (LiteRT
for TFLite, the numpy Core ML evaluator for Core ML). The model is examples/make_example_model.py's
digits network (33k parameters), trained here for ~20 s on scikit-learn's handwritten digits with
TensorFlow's op determinism on, so the numbers repeat in this environment.

The issue's bar: int8 within 1 point and lut4 within 2 points of fp32. Measured on three training
seeds (bench/results/quantize.md): int8 and lut4 stay within it on each; one table per tensor with
coremltools' own k-means lost 1.3 to 2.7 points on the same models, which is why deploykit clusters
itself and spends a small size budget where a layer loses most (deploykit/quantize/lut_plan.py).
"""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

from deploykit import convert
from tests.conftest import REPO
from tests.pipeline.tflite_run import run_tflite

SCHEMES = "fp16,int8-weights,int8,int4,lut8,lut4"


def digits_training_images():
    sys.path.insert(0, str(REPO / "examples"))
    from make_example_model import digits_split

    return digits_split()[0][0]  # build_digits_model trains on these and holds out the rest


def top1(predict, x, y) -> float:
    return float(np.mean([int(np.argmax(predict(x[i:i + 1]))) == int(y[i]) for i in range(len(x))]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, trained_digits):
    keras_file, accuracy, x, y = trained_digits
    folder = tmp_path_factory.mktemp("digits")
    shutil.copyfile(keras_file, folder / "digits.keras")
    np.save(folder / "calibration.npy", digits_training_images())
    # verify=False: this test measures held-out accuracy itself (the parity check of these variants is
    # tests/quantize/test_digits_parity.py)
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
    assert keras_accuracy > 0.95 and len(x) == 297
    for target in ("tflite", "coreml"):
        fp32 = results[(target, "fp32")]
        assert abs(fp32 - keras_accuracy) < 0.005  # conversion itself changes nothing measurable
        for variant in ("fp16", "int8-weights"):
            assert fp32 - results[(target, variant)] <= 0.01, (target, variant)
    assert results[("tflite", "fp32")] - results[("tflite", "int8")] <= 0.01  # the issue: int8 within 1 point
    assert results[("coreml", "fp32")] - results[("coreml", "lut4")] <= 0.02  # the issue: lut4 within 2 points
    assert results[("coreml", "fp32")] - results[("coreml", "lut8")] <= 0.01
    for target in ("tflite", "coreml"):  # 4-bit linear: recorded, held to a looser bar
        assert results[(target, "fp32")] - results[(target, "int4")] <= 0.12, target



def test_good_variants_pass_the_default_profiles(trained, tmp_path):
    """A trained model's logits drift more than random-weight nets' under quantization; every variant
    that keeps its accuracy must still pass its default profile on real held-out images (lut2, which
    moves the logits beyond any floor that would still catch a wrong model, is left out)."""
    from deploykit.pipeline.verify import verify

    report, out, _, x, _ = trained
    np.save(tmp_path / "held_out.npy", x)
    for artifact in report.artifacts:
        parity = verify(out.parent / "digits.keras", out / artifact.path, data=tmp_path / "held_out.npy", samples=0)
        assert parity.passed, (artifact.path, [(c.metric, c.value, c.limit) for o in parity.outputs for c in o.failed_checks])
