"""fold_batchnorm on Keras, PyTorch (exported graph, entry point, TorchScript) and ONNX graphs:
op types before and after, outputs unchanged within float tolerance, interface unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deploykit.loaders import load_source
from deploykit.passes.fold_batchnorm import PassContext, batchnorm_sites, fold_batchnorm
from tests.passes.helpers import assert_pass

PROBE_LABELS_KERAS = ["stem + stem_bn", "dw + dw_bn", "pw + pw_bn", "fc + fc_bn"]
NETS = Path(__file__).with_name("nets.py")



def test_keras(keras_probe_file, tmp_path):
    source = load_source(keras_probe_file)
    assert [s.label for s in batchnorm_sites(source)] == PROBE_LABELS_KERAS
    result = fold_batchnorm(source, PassContext(tmp_path))
    assert list(result.items) == PROBE_LABELS_KERAS
    x = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    types = lambda m: [type(layer).__name__ for layer in m.layers]  # noqa: E731
    assert_pass(types(source.handle), types(result.value.handle), removed={"BatchNormalization": 4},
                added={"FoldedBatchNorm": 4},
                outputs=(source.handle(x, training=False), result.value.handle(x, training=False)))
    assert [t.name for t in result.value.handle.inputs] == [t.name for t in source.handle.inputs]
    assert result.value.inputs == source.inputs and result.value.outputs == source.outputs
    assert source.handle.get_layer("stem").use_bias is False  # the loaded model is not modified


def test_keras_batchnorm_after_a_shared_conv_is_left_alone(tmp_path):
    import keras

    inputs = keras.Input((8, 8, 3), name="image")
    conv = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    bn = keras.layers.BatchNormalization(name="bn")(conv)
    model = keras.Model(inputs, keras.layers.Add(name="add")([bn, conv]))
    model.save(tmp_path / "shared.keras")
    source = load_source(tmp_path / "shared.keras")
    (site,) = batchnorm_sites(source)
    assert not site.foldable and site.reason == "the producer's output is used elsewhere"
    assert fold_batchnorm(source, PassContext(tmp_path)).items == ()


@pytest.mark.parametrize("kind", ["pt2", "entrypoint", "torchscript"])
def test_torch(torch_probe_files, tmp_path, kind):
    import torch

    path = {"pt2": torch_probe_files / "probe.pt2", "torchscript": torch_probe_files / "probe.ts.pt",
            "entrypoint": f"{NETS}:TorchProbe"}[kind]
    source = load_source(path, inputs=None if kind == "pt2" else ["1x3x32x32"])
    sites = batchnorm_sites(source)
    assert len(sites) == 4 and all(s.foldable for s in sites)
    result = fold_batchnorm(source, PassContext(tmp_path))
    assert len(result.items) == 4
    x = torch.rand(1, 3, 32, 32)  # exported graphs are specialized to batch 1
    before, after = source.handle["module"], result.value.handle["module"]
    with torch.no_grad():
        outputs = (before(x).numpy(), after(x).numpy())
    assert_pass(_torch_ops(before), _torch_ops(after), removed={"batch_norm": 4}, outputs=outputs)


def _torch_ops(module) -> list[str]:
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        return [n.kind().split("::")[-1] for n in module.inlined_graph.nodes() if n.kind().startswith("aten::")]
    if not isinstance(module, torch.fx.GraphModule):
        module = torch.export.export(module, (torch.rand(1, 3, 32, 32),)).module()
    return [getattr(n.target, "__name__", str(n.target)).split(".")[0] for n in module.graph.nodes if n.op == "call_function"]


def test_onnx(torch_probe_files, tmp_path):
    import onnxruntime as ort

    source = load_source(torch_probe_files / "probe.onnx")
    assert [s.foldable for s in batchnorm_sites(source)] == [True] * 4
    result = fold_batchnorm(source, PassContext(tmp_path))
    assert result.value.path != source.path and Path(result.value.path).is_file()
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    outputs = [ort.InferenceSession(p).run(None, {"image": x})[0] for p in (source.path, result.value.path)]
    assert_pass([n.op_type for n in source.handle.graph.node], [n.op_type for n in result.value.handle.graph.node],
                removed={"BatchNormalization": 4}, added={"Conv": 0, "Gemm": 0}, outputs=outputs)
    assert [i.name for i in result.value.handle.graph.input] == ["image"]
    assert [o.name for o in result.value.handle.graph.output] == ["logits"]
