"""Each runner on a real model: outputs match the framework called directly, traces keep names and edges."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from deploykit.core.errors import UsageError
from deploykit.runners import runner_for_source
from deploykit.targets import runner_for as runner_for_artifact
from deploykit.runners.coreml_runner import CoreMLRunner
from deploykit.runners.keras_runner import KerasRunner
from deploykit.runners.litert_runner import LiteRTRunner
from deploykit.runners.onnxrt_runner import OnnxRuntimeRunner
from deploykit.runners.torch_runner import TorchRunner


def _feeds(model, seed=0):
    rng = np.random.default_rng(seed)
    return {t.name: rng.uniform(-1, 1, t.shape).astype(np.float32) for t in model.inputs}


def test_torch_runner_reuses_the_loaded_module(torch_source):
    import torch

    runner = runner_for_source(torch_source)
    assert isinstance(runner, TorchRunner) and runner.module is torch_source.handle["module"]
    feeds = _feeds(torch_source)
    with runner:
        out = runner.infer(feeds)["output"]
        with torch.no_grad():
            direct = torch_source.handle["module"](torch.from_numpy(feeds["x"])).numpy()
        assert np.array_equal(out, direct)
        trace = runner.trace(feeds)
    scopes = [r.scope for r in trace]
    assert any(s.startswith("stem.0 (Conv2d") for s in scopes)
    names = {r.name for r in trace}
    assert all(set(r.inputs) <= names for r in trace)
    adds = [r for r in trace if r.op.startswith("add")]
    assert adds and all(len(r.inputs) == 2 for r in adds)  # residual edges kept


def test_torch_hooks_when_export_fails(torch_source):
    import torch
    from dataclasses import replace

    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)

        def forward(self, x):
            y = self.a(x)
            if float(y.sum()) > 0:  # data-dependent Python control flow: torch.export refuses it
                y = -y
            return self.b(y)

    from deploykit.core.types import TensorSpec

    model = replace(torch_source, inputs=(TensorSpec("x", (1, 4), "float32"),), outputs=(TensorSpec("output", (1, 2), "float32"),),
                    handle={"module": Branchy().eval(), "torchscript": False})
    with runner_for_source(model) as runner:
        trace = runner.trace({"x": np.ones((1, 4), np.float32)})
    assert [r.scope for r in trace] == ["a (Linear)", "b (Linear)"] and all(r.inputs is None for r in trace)


def test_keras_runner_and_trace(keras_converted):
    model, _ = keras_converted
    runner = runner_for_source(model)
    assert isinstance(runner, KerasRunner)
    feeds = _feeds(model)
    with runner:
        out = runner.infer(feeds)["logits"]
        assert np.allclose(out, np.asarray(model.handle(feeds["image"], training=False)), atol=1e-6)
        trace = runner.trace(feeds)
    by_name = {r.name: r for r in trace}
    assert by_name["stem_bn"].inputs == ("stem_conv",) and by_name["logits"].value.shape == (1, 10)


def test_onnxruntime_runner_and_trace(onnx_source):
    runner = runner_for_source(onnx_source)
    assert isinstance(runner, OnnxRuntimeRunner)
    feeds = _feeds(onnx_source)
    with runner:
        out = runner.infer(feeds)["logits"]
        trace = runner.trace(feeds)
    assert out.shape == (1, 10)
    assert not any(r.op == "Constant" for r in trace)
    assert np.allclose(trace[-1].value, out, atol=1e-6)
    convs = [r for r in trace if r.op == "Conv"]
    assert len(convs) > 3 and all(r.inputs for r in convs[1:])


def test_litert_runner(keras_converted):
    model, artifacts = keras_converted
    runner = runner_for_artifact(artifacts["tflite"])
    assert isinstance(runner, LiteRTRunner)
    feeds = _feeds(model)
    with runner, runner_for_source(model) as src:
        assert runner.signature == "serving_default" and runner.input_names == ["image"] and runner.output_names == ["logits"]
        assert runner.quantized_io == {}
        assert np.allclose(runner.infer(feeds)["logits"], src.infer(feeds)["logits"], atol=1e-5)
        trace = runner.trace(feeds)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= {r.op for r in trace}
    assert any("stem_relu6" in r.scope for r in trace)
    with pytest.raises(UsageError, match="no signature"):
        LiteRTRunner(artifacts["tflite"], signature="nope").activate()


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML predicts on macOS; this checks the Linux fallback")
def test_coreml_runner_falls_back_to_the_numpy_evaluator(keras_converted):
    model, artifacts = keras_converted
    runner = runner_for_artifact(artifacts["coreml"])
    assert isinstance(runner, CoreMLRunner)
    feeds = _feeds(model)
    with runner, runner_for_source(model) as src:
        assert runner.backend_used == "Core ML numpy evaluator"
        assert any("not modelled" in n for n in runner.notes) and any("needs macOS" in n for n in runner.notes)
        assert np.allclose(runner.infer(feeds)["logits"], src.infer(feeds)["logits"], atol=1e-5)
        trace = runner.trace(feeds)
    assert "conv" in {r.op for r in trace}
    with pytest.raises(UsageError, match="MLModel.predict is not available"):
        CoreMLRunner(artifacts["coreml"], backend="mlmodel").activate()
    with pytest.raises(UsageError, match="unknown Core ML backend"):
        CoreMLRunner(artifacts["coreml"], backend="ane")
