"""Fixtures: the probe networks of tests/passes, the trained digits classifier."""

import pytest

from tests.passes.fixtures import keras_probe_file, torch_probe_files  # noqa: F401


@pytest.fixture(scope="session")
def trained_digits(tmp_path_factory):
    """The example's digits classifier trained once per test process (20 s): (digits.keras, held-out accuracy, held-out
    images, their labels). test_accuracy.py and test_int16x8.py measure their variants on it."""
    import sys

    import tensorflow as tf

    from tests.conftest import REPO

    sys.path.insert(0, str(REPO / "examples"))
    from make_example_model import build_digits_model

    tf.config.experimental.enable_op_determinism()
    folder = tmp_path_factory.mktemp("digits-trained")
    model, accuracy, (x, y) = build_digits_model()
    model.save(folder / "digits.keras")
    return folder / "digits.keras", accuracy, x, y
