"""Helpers shared by the .pte tests (the fixture lives in conftest.py)."""

from __future__ import annotations

import numpy as np

from tests.conftest import TORCH_SHAPE

ZOO = ("mobilenet", "resnet", "shufflenet", "squeezenet", "efficientnet")


def random_calibration(count: int = 8, seed: int = 1) -> tuple:
    rng = np.random.default_rng(seed)
    return tuple((rng.random(TORCH_SHAPE, dtype=np.float32),) for _ in range(count))


def torch_outputs(source, feeds: dict) -> dict:
    import torch

    with torch.no_grad():
        result = source.handle["module"](*[torch.from_numpy(feeds[t.name]) for t in source.inputs])
    flat = [result] if isinstance(result, torch.Tensor) else list(result)
    return {t.name: v.numpy() for t, v in zip(source.outputs, flat)}


def seeded_feeds(source, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {t.name: rng.random(t.shape, dtype=np.float32) for t in source.inputs}


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / max(np.abs(want).max(), 1e-12))


def cosine(got: np.ndarray, want: np.ndarray) -> float:
    a, b = got.ravel().astype(np.float64), want.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def conv_count(source) -> int:
    import torch

    module = source.handle["module"]
    return sum(1 for n in module.graph.nodes if n.op == "call_function" and "conv" in str(n.target)) \
        if isinstance(module, torch.fx.GraphModule) else sum(isinstance(m, torch.nn.Conv2d) for m in module.modules())
