"""--localize names the layer where a deliberately broken pair starts to diverge, for both targets.

The pair is broken by changing one middle conv's weight in the source after conversion: the artifact
then computes the old layer, and the first tensor that disagrees is that conv's output.
"""

from __future__ import annotations

import pytest

from deploykit.pipeline.verify import verify
from tests.parity import variants

TARGETS = ("tflite", "coreml")


def _culprit(report) -> str:
    assert not report
    loc = report.localization
    assert loc is not None and loc.status == "found", loc
    assert loc.compared > 3
    return loc.culprit["source"]


@pytest.mark.parametrize("target", TARGETS)
def test_torch_perturbed_conv_is_named(torch_pair, target):
    changed, layer = variants.perturbed(torch_pair.model, 0.5)
    report = verify(changed, torch_pair.artifacts[target], localize=True)
    culprit = _culprit(report)
    assert culprit.startswith(f"{layer} (Conv2d"), culprit
    assert report.localization.last_agreeing is not None  # the conv's input still agrees
    assert report.localization.culprit["metrics"]["max_rel_error"] > 1e-3


@pytest.mark.parametrize("target", TARGETS)
def test_keras_perturbed_conv_is_named_in_a_residual_net(keras_pair, target):
    changed, layer = variants.perturbed(keras_pair.model, 0.5)
    culprit = _culprit(verify(changed, keras_pair.artifacts[target], localize=True))
    assert culprit == f"{layer} (Conv2D)"


@pytest.mark.parametrize("target", TARGETS)
def test_onnx_perturbed_conv_is_named(onnx_pair, target):
    changed, node = variants.perturbed(onnx_pair.model, 0.5)
    culprit = _culprit(verify(changed, onnx_pair.artifacts[target], localize=True))
    assert culprit == f"{node} (Conv)"


def test_dropped_layer_is_located_next_to_it(torch_pair):
    changed, layer = variants.dropped(torch_pair.model)  # e.g. features.2.1, a batch norm
    culprit = _culprit(verify(changed, torch_pair.artifacts["tflite"], localize=True))
    block = layer.rsplit(".", 1)[0]
    assert culprit.startswith(block + "."), (layer, culprit)


def test_passing_pair_is_not_localized(torch_pair):
    report = verify(torch_pair.model, torch_pair.artifacts["coreml"], localize=True)
    assert report and report.localization is None


def test_localization_unavailable_is_reported_not_raised(tmp_path, keras_pair):
    """A source that cannot expose intermediates (TorchScript) still gets its verdict."""
    import torch

    from deploykit.loaders import load_source
    from tests.conftest import TORCH_SHAPE
    from tests.zoo import torch_nets

    path = tmp_path / "m.ts.pt"
    torch.jit.save(torch.jit.trace(torch_nets.build("mobilenet", 1), torch.rand(TORCH_SHAPE)), path)
    model = load_source(path, inputs={None: TORCH_SHAPE})
    report = verify(model, keras_pair.other_seed["coreml"], localize=True)
    assert not report and report.localization.status == "unavailable"
    assert "TorchScript" in report.localization.message
