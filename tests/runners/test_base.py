"""The runner contract, without any framework: context manager, feed checks, factories."""

from __future__ import annotations

import numpy as np
import pytest

from deploykit.core.errors import InputError, UsageError
from deploykit.runners import runner_for_source
from deploykit.targets import for_path
from deploykit.targets import runner_for as runner_for_artifact
from deploykit.runners.base import Runner
from deploykit.core.types import SourceModel, TensorSpec


def target_of(path) -> str:
    return for_path(path).name


class Doubler(Runner):
    name = "doubler"

    def __init__(self, drop_output: bool = False):
        super().__init__()
        self.drop_output = drop_output
        self.activations = 0

    def activate_impl(self):
        self.activations += 1
        return (TensorSpec("x", (1, None, 3), "float32"), TensorSpec("ids", (1, 2), "int64")), (TensorSpec("y", (1, 3), "float32"),)

    def infer_impl(self, feeds):
        return {} if self.drop_output else {"y": feeds["x"].sum(axis=1) * 2}


FEEDS = {"x": np.ones((1, 4, 3), np.float32), "ids": np.zeros((1, 2), np.int64)}


def test_context_manager_and_infer():
    runner = Doubler()
    with runner:
        assert runner.is_active and runner.input_names == ["x", "ids"] and runner.output_names == ["y"]
        assert runner.infer(FEEDS)["y"].tolist() == [[8.0, 8.0, 8.0]]
        assert runner.last_inference_time is not None
        runner.activate()  # idempotent
    assert not runner.is_active and runner.activations == 1
    with pytest.raises(UsageError, match="not active"):
        runner.infer(FEEDS)


def test_feed_checks():
    with Doubler() as runner:
        with pytest.raises(UsageError, match="missing ids"):
            runner.infer({"x": FEEDS["x"]})
        with pytest.raises(UsageError, match="unknown z"):
            runner.infer({**FEEDS, "z": FEEDS["x"]})
        with pytest.raises(UsageError, match="expects shape"):
            runner.infer({**FEEDS, "x": np.ones((1, 4, 2), np.float32)})
        with pytest.raises(UsageError, match="expects int64"):
            runner.infer({**FEEDS, "ids": np.zeros((1, 2), np.float32)})
        # same kind is cast (float64 -> float32); the dynamic dimension accepts any size
        out = runner.infer({**FEEDS, "x": np.ones((1, 7, 3), np.float64)})
        assert out["y"].dtype == np.float64 or out["y"].tolist() == [[14.0] * 3]
        with pytest.raises(UsageError, match="cannot expose"):
            runner.trace(FEEDS)
    with Doubler(drop_output=True) as runner, pytest.raises(UsageError, match="no value for output"):
        runner.infer(FEEDS)


def test_factories_refuse_what_they_cannot_run(tmp_path):
    unloaded = SourceModel("torch", "pt2", "m.pt2", "", "m", (), ())
    with pytest.raises(UsageError, match="not loaded"):
        runner_for_source(unloaded)
    with pytest.raises(UsageError, match="no runner"):
        runner_for_source(SourceModel("jax", "x", "m", "", "m", (), (), handle=object()))
    assert target_of("a/b.tflite") == "tflite" and target_of("a/b.mlpackage/") == "coreml"
    with pytest.raises(InputError, match="artifact type"):
        target_of("model.onnx")
    with pytest.raises(InputError, match="not found"):
        runner_for_artifact(tmp_path / "missing.tflite")
