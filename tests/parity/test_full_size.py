"""Full-size networks at 224x224 (heavy: run with -m heavy): the default fp32 profile passes their
correct conversions to both targets and fails a perturbed weight. MobileNetV3 covers hard-swish.

Random-weight deep networks hardly propagate a middle layer's change to their output (a 50 %
perturbation of a middle conv of MobileNetV2 moves the output by ~2e-6 of its peak, see
bench/results/parity_calibration.md), so the wrong pair perturbs the last layer, and localization
gets a middle conv perturbed strongly enough to reach the output."""

from __future__ import annotations

import pytest

from deploykit.pipeline.verify import verify
from tests.parity import variants
from tests.parity.conftest import convert_pair, torch_entry

pytestmark = pytest.mark.heavy


def _keras(folder, builder):
    """Random weights with batch-norm statistics randomized as tests/zoo does: with Keras' initial
    statistics a random MobileNetV2 outputs the same constant for every input."""
    import keras

    from tests.zoo.keras_nets import _randomize_batchnorm

    keras.utils.set_random_seed(0)
    path = folder / "model.keras"
    _randomize_batchnorm(builder(), 0).save(path)
    return str(path)


@pytest.fixture(scope="module")
def keras_mobilenet_v2(tmp_path_factory):
    import keras

    folder = tmp_path_factory.mktemp("mnv2_keras")
    return convert_pair(folder, [_keras(folder, lambda: keras.applications.MobileNetV2(weights=None, classifier_activation=None))])


@pytest.fixture(scope="module")
def torch_mobilenet_v2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnv2_torch")
    return convert_pair(folder, [torch_entry(folder, "mobilenet_v2", 0)], (1, 3, 224, 224))


@pytest.fixture(scope="module")
def keras_mobilenet_v3(tmp_path_factory):
    import keras

    folder = tmp_path_factory.mktemp("mnv3_keras")
    return convert_pair(folder, [_keras(folder, lambda: keras.applications.MobileNetV3Small(
        weights=None, input_shape=(224, 224, 3), classifier_activation=None))])


@pytest.mark.parametrize("target", ("tflite", "coreml"))
@pytest.mark.parametrize("pair", ("keras_mobilenet_v2", "torch_mobilenet_v2", "keras_mobilenet_v3"))
def test_full_size_right_pair_passes_and_perturbed_fails(request, pair, target):
    pair = request.getfixturevalue(pair)
    report = verify(pair.model, pair.artifacts[target])
    assert report, report.to_json()
    broken, _ = variants.perturbed(pair.model, 0.5, where="last")
    assert not verify(broken, pair.artifacts[target])


def test_full_size_localization(torch_mobilenet_v2):
    broken, layer = variants.perturbed(torch_mobilenet_v2.model, 50.0)
    report = verify(broken, torch_mobilenet_v2.artifacts["coreml"], localize=True)
    assert report.localization.status == "found"
    assert report.localization.culprit["source"].startswith(layer)
