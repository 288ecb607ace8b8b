"""Small real models for the runner tests: a Keras net converted to both targets, and loaded sources."""

from __future__ import annotations

import pytest

from tests.conftest import TORCH_SHAPE, save_keras, save_onnx


@pytest.fixture(scope="session")
def keras_converted(tmp_path_factory):
    """(SourceModel, {target: artifact path}) for the small Keras mobilenet."""
    import deploykit
    from deploykit.loaders import load_source

    folder = tmp_path_factory.mktemp("runners_keras")
    source = save_keras("mobilenet", folder)
    report = deploykit.convert(source, out=folder / "out")
    return load_source(source), {a.target: folder / "out" / a.path for a in report.artifacts}


@pytest.fixture(scope="session")
def torch_source(tmp_path_factory):
    from deploykit.loaders import load_source

    folder = tmp_path_factory.mktemp("runners_torch")
    entry = folder / "entry.py"
    entry.write_text("from tests.zoo.torch_nets import build\n\n\ndef net():\n    return build('resnet', 0)\n")
    return load_source(f"{entry}:net", inputs={None: TORCH_SHAPE})


@pytest.fixture(scope="session")
def onnx_source(tmp_path_factory):
    from deploykit.loaders import load_source

    return load_source(save_onnx("shufflenet", tmp_path_factory.mktemp("runners_onnx")))
