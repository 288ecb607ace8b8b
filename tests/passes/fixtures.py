"""The probe networks (tests/passes/nets.py) saved once per session; used by tests/passes and tests/quantize."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def keras_probe_file(tmp_path_factory):
    from tests.passes.nets import keras_probe

    path = tmp_path_factory.mktemp("probe") / "probe.keras"
    keras_probe().save(path)
    return path


@pytest.fixture(scope="session")
def torch_probe_files(tmp_path_factory):
    import torch

    from tests.passes.nets import TorchProbe

    folder = tmp_path_factory.mktemp("torch_probe")
    module, example = TorchProbe().eval(), torch.rand(1, 3, 32, 32)
    torch.export.save(torch.export.export(module, (example,)), folder / "probe.pt2")
    torch.jit.save(torch.jit.trace(module, example), folder / "probe.ts.pt")
    torch.onnx.export(module, (example,), str(folder / "probe.onnx"), dynamo=False, opset_version=17,
                      do_constant_folding=False, input_names=["image"], output_names=["logits"])
    return folder
