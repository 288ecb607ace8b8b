"""Shared fixtures: small real models written to disk in every source format deploykit reads."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TORCH_SHAPE = (1, 3, 32, 32)
KERAS_SHAPE = (1, 32, 32, 3)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


def save_keras(name: str, folder: Path, seed: int = 0) -> Path:
    from tests.zoo import keras_nets

    path = folder / f"{name}_{seed}.keras"
    if not path.exists():
        keras_nets.build(name, seed).save(path)
    return path


def save_pt2(name: str, folder: Path, seed: int = 0) -> Path:
    import torch

    from tests.zoo import torch_nets

    path = folder / f"{name}_{seed}.pt2"
    if not path.exists():
        module = torch_nets.build(name, seed)
        torch.export.save(torch.export.export(module, (torch.rand(TORCH_SHAPE),)), path)
    return path


def save_torchscript(name: str, folder: Path, seed: int = 0) -> Path:
    import torch

    from tests.zoo import torch_nets

    path = folder / f"{name}_{seed}.ts.pt"
    if not path.exists():
        module = torch_nets.build(name, seed)
        torch.jit.save(torch.jit.trace(module, torch.rand(TORCH_SHAPE)), path)
    return path


def save_onnx(name: str, folder: Path, seed: int = 0) -> Path:
    import torch

    from tests.zoo import torch_nets

    path = folder / f"{name}_{seed}.onnx"
    if not path.exists():
        module = torch_nets.build(name, seed)
        torch.onnx.export(module, (torch.rand(TORCH_SHAPE),), str(path), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["logits"])
    return path
