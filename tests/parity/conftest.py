"""Real conversions shared by the parity tests, made once per session (conversion dominates test time).

Each pair holds the loaded source model, its artifacts by target, and the artifacts of the same
architecture built from another seed (a wrong model with the same signature).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import KERAS_SHAPE, TORCH_SHAPE, save_keras, save_onnx


@dataclass
class Pair:
    model: object  # SourceModel
    artifacts: dict  # target -> Path
    other_seed: dict  # target -> Path (same architecture, seed 1)
    folder: Path


def torch_entry(folder: Path, net: str, seed: int) -> str:
    """An entry point for a tests/zoo torch net: an eager nn.Module (so layers can be dropped and hooked)."""
    entry = folder / f"entry_{net}_{seed}.py"
    entry.write_text(f"from tests.zoo.torch_nets import build\n\n\ndef net():\n    return build({net!r}, {seed})\n")
    return f"{entry}:net"


def convert_pair(folder: Path, sources: list, shape=None, to=("tflite", "coreml")) -> Pair:
    import deploykit
    from deploykit.loaders import load_source

    inputs = {None: shape} if shape else None
    reports = [deploykit.convert(s, to=to, out=folder / f"out{i}", name=f"m{i}", inputs=inputs) for i, s in enumerate(sources)]
    paths = [{a.target: folder / f"out{i}" / a.path for a in r.artifacts} for i, r in enumerate(reports)]
    return Pair(load_source(sources[0], inputs=inputs), paths[0], paths[1] if len(paths) > 1 else {}, folder)


@pytest.fixture(scope="session")
def torch_pair(tmp_path_factory) -> Pair:
    folder = tmp_path_factory.mktemp("torch_pair")
    return convert_pair(folder, [torch_entry(folder, "mobilenet", 0), torch_entry(folder, "mobilenet", 1)], TORCH_SHAPE)


@pytest.fixture(scope="session")
def keras_pair(tmp_path_factory) -> Pair:
    folder = tmp_path_factory.mktemp("keras_pair")
    return convert_pair(folder, [save_keras("resnet", folder, 0), save_keras("resnet", folder, 1)])


@pytest.fixture(scope="session")
def onnx_pair(tmp_path_factory) -> Pair:
    folder = tmp_path_factory.mktemp("onnx_pair")
    return convert_pair(folder, [save_onnx("mobilenet", folder, 0)])


@pytest.fixture(scope="session")
def int8_tflite(tmp_path_factory):
    """A Keras mobilenet and its full-int8 TFLite artifact with int8 input and output (scale, zero point)."""
    from deploykit.loaders import load_source
    from tests.parity import variants

    folder = tmp_path_factory.mktemp("int8")
    model = load_source(save_keras("mobilenet", folder, 0))
    path = variants.keras_tflite(model.handle, folder / "m.int8.tflite", "int8", "image", "logits", int8_io=True)
    return model, path


__all__ = ["KERAS_SHAPE", "Pair", "TORCH_SHAPE", "convert_pair", "torch_entry"]
